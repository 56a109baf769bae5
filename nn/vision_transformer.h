#ifndef DACLIP_NN_VISION_TRANSFORMER_H
#define DACLIP_NN_VISION_TRANSFORMER_H
/* open_clip's VisionTransformer (the CLIP image tower), shared by clip/ (the frozen encoder) and
 * controller/ (DA-CLIP's trainable copy). Parameter names under `prefix`:
 *   conv1.weight [W, 3, P, P] (no bias)   class_embedding [W]   positional_embedding [G*G+1, W]
 *   ln_pre.{weight,bias}   <transformer_prefix>.resblocks.N.*   ln_post.{weight,bias}   proj [W, E]
 * The transformer's own prefix is a parameter because DA-CLIP's controller wraps it one level deeper
 * ("transformer.transformer.resblocks.N"). */
#include <stdint.h>

#include "nn/layernorm.h"
#include "nn/module.h"
#include "nn/transformer.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    int image_size, patch_size, width, layers, heads, embed_dim;
} VisionConfig;

typedef struct {
    VisionConfig cfg;
    int64_t grid;                  /* image_size / patch_size */
    Tensor *conv1_weight;          /* [W, 3, P, P] */
    Tensor *class_embedding;       /* [W] */
    Tensor *positional_embedding;  /* [G*G+1, W] */
    LayerNorm ln_pre, ln_post;
    Transformer transformer;
    Tensor *proj;                  /* [W, E] */
} VisionTransformer;

/* Returns 0, or -1 for an invalid configuration (reported through t_error's handler). */
int vit_init(VisionTransformer *v, ParamSet *ps, const char *prefix, const char *transformer_prefix,
             const VisionConfig *cfg, TRng *rng);
void vit_free(VisionTransformer *v);
/* For inference only: the transformer's linear weights packed for the GEMM kernels (transformer_prepack). */
void vit_prepack(const VisionTransformer *v);
/* img [B, 3, S, S] (CLIP-normalised) -> tokens [B, G*G+1, W] after ln_pre (the transformer's input). */
Tensor *vit_embed(const VisionTransformer *v, Tensor *img);
/* tokens after the transformer [B, L, W] -> features [B, E] = ln_post(CLS) @ proj (unnormalised). */
Tensor *vit_head(const VisionTransformer *v, Tensor *tokens);
/* The whole tower: control (per-block additions, NULL = none) and hidden (room for `layers` block outputs,
 * NULL = not wanted) as in transformer_forward. -> [B, E] */
Tensor *vit_forward(const VisionTransformer *v, Tensor *img, Tensor *const *control, Tensor **hidden);

#endif
