#ifndef DACLIP_NN_RESBLOCK_H
#define DACLIP_NN_RESBLOCK_H
/* module_util.ResBlock with default_conv (reference §5.3): no normalisation, bias-free convs.
 *   (scale, shift) = chunk2(Linear(SiLU(temb)))                     "prefix.mlp.1.{weight,bias}"  [2·Cout, T]
 *   h = SiLU(conv3x3(x)·(scale + 1) + shift)                         "prefix.block1.proj.weight"   [Cout, Cin, 3, 3]
 *   h = SiLU(conv3x3(h))                                             "prefix.block2.proj.weight"   [Cout, Cout, 3, 3]
 *   out = h + res_conv(x)   (1×1 bias-free conv if Cin != Cout, else identity)  "prefix.res_conv.weight"
 * time_emb_dim 0 builds the block without "mlp" (and forward then ignores temb). */
#include <stdbool.h>

#include "nn/conv2d.h"
#include "nn/linear.h"

typedef struct {
    Linear mlp;             /* mlp.1 (mlp.0 is the SiLU) */
    Conv2d block1, block2;  /* .proj of each Block */
    Conv2d res_conv;
    bool has_mlp, has_res_conv;
} ResBlock;

void resblock_init(ResBlock *b, ParamSet *ps, const char *prefix, int64_t dim_in, int64_t dim_out,
                   int64_t time_emb_dim, TRng *r);
/* x [N, Cin, H, W], temb [N, T] or NULL -> [N, Cout, H, W] */
Tensor *resblock_forward(const ResBlock *b, Tensor *x, Tensor *temb);
/* The same on cat(x, skip) along channels (the U-Net's up path), without building the concatenation. */
Tensor *resblock_forward_cat(const ResBlock *b, Tensor *x, Tensor *skip, Tensor *temb);



#endif
