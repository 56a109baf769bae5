#ifndef DACLIP_TENSOR_CONV_FUSED_H
#define DACLIP_TENSOR_CONV_FUSED_H
/* A 2-D convolution with what the IR-SDE U-Net does around it folded in, as one tape node:
 *   - x2: the convolution reads cat(x, x2) along channels without building it (the U-Net's skips; the
 *     implicit-GEMM path's padded copy of the input is the concatenation);
 *   - upsample2x: the input is nearest-upsampled ×2 first, never built: a 3×3 convolution of the
 *     upsampled image is, per output phase (row and column parity), a 2×2 convolution of the input with
 *     summed weights, 4/9 of the multiply-adds (other kernels upsample for real);
 *   - act: the ResBlock's activations, applied while the result is stored:
 *       CONV_ACT_SCALE_SHIFT_SILU  y = silu(z·(1 + ss[n, c]) + ss[n, Cout + c]),  ss [N, 2·Cout]
 *       CONV_ACT_SILU_ADD          y = silu(z) + res,                              res [N, Cout, Ho, Wo]
 *     where z = conv + bias. With the tape on, z is kept for the backward (as the unfused ops keep it).
 * Gradients reach x, x2, w, b, ss and res. t_conv2d(x, w, b, s, p) is t_conv2d_fused with only those set. */
#include <stdbool.h>

#include "tensor/tensor.h"

enum { CONV_ACT_NONE, CONV_ACT_SCALE_SHIFT_SILU, CONV_ACT_SILU_ADD };

typedef struct {
    Tensor *x, *x2;    /* [N, C1, H, W], optional [N, C2, H, W] */
    Tensor *w, *b;     /* [Cout, C1 + C2, kh, kw], optional [Cout] */
    int stride, pad;
    bool upsample2x;
    int act;           /* CONV_ACT_* */
    Tensor *ss, *res;
} ConvFusedArgs;

Tensor *t_conv2d_fused(const ConvFusedArgs *a);

#endif
