#include "nn/vision_transformer.h"

#include <math.h>
#include <stdio.h>

#include "tensor/ops.h"

int vit_init(VisionTransformer *v, ParamSet *ps, const char *prefix, const char *transformer_prefix,
             const VisionConfig *cfg, TRng *rng) {
    if (cfg->patch_size <= 0 || cfg->image_size % cfg->patch_size || cfg->width % cfg->heads) {
        t_error("vit_init", "image %d, patch %d, width %d, heads %d do not fit together", cfg->image_size,
                cfg->patch_size, cfg->width, cfg->heads);
        return -1;
    }
    char name[256];
    v->cfg = *cfg;
    v->grid = cfg->image_size / cfg->patch_size;
    int64_t W = cfg->width, P = cfg->patch_size;
    v->conv1_weight = params_new(ps, prefix, "conv1.weight", T_SHAPE(W, 3, P, P));
    init_kaiming_uniform(v->conv1_weight, rng, 3 * P * P);
    float scale = 1.0f / sqrtf((float)W);   /* open_clip: width ** -0.5 * randn */
    v->class_embedding = params_new(ps, prefix, "class_embedding", T_SHAPE(W));
    init_normal(v->class_embedding, rng, scale);
    v->positional_embedding = params_new(ps, prefix, "positional_embedding", T_SHAPE(v->grid * v->grid + 1, W));
    init_normal(v->positional_embedding, rng, scale);
    layernorm_init(&v->ln_pre, ps, nn_join(name, sizeof name, prefix, "ln_pre"), W);
    char tp[256];
    nn_join(tp, sizeof tp, prefix, transformer_prefix);
    if (transformer_init(&v->transformer, ps, tp, W, cfg->layers, cfg->heads, 4.0, rng)) return -1;
    layernorm_init(&v->ln_post, ps, nn_join(name, sizeof name, prefix, "ln_post"), W);
    v->proj = params_new(ps, prefix, "proj", T_SHAPE(W, cfg->embed_dim));
    init_normal(v->proj, rng, scale);
    return 0;
}

void vit_free(VisionTransformer *v) { transformer_free(&v->transformer); }

void vit_prepack(const VisionTransformer *v) { transformer_prepack(&v->transformer); }

Tensor *vit_embed(const VisionTransformer *v, Tensor *img) {
    if (!img) return NULL;
    int64_t B = img->shape[0], W = v->cfg.width, G = v->grid;
    if (img->ndim != 4 || img->shape[1] != 3 || img->shape[2] != v->cfg.image_size || img->shape[3] != v->cfg.image_size) {
        char s[96];
        t_error("vit_embed", "expected an image batch [B, 3, %d, %d], got %s", v->cfg.image_size, v->cfg.image_size,
                t_shape_str(img, s, sizeof s));
        return NULL;
    }
    Tensor *p = t_conv2d(img, v->conv1_weight, NULL, v->cfg.patch_size, 0);          /* [B, W, G, G] */
    p = t_transpose(t_reshape(p, T_SHAPE(B, W, G * G)), 1, 2);                        /* [B, G*G, W] */
    Tensor *cls = t_expand(t_reshape(v->class_embedding, T_SHAPE(1, 1, W)), T_SHAPE(B, 1, W));  /* [B, 1, W] */
    Tensor *parts[2] = {cls, p};
    Tensor *x = t_add(t_concat(2, parts, 1), v->positional_embedding);               /* [B, G*G+1, W] */
    return layernorm_forward(&v->ln_pre, x);
}

Tensor *vit_head(const VisionTransformer *v, Tensor *tokens) {
    Tensor *cls = layernorm_forward(&v->ln_post, t_select(tokens, 1, 0));           /* [B, W] */
    return t_matmul(cls, v->proj);                                                   /* [B, E] */
}

Tensor *vit_forward(const VisionTransformer *v, Tensor *img, Tensor *const *control, Tensor **hidden) {
    Tensor *x = vit_embed(v, img);
    /* only the class token leaves the tower: the last block skips the other tokens' rows unless the
     * caller wants every block's full output */
    x = transformer_forward_first(&v->transformer, x, NULL, control, hidden, hidden ? 0 : 1);  /* [B, 1 or L, W] */
    return x ? vit_head(v, x) : NULL;
}
