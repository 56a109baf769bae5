/* LinearAttention and its residual pre-norm wrapper: parameters with the official names around the fused ops
 * t_linear_attention and t_linear_attention_block (tensor/ops_fused.h). */
#include "nn/linear_attention.h"

#include "tensor/ops_fused.h"

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
    Tensor *qkv = conv2d_forward(&a->to_qkv, x);                                    /* [B, 3·h·d, H, W] */
    Tensor *out = t_linear_attention(qkv, a->heads, a->dim_head);                    /* [B, h·d, H, W] */
    return channel_layernorm_forward(&a->out_norm, conv2d_forward(&a->to_out, out));
}


void linear_attn_block_init(LinearAttnBlock *b, ParamSet *ps, const char *prefix, int64_t dim, TRng *r) {
    char p[256];
    /* PreNorm registers fn before norm */
    linear_attention_init(&b->attn, ps, nn_join(p, sizeof p, prefix, "fn.fn"), dim, 4, 32, r);
    channel_layernorm_init(&b->norm, ps, nn_join(p, sizeof p, prefix, "fn.norm"), dim);
}

/* One op for the whole block: the 3·heads·d-channel qkv and the attention's output are recomputed in its
 * backward instead of being kept with their gradients (≈1 GB of a batch-4 128² U-Net step). */
Tensor *linear_attn_block_forward(const LinearAttnBlock *b, Tensor *x) {
    const LinearAttention *at = &b->attn;
    LinearAttnBlockArgs a = {.x = x, .norm_g = b->norm.g, .norm_eps = b->norm.eps, .w_qkv = at->to_qkv.weight,
                             .w_out = at->to_out.weight, .b_out = at->to_out.bias, .out_g = at->out_norm.g,
                             .out_eps = at->out_norm.eps, .heads = at->heads, .dim_head = at->dim_head};
    return t_linear_attention_block(&a);
}
