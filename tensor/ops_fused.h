#ifndef DACLIP_TENSOR_OPS_FUSED_H
#define DACLIP_TENSOR_OPS_FUSED_H
/* Fused ops of the transformer and U-Net layers: each is one tape node (or, for the attention input
 * projection, one node with three outputs) doing the work of several ops of tensor/ops.h, with fewer saved
 * activations and gradient buffers. nn/ composes them (nn/linear.h, nn/mha.h, nn/transformer.h, nn/geglu.h,
 * nn/linear_attention.h). Weights are PyTorch's [out, in]; biases and residuals may be NULL. Like every op: a
 * NULL input gives a NULL output, a shape mismatch goes to t_error with the op name and the shapes. */
#include "tensor/tensor.h"

/* res + x W^T + b: x [..., in], W [out, in], b [out], res [..., out] (same rows as x) -> res's shape.
 * One node (a residual branch's last projection): the branch output x W^T + b is never materialised. */
Tensor *t_linear_add(Tensor *x, Tensor *w, Tensor *b, Tensor *res);

/* Self-attention's input projection in PyTorch's fused in_proj layout: x [B, L, C], W [3C, C] (q, k, v rows in
 * that order), b [3C] -> out[0] = q [B, H, nq, D] (the queries of the first nq tokens, 1 <= nq <= L),
 * out[1] = k, out[2] = v [B, H, L, D], D = C / heads. One GEMM x W^T -> [B, L, 3C]; q, k and v are strided
 * views of it (row stride 3C), which t_attention reads in place. The three outputs share one node (their
 * `node`), and their gradients, contiguous each in its own shape, are blocks of one buffer allocated with
 * the node; its backward gathers them back to [B·L, 3C] rows in scratch for its GEMMs. So the split into
 * heads costs no copy, no node and no gradient buffer of its own. Returns 0, or -1 with every out NULL. */
int t_mha_in_proj(Tensor *x, Tensor *w, Tensor *b, int heads, int64_t nq, Tensor *out[3]);

/* Self-attention's output projection: a [B, H, L, D] (t_attention's output) -> res + merge_heads(a) W^T + b,
 * [B, L, Cout], with merge_heads(a)[b, l, h·D + d] = a[b, h, l, d], W [Cout, H·D]. The heads are merged in
 * scratch (forward) and the input gradient is scattered back per head (backward). */
Tensor *t_mha_out_proj(Tensor *a, Tensor *w, Tensor *b, Tensor *res);

/* res + c_proj(gelu(c_fc(x))): x [..., C], w_fc [M, C], b_fc [M], w_proj [Cout, M], b_proj [Cout],
 * res [..., Cout] -> [..., Cout]; exact (erf) GELU. One node that saves only the pre-activation c_fc(x): the
 * GELU output is recomputed in backward, so the M-wide activations cost one buffer. */
Tensor *t_mlp_gelu_add(Tensor *x, Tensor *w_fc, Tensor *b_fc, Tensor *w_proj, Tensor *b_proj, Tensor *res);

/* ---- U-Net ---- */

/* x [..., 2D] -> x[..., :D] · gelu(x[..., D:]) (exact GELU): the gate of the GEGLU feed-forward. */
Tensor *t_geglu(Tensor *x);

/* silu(h·(1 + ss[:, :C]) + ss[:, C:]) with h [N, C, ...] and ss [N, 2C] (scale, then shift): the ResBlock's
 * modulation and activation in one pass over h. The U-Net applies it inside its convolution
 * (tensor/conv_fused.h); this is the same on an existing tensor. */
Tensor *t_scale_shift_silu(Tensor *h, Tensor *ss);
/* silu(a) + r (same shapes): the ResBlock's second activation and residual add, likewise. */
Tensor *t_silu_add(Tensor *a, Tensor *r);

/* LinearAttention between to_qkv and to_out (module_util.LinearAttention): qkv [B, 3·heads·dim_head, H, W]
 * -> [B, heads·dim_head, H, W]; per (image, head), with q, k, v the [d, H·W] slices, q softmaxed over d and
 * scaled by d^-1/2, k softmaxed over pixels, v divided by H·W, out = (k vᵀ)ᵀ q. Saves nothing of H·W size
 * beyond its input (q's softmax and k's are recomputed in backward); results do not depend on the thread
 * count. */
Tensor *t_linear_attention(Tensor *qkv, int heads, int dim_head);

/* The U-Net's Residual(PreNorm(LinearAttention)) block, y = x + LN_out(to_out(t_linear_attention(to_qkv(
 * LN_pre(x))))), with the IR-SDE channel layer norms (gain only) and 1×1 convolutions as matrices. One node
 * that saves x's norm statistics and the attention's ctx only: qkv, the attention's output and the norms'
 * outputs are recomputed image by image in backward. */
typedef struct {
    Tensor *x;                /* [B, C, H, W] */
    Tensor *norm_g;           /* LN_pre's gain, C elements */
    float norm_eps;
    Tensor *w_qkv;            /* to_qkv, [3·heads·dim_head, C] (or [.., .., 1, 1]), no bias */
    Tensor *w_out, *b_out;    /* to_out.0, [C, heads·dim_head] (or [.., .., 1, 1]); bias [C] or NULL */
    Tensor *out_g;            /* LN_out's gain (to_out.1), C elements */
    float out_eps;
    int heads, dim_head;
} LinearAttnBlockArgs;
Tensor *t_linear_attention_block(const LinearAttnBlockArgs *a);

#endif
