#ifndef DACLIP_TENSOR_CONV_ACT_H
#define DACLIP_TENSOR_CONV_ACT_H
/* The activations of the IR-SDE ResBlock, as row kernels shared by the fused convolution
 * (tensor/ops_conv.c, applied while the convolution's result is stored) and the standalone ops of tensor/ops_fused.h:
 *   scale_shift_silu  y = silu(z·a + s), a = 1 + scale, s = shift of one (image, channel) plane
 *   silu_add          y = silu(z) + r
 * silu(z) = z·sigmoid(z) with the vectorised exp of tensor/vmath.h (exact in the tails: silu(−200) = −0). */
#include <stdbool.h>
#include <stdint.h>

void act_sss_forward(const float *z, float *y, int64_t n, float a, float s);
/* dz (+)= dy·silu'(z·a + s)·a (dz may be NULL); returns Σ dzz·z and Σ dzz (dzz = dy·silu'(·)) in
 * *dscale and *dshift, the plane's scale and shift gradients. */
void act_sss_backward(const float *z, const float *dy, float *dz, bool add, int64_t n, float a, float s,
                      float *dscale, float *dshift);
void act_silu_add_forward(const float *z, const float *r, float *y, int64_t n);
/* dz (+)= dy·silu'(z) */
void act_silu_backward(const float *z, const float *dy, float *dz, bool add, int64_t n);

#endif
