#ifndef DACLIP_TENSOR_FUSED_LINEAR_H
#define DACLIP_TENSOR_FUSED_LINEAR_H
/* The GEMM kernels the fused ops of tensor/ops_fused.h are built from (internal to tensor/): a linear layer
 * over R contiguous rows of `in` features, y[R, out] = x[R, in] W[out, in]^T (+ b) (+ res), and its
 * gradients. Plain buffers, no tape: the ops around them record the nodes. */
#include <stdbool.h>
#include <stdint.h>

#include "tensor/internal.h"

/* y = x W^T + b + res. b (broadcast over rows) and res ([R, out]) may each be NULL; res may be y itself. The
 * bias is added in the GEMM's write-back; a residual seeds y and the GEMM accumulates onto it. */
void t_linear_rows(float *y, const float *x, const float *w, const float *b, const float *res, int64_t R, int64_t in,
                   int64_t out);
/* Gradients of y = x W^T + b given dy[R, out]: dx[R, in] += dy W, dW (+)= dy^T x, db += column sums of dy.
 * dx, dw, db may each be NULL; dw_zero (from t_weight_grad_buf) stores dy^T x instead of adding it. */
void t_linear_rows_backward(const float *dy, const float *x, const float *w, int64_t R, int64_t in, int64_t out,
                            float *dx, float *dw, bool dw_zero, float *db);
/* dx[R, in] = dy[R, out] W[out, in], overwriting dx (a scratch buffer: no zero fill first). */
void t_linear_rows_input_grad_to(float *dx, const float *dy, const float *w, int64_t R, int64_t in, int64_t out);

/* w's gradient buffer for t_linear_rows_backward, NULL when w needs none; *zero as t_grad_buf_overwrite
 * (a lazily zeroed weight gradient is then overwritten by the weight-gradient GEMM, beta 0). */
static inline float *t_weight_grad_buf(Tensor *w, bool *zero) {
    *zero = false;
    return t_needs_grad(w) ? t_grad_buf_overwrite(w, zero) : NULL;
}

/* t's gradient buffer, NULL when t is absent (an optional input) or needs none. */
static inline float *t_grad_buf_if_needed(Tensor *t) { return t_needs_grad(t) ? t_grad_buf(t) : NULL; }

#endif
