/* LinearAttention (softmax over channels for q, over positions for k) and its residual pre-norm wrapper. */
#include "nn/linear_attention.h"

#include <math.h>

#include "tensor/ops.h"

void linear_attention_init(LinearAttention *a, ParamSet *ps, const char *prefix, int64_t dim, int heads,
                           int dim_head, TRng *r) {
    char p[256];
    int64_t hidden = (int64_t)heads * dim_head;
    conv2d_init(&a->to_qkv, ps, nn_join(p, sizeof p, prefix, "to_qkv"), dim, 3 * hidden, 1, 1, 0, false, r);
    conv2d_init(&a->to_out, ps, nn_join(p, sizeof p, prefix, "to_out.0"), hidden, dim, 1, 1, 0, true, r);
    channel_layernorm_init(&a->out_norm, ps, nn_join(p, sizeof p, prefix, "to_out.1"), dim);
    a->heads = heads;
    a->dim_head = dim_head;
}

Tensor *linear_attention_forward(const LinearAttention *a, Tensor *x) {
    if (!x) return NULL;
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3], N = H * W;
    Tensor *qkv = conv2d_forward(&a->to_qkv, x);                                    /* [B, 3·h·d, H, W] */
    qkv = t_reshape(qkv, T_SHAPE(B, 3, a->heads, a->dim_head, N));                  /* chunk(3) then per head */
    Tensor *q = t_select(qkv, 1, 0), *k = t_select(qkv, 1, 1), *v = t_select(qkv, 1, 2);   /* [B, h, d, N] */
    q = t_mul_scalar(t_softmax(q, -2), 1.0f / sqrtf((float)a->dim_head));
    k = t_softmax(k, -1);
    v = t_mul_scalar(v, 1.0f / (float)N);
    Tensor *ctx = t_matmul(k, t_transpose(v, -1, -2));                              /* [B, h, d, e] */
    Tensor *out = t_matmul(t_transpose(ctx, -1, -2), q);                            /* [B, h, e, N] */
    out = t_reshape(out, T_SHAPE(B, (int64_t)a->heads * a->dim_head, H, W));
    return channel_layernorm_forward(&a->out_norm, conv2d_forward(&a->to_out, out));
}

void linear_attn_block_init(LinearAttnBlock *b, ParamSet *ps, const char *prefix, int64_t dim, TRng *r) {
    char p[256];
    /* PreNorm registers fn before norm */
    linear_attention_init(&b->attn, ps, nn_join(p, sizeof p, prefix, "fn.fn"), dim, 4, 32, r);
    channel_layernorm_init(&b->norm, ps, nn_join(p, sizeof p, prefix, "fn.norm"), dim);
}

Tensor *linear_attn_block_forward(const LinearAttnBlock *b, Tensor *x) {
    return t_add(linear_attention_forward(&b->attn, channel_layernorm_forward(&b->norm, x)), x);
}
