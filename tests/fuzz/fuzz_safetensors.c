/* safetensors: header, metadata and every tensor's data. */
#include <string.h>

#include "tensor/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    StFile *f = st_open(fuzz_file(data, n, ".safetensors"));
    if (!f) return 0;
    volatile float sink = 0;
    for (int i = 0; i < f->n; i++) {
        int64_t numel = 1;
        for (int k = 0; k < f->entries[i].ndim; k++) numel *= f->entries[i].shape[k];
        for (int64_t j = 0; j < numel; j += 97) sink += f->entries[i].data[j];
    }
    char buf[256];
    st_meta_get(f, "vocab", buf, sizeof buf);
    st_close(f);
    return 0;
}
