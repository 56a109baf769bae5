/* Downsample (strided 4×4 conv) and Upsample (nearest ×2 then 3×3 conv). */
#include "nn/updown.h"

#include "tensor/ops.h"

void downsample_init(Downsample *d, ParamSet *ps, const char *prefix, int64_t dim, int64_t dim_out, TRng *r) {
    conv2d_init(&d->conv, ps, prefix, dim, dim_out, 4, 2, 1, true, r);
}

Tensor *downsample_forward(const Downsample *d, Tensor *x) { return conv2d_forward(&d->conv, x); }

void upsample_init(Upsample *u, ParamSet *ps, const char *prefix, int64_t dim, int64_t dim_out, TRng *r) {
    char p[256];
    conv2d_init(&u->conv, ps, nn_join(p, sizeof p, prefix, "1"), dim, dim_out, 3, 1, 1, true, r);
}

Tensor *upsample_forward(const Upsample *u, Tensor *x) { return conv2d_forward(&u->conv, t_upsample_nearest2x(x)); }
