/* ResBlock with time-embedding scale/shift, its activations fused into its convolutions. */
#include "nn/resblock.h"

#include "tensor/conv_fused.h"
#include "tensor/ops.h"
#include "tensor/ops_fused.h"

void resblock_init(ResBlock *b, ParamSet *ps, const char *prefix, int64_t dim_in, int64_t dim_out,
                   int64_t time_emb_dim, TRng *r) {
    char p[256];
    /* registration order follows the PyTorch module: mlp, block1, block2, res_conv */
    b->has_mlp = time_emb_dim > 0;
    if (b->has_mlp) linear_init(&b->mlp, ps, nn_join(p, sizeof p, prefix, "mlp.1"), time_emb_dim, 2 * dim_out, true, r);
    conv2d_init(&b->block1, ps, nn_join(p, sizeof p, prefix, "block1.proj"), dim_in, dim_out, 3, 1, 1, false, r);
    conv2d_init(&b->block2, ps, nn_join(p, sizeof p, prefix, "block2.proj"), dim_out, dim_out, 3, 1, 1, false, r);
    b->has_res_conv = dim_in != dim_out;
    if (b->has_res_conv)
        conv2d_init(&b->res_conv, ps, nn_join(p, sizeof p, prefix, "res_conv"), dim_in, dim_out, 1, 1, 0, false, r);
}

Tensor *resblock_forward(const ResBlock *b, Tensor *x, Tensor *temb) { return resblock_forward_cat(b, x, NULL, temb); }

/* Each convolution is one fused op (tensor/conv_fused.h): block1 reads cat(x, skip) in place and applies
 * the modulation + SiLU as it stores; block2 applies its SiLU and the residual add the same way. */
Tensor *resblock_forward_cat(const ResBlock *b, Tensor *x, Tensor *skip, Tensor *temb) {
    if (!x) return NULL;
    ConvFusedArgs c1 = {.x = x, .x2 = skip, .w = b->block1.weight, .stride = b->block1.stride, .pad = b->block1.pad};
    if (b->has_mlp && temb) {
        c1.act = CONV_ACT_SCALE_SHIFT_SILU;
        c1.ss = linear_forward(&b->mlp, t_silu(temb));   /* [N, 2·Cout]: scale, shift */
        if (!c1.ss) return NULL;
    }
    Tensor *h = t_conv2d_fused(&c1);
    if (c1.act == CONV_ACT_NONE) h = t_silu(h);
    Tensor *r = x;
    if (b->has_res_conv) {
        ConvFusedArgs cr = {.x = x, .x2 = skip, .w = b->res_conv.weight, .stride = 1};
        r = t_conv2d_fused(&cr);
    } else if (skip) {
        Tensor *parts[2] = {x, skip};
        r = t_concat(2, parts, 1);
    }
    if (!h || !r) return NULL;
    ConvFusedArgs c2 = {.x = h, .w = b->block2.weight, .stride = b->block2.stride, .pad = b->block2.pad,
                        .act = CONV_ACT_SILU_ADD, .res = r};
    return t_conv2d_fused(&c2);
}

