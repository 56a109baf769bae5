#ifndef DACLIP_TENSOR_OPS_FUSED_H
#define DACLIP_TENSOR_OPS_FUSED_H
/* Fused ops of the transformer layers: each is one tape node (or, for the attention input projection, one
 * node with three outputs) doing the work of several ops of tensor/ops.h, with fewer saved activations and
 * gradient buffers. nn/ composes them (nn/linear.h, nn/mha.h, nn/transformer.h). Weights are PyTorch's
 * [out, in]; biases and residuals may be NULL. Like every op: a NULL input gives a NULL output, a shape
 * mismatch goes to t_error with the op name and the shapes. */
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

#endif
