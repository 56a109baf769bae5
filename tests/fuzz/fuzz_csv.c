/* The dataset CSV (tab-separated filepath, "caption: degradation", pandas quoting). */
#include "data/dataset.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    CaptionRow *rows = NULL;
    int count = 0;
    if (caption_csv_read(fuzz_file(data, n, ".csv"), &rows, &count) == 0) caption_rows_free(rows, count);
    return 0;
}
