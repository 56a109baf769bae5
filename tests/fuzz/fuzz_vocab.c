/* The BPE vocabulary (gzip'd merges or plain text), then tokenising a fixed text with it. */
#include <stdbool.h>

#include "clip/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char err[512];
    bool gz = n >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    Tokenizer *t = tokenizer_load(fuzz_file(data, n, gz ? ".txt.gz" : ".txt"), err, sizeof err);
    if (!t) return 0;
    int32_t ids[77];
    tokenizer_tokenize_n(t, "a photo of a hazy city: noisy, jpeg-compressed 1234", ids, 77);
    tokenizer_free(t);
    return 0;
}
