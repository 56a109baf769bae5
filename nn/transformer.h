#ifndef DACLIP_NN_TRANSFORMER_H
#define DACLIP_NN_TRANSFORMER_H
/* open_clip's ResidualAttentionBlock and Transformer (a stack of them), batch-first [B, L, C]:
 *   prefix.ln_1.{weight,bias}  prefix.attn.{in_proj_weight,in_proj_bias,out_proj.weight,out_proj.bias}
 *   prefix.ln_2.{weight,bias}  prefix.mlp.c_fc.{weight,bias}  prefix.mlp.c_proj.{weight,bias}
 *   x = x + attn(ln_1(x));  x = x + c_proj(gelu(c_fc(ln_2(x))))        (exact erf GELU)
 * A Transformer names its blocks "prefix.resblocks.N.". */
#include <stdint.h>

#include "nn/layernorm.h"
#include "nn/linear.h"
#include "nn/mha.h"
#include "nn/module.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    LayerNorm ln_1, ln_2;
    MultiheadAttention attn;
    struct {
        Linear c_fc;        /* C -> mlp width */
        Linear c_proj;      /* mlp width -> C */
    } mlp;
} ResidualAttentionBlock;

typedef struct {
    int64_t width;
    int layers, heads;
    ResidualAttentionBlock *resblocks;   /* [layers], malloc'd; the parameters belong to the ParamSet */
} Transformer;

/* mlp_width = round(width * mlp_ratio) as in open_clip (4.0 for CLIP). Returns 0, or -1 on a bad
 * configuration (width not divisible by heads), reported through t_error's handler. */
int res_attn_block_init(ResidualAttentionBlock *blk, ParamSet *ps, const char *prefix, int64_t width, int heads,
                  double mlp_ratio, TRng *rng);
/* x [B, L, C] -> [B, L, C]; mask NULL or additive [L, L]. */
Tensor *res_attn_block_forward(const ResidualAttentionBlock *blk, Tensor *x, Tensor *mask);
/* The block's output for the first nq tokens only, [B, nq, C] (attention still reads all L tokens);
 * nq >= L is the whole block. */
Tensor *res_attn_block_forward_first(const ResidualAttentionBlock *blk, Tensor *x, Tensor *mask, int64_t nq);

/* res + c_proj(gelu(c_fc(x))) as one tape node (t_mlp_gelu_add; res may be NULL). Saves only the
 * pre-activation c_fc(x); the GELU output is recomputed in backward, so the 4C-wide activations cost one
 * buffer. */
Tensor *mlp_gelu_forward_add(const Linear *c_fc, const Linear *c_proj, Tensor *x, Tensor *res);

int transformer_init(Transformer *tf, ParamSet *ps, const char *prefix, int64_t width, int layers, int heads,
                     double mlp_ratio, TRng *rng);
void transformer_free(Transformer *tf);    /* the block array only; NULL-safe */
/* For inference only: packs the blocks' four linear weights in place for the GEMM kernels (t_prepack_weight;
 * the same results; ViT-B/32 encode 5–15 % faster). The weights must then not be trained or saved without
 * t_unpack_weight (params_save_file does that). Weights that cannot be packed stay as they are. */
void transformer_prepack(const Transformer *tf);
/* Runs the blocks in order. After block i, control[i] (if control and control[i] are non-NULL, any shape
 * that broadcasts to [B, L, C]) is added to the stream: this is the DA-CLIP hook. DA-CLIP's frozen
 * encoder consumes the controller's list from the end (block j gets c_{layers-1-j}, see
 * docs daclip-reference 1.3): the caller passes the list in that reversed order.
 * hidden: NULL, or room for `layers` tensors that receive every block's output (after its control). */
Tensor *transformer_forward(const Transformer *tf, Tensor *x, Tensor *mask, Tensor *const *control, Tensor **hidden);
/* The same, but the last block computes only its first last_rows tokens (0: all), so it returns
 * [B, last_rows, C]: for a caller that reads only those (CLIP's image tower reads the class token), the
 * rest of the last block is work thrown away (1/12 of ViT-B/32). hidden[layers-1] has last_rows tokens. */
Tensor *transformer_forward_first(const Transformer *tf, Tensor *x, Tensor *mask, Tensor *const *control,
                                  Tensor **hidden, int64_t last_rows);

#endif
