#ifndef DACLIP_NN_SPATIAL_TRANSFORMER_H
#define DACLIP_NN_SPATIAL_TRANSFORMER_H
/* attention.SpatialTransformer(C, heads, dim_head, depth, context_dim), inner = heads·dim_head (§5.3):
 *   h = proj_in(GroupNorm(32, C, eps 1e-6)(x)) -> tokens [B, HW, inner]         "….norm.*", "….proj_in.*"
 *   per BasicTransformerBlock ("….transformer_blocks.i."):
 *     h += attn1(norm1(h));  h += attn2(norm2(h), context);  h += ff(norm3(h))   (LayerNorms eps 1e-5)
 *   out = proj_out(h as [B, inner, H, W]) + x          (1×1 convs with bias; proj_out zero-initialised)
 * SpatialTransformerBlock is the U-Net's Residual(PreNorm(C, SpatialTransformer)): keys "prefix.fn.norm.g"
 * and "prefix.fn.fn.<SpatialTransformer keys>"; output x + ST(LN(x)) = x + LN(x) + proj_out(…). */
#include "nn/channel_layernorm.h"
#include "nn/conv2d.h"
#include "nn/cross_attention.h"
#include "nn/geglu.h"
#include "nn/groupnorm.h"
#include "nn/layernorm.h"

#define ST_MAX_DEPTH 4

typedef struct {
    CrossAttention attn1;          /* self-attention */
    FeedForwardGEGLU ff;
    CrossAttention attn2;          /* to the context */
    LayerNorm norm1, norm2, norm3;
} BasicTransformerBlock;

typedef struct {
    GroupNorm norm;
    Conv2d proj_in, proj_out;
    BasicTransformerBlock blocks[ST_MAX_DEPTH];
    int depth;
} SpatialTransformer;

void basic_transformer_block_init(BasicTransformerBlock *b, ParamSet *ps, const char *prefix, int64_t dim,
                                  int heads, int dim_head, int64_t context_dim, TRng *r);
/* x [B, L, dim], context [B, M, Cc] (NULL: attn2 is self-attention) -> [B, L, dim] */
Tensor *basic_transformer_block_forward(const BasicTransformerBlock *b, Tensor *x, Tensor *context);

void spatial_transformer_init(SpatialTransformer *st, ParamSet *ps, const char *prefix, int64_t channels, int heads,
                              int dim_head, int depth, int64_t context_dim, TRng *r);
/* x [B, C, H, W], context [B, M, Cc] or NULL -> [B, C, H, W] */
Tensor *spatial_transformer_forward(const SpatialTransformer *st, Tensor *x, Tensor *context);

typedef struct {
    ChannelLayerNorm norm;   /* fn.norm */
    SpatialTransformer st;   /* fn.fn */
} SpatialTransformerBlock;

/* The U-Net configuration: heads = C / 32, dim_head 32, depth 1. */
void spatial_transformer_block_init(SpatialTransformerBlock *b, ParamSet *ps, const char *prefix, int64_t channels,
                                    int heads, int dim_head, int64_t context_dim, TRng *r);
Tensor *spatial_transformer_block_forward(const SpatialTransformerBlock *b, Tensor *x, Tensor *context);

#endif
