#ifndef DACLIP_TENSOR_OPS_H
#define DACLIP_TENSOR_OPS_H
/* Differentiable ops. Each returns a new arena tensor (contiguous unless it is a view op in tensor.h),
 * records a tape node when grad is on, and has a backward that adds into its inputs' gradients (or
 * stores, as the first writer of a gradient it covers whole: tensor/grad_write.h).
 * Shapes follow PyTorch; broadcasting follows NumPy. Any NULL input -> NULL output. */
#include "tensor/tensor.h"

/* ---- elementwise binary, NumPy broadcasting ---- */
Tensor *t_add(Tensor *a, Tensor *b);
Tensor *t_sub(Tensor *a, Tensor *b);
Tensor *t_mul(Tensor *a, Tensor *b);
Tensor *t_div(Tensor *a, Tensor *b);
/* ---- scalar forms ---- */
Tensor *t_add_scalar(Tensor *x, float s);
Tensor *t_mul_scalar(Tensor *x, float s);
Tensor *t_pow_scalar(Tensor *x, float p);               /* x^p */
/* a*alpha + b*beta with b broadcast to a (residual adds, lerps); common enough to fuse */
Tensor *t_axpby(Tensor *a, float alpha, Tensor *b, float beta);

/* ---- elementwise unary ---- */
Tensor *t_neg(Tensor *x);
Tensor *t_exp(Tensor *x);
Tensor *t_log(Tensor *x);
Tensor *t_sqrt(Tensor *x);
Tensor *t_rsqrt(Tensor *x);
Tensor *t_abs(Tensor *x);
Tensor *t_clamp(Tensor *x, float lo, float hi);         /* use -INFINITY/INFINITY for one-sided */
Tensor *t_relu(Tensor *x);
Tensor *t_gelu(Tensor *x);                              /* exact: 0.5 x (1 + erf(x/sqrt 2)) */
Tensor *t_quick_gelu(Tensor *x);                        /* x * sigmoid(1.702 x) */
Tensor *t_silu(Tensor *x);
Tensor *t_sigmoid(Tensor *x);
Tensor *t_tanh(Tensor *x);

/* ---- softmax family (over one axis) ---- */
Tensor *t_softmax(Tensor *x, int axis);
Tensor *t_log_softmax(Tensor *x, int axis);

/* ---- reductions (naxes == 0 means all axes) ---- */
Tensor *t_sum(Tensor *x, int naxes, const int *axes, bool keepdim);
Tensor *t_mean(Tensor *x, int naxes, const int *axes, bool keepdim);
Tensor *t_max(Tensor *x, int axis, bool keepdim);        /* gradient goes to the first max */
Tensor *t_var(Tensor *x, int naxes, const int *axes, bool keepdim, int correction); /* 0 = population */

/* ---- matrix products through cblas_sgemm ---- */
/* a [..., M, K] @ b [..., K, N] -> [..., M, N]; batch dims broadcast (b may be 2-D).
 * A view whose last two axes are transposed (t_transpose of a contiguous matrix) is passed to
 * sgemm as a transpose flag, not copied. */
Tensor *t_matmul(Tensor *a, Tensor *b);
/* x [..., in] W[out, in]^T + b[out] -> [..., out]; b may be NULL. */
Tensor *t_linear(Tensor *x, Tensor *w, Tensor *b);

/* ---- shape ops ---- */
Tensor *t_concat(int n, Tensor *const *xs, int axis);
/* Splits along axis into n pieces of the given sizes (views); returns n in out[]. */
void t_split(Tensor *x, int axis, int n, const int64_t *sizes, Tensor **out);
void t_chunk(Tensor *x, int axis, int n, Tensor **out);
/* Pads the last two axes (H, W): left, right, top, bottom. mode 0 = zeros, 1 = reflect. */
enum { T_PAD_ZERO = 0, T_PAD_REFLECT = 1 };
Tensor *t_pad2d(Tensor *x, int left, int right, int top, int bottom, int mode);
/* Rows of weight [V, D] for ids (n of them) -> [n, D] (reshape the result as needed). */
Tensor *t_embedding(Tensor *weight, const int32_t *ids, int64_t n);
/* out = mask != 0 ? value : x; mask broadcast to x. mask gets no gradient. */
Tensor *t_masked_fill(Tensor *x, Tensor *mask, float value);
/* Broadcasts x to shape (materialised; gradient sums back). */
Tensor *t_expand(Tensor *x, int ndim, const int64_t *shape);

/* ---- normalisation (fused; forward saves mean and rstd) ---- */
Tensor *t_layer_norm(Tensor *x, Tensor *w, Tensor *b, float eps);           /* over the last axis; w,b may be NULL */
Tensor *t_group_norm(Tensor *x, int groups, Tensor *w, Tensor *b, float eps); /* x [N, C, *] */
Tensor *t_channel_layer_norm(Tensor *x, Tensor *g, float eps);  /* x [N,C,H,W], over C per pixel, gain g [1,C,1,1] */

/* ---- convolution and resampling ([N, C, H, W]) ---- */
/* w [Cout, Cin, kh, kw], b [Cout] or NULL. im2col + sgemm, 1×1 fast path. */
Tensor *t_conv2d(Tensor *x, Tensor *w, Tensor *b, int stride, int pad);
Tensor *t_conv2d_ex(Tensor *x, Tensor *w, Tensor *b, int stride_h, int stride_w, int pad_h, int pad_w);
Tensor *t_upsample_nearest2x(Tensor *x);
Tensor *t_avg_pool2d(Tensor *x, int k, int stride);

/* ---- fused attention ----
 * q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] -> [B, H, Lq, Dv];
 * softmax(scale * q k^T + mask) v, mask [Lq, Lk] additive (may be NULL, -INFINITY allowed).
 * One tape node; forward and backward parallel over B*H. Saves the probabilities. */
Tensor *t_attention(Tensor *q, Tensor *k, Tensor *v, Tensor *mask, float scale);

/* ---- losses (mean reduction, scalar output) ---- */
Tensor *t_l1_loss(Tensor *pred, Tensor *target);
Tensor *t_mse_loss(Tensor *pred, Tensor *target);
/* logits [N, C], targets[N] in [0, C) -> mean cross entropy (fused log-softmax). */
Tensor *t_cross_entropy(Tensor *logits, const int32_t *targets);

#endif
