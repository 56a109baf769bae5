#ifndef DACLIP_TENSOR_CHANNEL_NORM_H
#define DACLIP_TENSOR_CHANNEL_NORM_H
/* The IR-SDE channel layer norm (tensor/ops_norm.c: over C at each pixel, population variance, gain g)
 * on one image's [C, P] planes, for fused ops that keep their own statistics (tensor/op_linear_attention.c).
 * Threads split the pixels; results do not depend on the thread count. */
#include <stdbool.h>
#include <stdint.h>

/* y = (x − mean)·rstd·g (+ add, when given); mean/rstd [P] receive the statistics when non-NULL. */
void t_cln_image_forward(const float *x, float *y, const float *g, int64_t C, int64_t P, float eps, float *mean,
                         float *rstd, const float *add);
/* y = (x − mean)·rstd·g from saved statistics. */
void t_cln_image_apply(const float *x, float *y, const float *g, int64_t C, int64_t P, const float *mean,
                       const float *rstd);
/* dx (+)= the input gradient for upstream dy (stored when !add); dg[c] += Σ_p dy·xhat, summed in a fixed
 * order (dg may be NULL). */
void t_cln_image_backward(const float *x, const float *dy, const float *g, const float *mean, const float *rstd,
                          int64_t C, int64_t P, float *dx, bool add, float *dg);

#endif
