/* Downsample (strided 4×4 conv) and Upsample (nearest ×2 then 3×3 conv). */
#include "nn/updown.h"

#include "tensor/conv_fused.h"
#include "tensor/ops.h"

void downsample_init(Downsample *d, ParamSet *ps, const char *prefix, int64_t dim, int64_t dim_out, TRng *r) {
    conv2d_init(&d->conv, ps, prefix, dim, dim_out, 4, 2, 1, true, r);
}

Tensor *downsample_forward(const Downsample *d, Tensor *x) { return conv2d_forward(&d->conv, x); }

void upsample_init(Upsample *u, ParamSet *ps, const char *prefix, int64_t dim, int64_t dim_out, TRng *r) {
    char p[256];
    conv2d_init(&u->conv, ps, nn_join(p, sizeof p, prefix, "1"), dim, dim_out, 3, 1, 1, true, r);
}

/* The upsampled image is never built: the fused convolution runs four 2×2 phase kernels on x. */
Tensor *upsample_forward(const Upsample *u, Tensor *x) {
    ConvFusedArgs a = {.x = x, .w = u->conv.weight, .b = u->conv.bias, .stride = 1, .pad = 1, .upsample2x = true};
    return t_conv2d_fused(&a);
}
