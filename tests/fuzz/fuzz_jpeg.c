/* JPEG decoding (and the CLIP view of what decodes). */
#include "data/clip_preprocess.h"
#include "data/image_io.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    Image im = {0};
    if (image_load(fuzz_file(data, n, ".jpg"), &im) == 0) {
        static float view[3 * 32 * 32];
        if ((int64_t)im.w * im.h <= (1 << 22)) clip_preprocess(&im, 32, view);
        image_free(&im);
    }
    return 0;
}
