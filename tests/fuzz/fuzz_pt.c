/* The PyTorch checkpoint reader: open, name, and read every floating-point tensor. */
#include <stdlib.h>

#include "tensor/pt_reader.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    PtFile *f = pt_open(fuzz_file(data, n, ".pt"));
    if (!f) return 0;
    for (int i = 0; i < pt_count(f); i++) {
        const PtEntry *e = pt_entry(f, i);
        int64_t numel = 1;
        for (int k = 0; k < e->ndim; k++) numel *= e->shape[k];
        if (numel > (1 << 20)) continue;   /* valid but large: reading it teaches nothing */
        float *buf = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
        if (buf) pt_read_f32(f, e, buf);
        free(buf);
    }
    pt_close(f);
    return 0;
}
