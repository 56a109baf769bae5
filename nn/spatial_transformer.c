/* SpatialTransformer (GroupNorm, proj_in, transformer blocks, proj_out) and its residual pre-norm wrapper. */
#include "nn/spatial_transformer.h"

#include <stdio.h>

#include "tensor/ops.h"

void basic_transformer_block_init(BasicTransformerBlock *b, ParamSet *ps, const char *prefix, int64_t dim,
                                  int heads, int dim_head, int64_t context_dim, TRng *r) {
    char p[256];
    /* the PyTorch module's registration order: attn1, ff, attn2, norm1..3 */
    cross_attention_init(&b->attn1, ps, nn_join(p, sizeof p, prefix, "attn1"), dim, 0, heads, dim_head, r);
    geglu_ff_init(&b->ff, ps, nn_join(p, sizeof p, prefix, "ff"), dim, 4, r);
    cross_attention_init(&b->attn2, ps, nn_join(p, sizeof p, prefix, "attn2"), dim, context_dim, heads, dim_head, r);
    layernorm_init(&b->norm1, ps, nn_join(p, sizeof p, prefix, "norm1"), dim);
    layernorm_init(&b->norm2, ps, nn_join(p, sizeof p, prefix, "norm2"), dim);
    layernorm_init(&b->norm3, ps, nn_join(p, sizeof p, prefix, "norm3"), dim);
}

Tensor *basic_transformer_block_forward(const BasicTransformerBlock *b, Tensor *x, Tensor *context) {
    x = t_add(cross_attention_forward(&b->attn1, layernorm_forward(&b->norm1, x), NULL), x);
    if (context && context->ndim == 3 && context->shape[1] == 1) {
        /* one context token: attn2 is the same vector for every token, added by broadcasting; norm2 and
         * to_q/to_k do not affect the output and get exact zero gradients */
        x = t_add(x, cross_attention_single_token(&b->attn2, context));
    } else {
        x = t_add(cross_attention_forward(&b->attn2, layernorm_forward(&b->norm2, x), context), x);
    }
    return t_add(geglu_ff_forward(&b->ff, layernorm_forward(&b->norm3, x)), x);
}

void spatial_transformer_init(SpatialTransformer *st, ParamSet *ps, const char *prefix, int64_t channels, int heads,
                              int dim_head, int depth, int64_t context_dim, TRng *r) {
    char p[256], q[256];
    int64_t inner = (int64_t)heads * dim_head;
    if (depth < 1 || depth > ST_MAX_DEPTH) {
        t_error("spatial_transformer_init", "depth %d outside 1..%d (%s)", depth, ST_MAX_DEPTH, prefix ? prefix : "");
        depth = depth < 1 ? 1 : ST_MAX_DEPTH;
    }
    groupnorm_init(&st->norm, ps, nn_join(p, sizeof p, prefix, "norm"), 32, channels, 1e-6f);
    conv2d_init(&st->proj_in, ps, nn_join(p, sizeof p, prefix, "proj_in"), channels, inner, 1, 1, 0, true, r);
    for (int i = 0; i < depth; i++) {
        snprintf(q, sizeof q, "transformer_blocks.%d", i);
        basic_transformer_block_init(&st->blocks[i], ps, nn_join(p, sizeof p, prefix, q), inner, heads, dim_head,
                                     context_dim, r);
    }
    st->depth = depth;
    conv2d_init(&st->proj_out, ps, nn_join(p, sizeof p, prefix, "proj_out"), inner, channels, 1, 1, 0, true, r);
    init_const(st->proj_out.weight, 0.0f);   /* zero_module(): the block starts as the identity */
    init_const(st->proj_out.bias, 0.0f);
}

Tensor *spatial_transformer_forward(const SpatialTransformer *st, Tensor *x, Tensor *context) {
    if (!x) return NULL;
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    Tensor *h = conv2d_forward(&st->proj_in, groupnorm_forward(&st->norm, x));   /* [B, inner, H, W] */
    if (!h) return NULL;
    int64_t inner = h->shape[1];
    h = t_contiguous(t_permute(h, (int[]){0, 2, 3, 1}));                        /* [B, H, W, inner] */
    if (!h) return NULL;
    h = t_reshape(h, T_SHAPE(B, H * W, inner));                                  /* tokens */
    for (int i = 0; i < st->depth; i++) h = basic_transformer_block_forward(&st->blocks[i], h, context);
    if (!h) return NULL;
    h = t_permute(t_reshape(h, T_SHAPE(B, H, W, inner)), (int[]){0, 3, 1, 2});  /* [B, inner, H, W] view */
    return t_add(conv2d_forward(&st->proj_out, t_contiguous(h)), x);
}

void spatial_transformer_block_init(SpatialTransformerBlock *b, ParamSet *ps, const char *prefix, int64_t channels,
                                    int heads, int dim_head, int64_t context_dim, TRng *r) {
    char p[256];
    spatial_transformer_init(&b->st, ps, nn_join(p, sizeof p, prefix, "fn.fn"), channels, heads, dim_head, 1,
                             context_dim, r);
    channel_layernorm_init(&b->norm, ps, nn_join(p, sizeof p, prefix, "fn.norm"), channels);
}

Tensor *spatial_transformer_block_forward(const SpatialTransformerBlock *b, Tensor *x, Tensor *context) {
    return t_add(spatial_transformer_forward(&b->st, channel_layernorm_forward(&b->norm, x), context), x);
}
