#ifndef DACLIP_NN_LINEAR_H
#define DACLIP_NN_LINEAR_H
/* torch.nn.Linear: y = x W^T + b, parameters "prefix.weight" [out, in] and "prefix.bias" [out].
 * Also the two GEMM kernels every fused layer in nn/ builds on (row-major, R rows of `in` features). */
#include <stdbool.h>
#include <stdint.h>

#include "nn/module.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    Tensor *weight;     /* [out, in] */
    Tensor *bias;       /* [out], or NULL */
    int64_t in, out;
} Linear;

/* Registers the parameters with PyTorch's default init: weight and bias ~ U(±1/sqrt(in)). */
void linear_init(Linear *l, ParamSet *ps, const char *prefix, int64_t in, int64_t out, bool bias, TRng *rng);
/* x [..., in] -> [..., out] */
Tensor *linear_forward(const Linear *l, Tensor *x);
/* res + linear(x) as one tape node (a residual branch's last projection): no separate branch output
 * and no gradient buffer for it. res has the output's shape. */
Tensor *linear_forward_add(const Linear *l, Tensor *x, Tensor *res);

/* ---- kernels (contiguous row-major buffers) ----
 * y[R, out] = seed + x[R, in] W[out, in]^T, where seed = b (broadcast; NULL = 0) plus res[R, out]
 * (NULL = nothing). */
void linear_kernel_forward(float *y, const float *x, const float *w, const float *b, const float *res, int64_t R,
                           int64_t in, int64_t out);
/* Accumulates the gradients of y = x W^T + b given dy[R, out]; dx, dw, db may each be NULL. dw_zero: dw
 * counts as zero (nn_weight_grad), so dy^T x is stored rather than added. */
void linear_kernel_backward(const float *dy, const float *x, const float *w, int64_t R, int64_t in, int64_t out,
                            float *dx, float *dw, bool dw_zero, float *db);
/* w's gradient buffer for linear_kernel_backward (NULL when w needs none); *zero as t_grad_buf_overwrite. */
float *nn_weight_grad(Tensor *w, bool *zero);
/* dx[R, in] = dy[R, out] W[out, in], overwriting dx (for scratch buffers: no memset first). */
void linear_kernel_input_grad_to(float *dx, const float *dy, const float *w, int64_t R, int64_t in, int64_t out);
/* t's gradient += src (contiguous, t's logical shape), allocating the gradient on first use. */
void nn_grad_accumulate(Tensor *t, const float *src);

#endif
