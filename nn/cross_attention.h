#ifndef DACLIP_NN_CROSS_ATTENTION_H
#define DACLIP_NN_CROSS_ATTENTION_H
/* attention.CrossAttention(query_dim, context_dim, heads, dim_head): multi-head attention of x [B, N, Cq]
 * over a context [B, M, Cc] (x itself when the context is NULL: self-attention), inner = heads·dim_head.
 *   "prefix.to_q.weight" [inner, Cq], "prefix.to_k.weight" / "prefix.to_v.weight" [inner, Cc] (no bias),
 *   "prefix.to_out.0.{weight [Cq, inner], bias}"  (to_out.1 is a Dropout(0)).
 * out = to_out(softmax(q kᵀ / sqrt(dim_head)) v), through the fused t_attention. */
#include "nn/linear.h"

typedef struct {
    Linear to_q, to_k, to_v, to_out;
    int heads, dim_head;
} CrossAttention;

/* context_dim 0 means query_dim (self-attention). */
void cross_attention_init(CrossAttention *a, ParamSet *ps, const char *prefix, int64_t query_dim,
                          int64_t context_dim, int heads, int dim_head, TRng *r);
/* x [B, N, Cq], context [B, M, Cc] or NULL -> [B, N, Cq].
 * With a one-token context the softmax is exactly 1, so the result is to_out(to_v(context)) for every query;
 * that is computed directly (to_q/to_k get their exact zero gradients by not being used). */
Tensor *cross_attention_forward(const CrossAttention *a, Tensor *x, Tensor *context);
/* The one-token case before broadcasting over queries: context [B, 1, Cc] -> [B, 1, Cq]. */
Tensor *cross_attention_single_token(const CrossAttention *a, Tensor *context);

#endif
