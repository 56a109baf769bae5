#ifndef DACLIP_NN_LINEAR_ATTENTION_H
#define DACLIP_NN_LINEAR_ATTENTION_H
/* module_util.LinearAttention(dim, heads=4, dim_head=32), the U-Net's attention at levels 0-2 (§5.3):
 *   qkv = to_qkv(x) (1×1 conv, no bias)                 "….to_qkv.weight" [3·heads·d, dim, 1, 1]
 *   per head q, k, v [d, HW]: q = softmax over d · d^-0.5,  k = softmax over HW,  v /= HW
 *   out = (k vᵀ)ᵀ q  -> [heads·d, H, W]
 *   to_out = 1×1 conv with bias, then the channel LayerNorm "….to_out.0.{weight,bias}", "….to_out.1.g"
 * LinearAttnBlock is the U-Net's Residual(PreNorm(dim, LinearAttention(dim))): x + attn(LN(x)), with
 * keys "prefix.fn.norm.g" and "prefix.fn.fn.<LinearAttention keys>". */
#include "nn/channel_layernorm.h"
#include "nn/conv2d.h"

typedef struct {
    Conv2d to_qkv;
    Conv2d to_out;               /* to_out.0 */
    ChannelLayerNorm out_norm;   /* to_out.1 */
    int heads, dim_head;
} LinearAttention;

void linear_attention_init(LinearAttention *a, ParamSet *ps, const char *prefix, int64_t dim, int heads,
                           int dim_head, TRng *r);
Tensor *linear_attention_forward(const LinearAttention *a, Tensor *x);   /* [N, dim, H, W] -> same */



typedef struct {
    ChannelLayerNorm norm;   /* fn.norm */
    LinearAttention attn;    /* fn.fn */
} LinearAttnBlock;

/* The U-Net configuration: 4 heads × 32. */
void linear_attn_block_init(LinearAttnBlock *b, ParamSet *ps, const char *prefix, int64_t dim, TRng *r);
/* One fused op, t_linear_attention_block (tensor/ops_fused.h). */
Tensor *linear_attn_block_forward(const LinearAttnBlock *b, Tensor *x);

#endif
