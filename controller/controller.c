/* DA-CLIP's controller: the trainable copy of the image tower, its zero layers and the coupling to the frozen
 * tower (reference §1.3–1.5). */
#include "controller/controller.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

int controller_init(DaclipController *c, ParamSet *ps, const VisionConfig *cfg, TRng *rng) {
    memset(c, 0, sizeof *c);
    if (cfg->layers < 1 || cfg->layers > 256) {
        t_error("controller_init", "%d layers (1..256 expected)", cfg->layers);
        return -1;
    }
    /* the controller's tower is a deep copy of the CLIP tower with its transformer wrapped one level deeper
     * (ControlTransformer.transformer) */
    if (vit_init(&c->visual, ps, "visual_control", "transformer.transformer", cfg, rng)) return -1;
    c->zero_modules = calloc((size_t)cfg->layers, sizeof *c->zero_modules);
    if (!c->zero_modules) {
        vit_free(&c->visual);
        t_error("controller_init", "out of memory");
        return -1;
    }
    char name[128];
    for (int i = 0; i < cfg->layers; i++) {
        snprintf(name, sizeof name, "visual_control.transformer.zero_modules.%d", i);
        linear_init(&c->zero_modules[i], ps, name, cfg->width, cfg->width, true, rng);
        init_const(c->zero_modules[i].weight, 0.0f);   /* zero_module() */
        init_const(c->zero_modules[i].bias, 0.0f);
    }
    c->logit_scale = params_new(ps, "", "logit_scale", 0, NULL);
    if (ps->failed) return -1;   /* out of memory or a name clash: the message is in t_errmsg() */
    c->logit_scale->data[0] = logf(1.0f / 0.07f);
    return 0;
}

void controller_free(DaclipController *c) {
    if (!c) return;
    vit_free(&c->visual);
    free(c->zero_modules);
    c->zero_modules = NULL;
}

/* Every tensor of a tower in one fixed order, so two towers of one configuration pair up. Returns the count;
 * out has room for 8 + 12·layers. */
static int tower_tensors(const VisionTransformer *v, Tensor **out) {
    int n = 0;
    out[n++] = v->conv1_weight;
    out[n++] = v->class_embedding;
    out[n++] = v->positional_embedding;
    out[n++] = v->ln_pre.weight;
    out[n++] = v->ln_pre.bias;
    for (int i = 0; i < v->transformer.layers; i++) {
        const ResidualAttentionBlock *b = &v->transformer.resblocks[i];
        Tensor *blk[] = {b->ln_1.weight,       b->ln_1.bias,         b->attn.in_proj_weight, b->attn.in_proj_bias,
                         b->attn.out_proj.weight, b->attn.out_proj.bias, b->ln_2.weight,      b->ln_2.bias,
                         b->mlp.c_fc.weight,   b->mlp.c_fc.bias,     b->mlp.c_proj.weight,   b->mlp.c_proj.bias};
        for (size_t k = 0; k < sizeof blk / sizeof blk[0]; k++) out[n++] = blk[k];
    }
    out[n++] = v->ln_post.weight;
    out[n++] = v->ln_post.bias;
    out[n++] = v->proj;
    return n;
}

static bool same_config(const VisionConfig *a, const VisionConfig *b) {
    return a->image_size == b->image_size && a->patch_size == b->patch_size && a->width == b->width &&
           a->layers == b->layers && a->heads == b->heads && a->embed_dim == b->embed_dim;
}

void controller_prepack(const DaclipController *c) {
    vit_prepack(&c->visual);
    for (int i = 0; i < c->visual.cfg.layers; i++) t_prepack_weight(c->zero_modules[i].weight);   /* [W, W] */
}

int controller_start_from(DaclipController *c, const VisionTransformer *frozen, float clip_logit_scale,
                          bool official_quirk) {
    const VisionConfig *a = &c->visual.cfg, *b = &frozen->cfg;
    if (!same_config(a, b)) {
        t_error("controller", "the controller (image %d, patch %d, width %d, %d layers, %d heads, embed %d) and the "
                "CLIP image tower (image %d, patch %d, width %d, %d layers, %d heads, embed %d) differ",
                a->image_size, a->patch_size, a->width, a->layers, a->heads, a->embed_dim, b->image_size,
                b->patch_size, b->width, b->layers, b->heads, b->embed_dim);
        return -1;
    }
    int cap = 8 + 12 * a->layers;
    Tensor **src = malloc(sizeof(Tensor *) * (size_t)cap), **dst = malloc(sizeof(Tensor *) * (size_t)cap);
    if (!src || !dst) {
        free(src), free(dst);
        t_error("controller", "out of memory");
        return -1;
    }
    int n = tower_tensors(frozen, src);
    tower_tensors(&c->visual, dst);
    for (int i = 0; i < n; i++) memcpy(dst[i]->data, src[i]->data, sizeof(float) * (size_t)t_numel(src[i]));
    free(src), free(dst);
    for (int i = 0; i < a->layers; i++) {
        init_const(c->zero_modules[i].weight, 0.0f);
        init_const(c->zero_modules[i].bias, 0.0f);
    }
    if (official_quirk) {
        /* the official zip of clip.visual's and visual_control's parameter lists is off by the 24 zero-layer
         * tensors: ln_post.{weight,bias} land on zero_modules.0 (the weight broadcast over rows), and the
         * controller's own ln_post keeps PyTorch's fresh init */
        int64_t W = a->width;
        float *zw = c->zero_modules[0].weight->data;
        for (int64_t r = 0; r < W; r++) memcpy(zw + r * W, frozen->ln_post.weight->data, sizeof(float) * (size_t)W);
        memcpy(c->zero_modules[0].bias->data, frozen->ln_post.bias->data, sizeof(float) * (size_t)W);
        init_const(c->visual.ln_post.weight, 1.0f);
        init_const(c->visual.ln_post.bias, 0.0f);
    }
    c->logit_scale->data[0] = clip_logit_scale;
    return 0;
}

Tensor *controller_forward(const DaclipController *c, Tensor *img, Tensor **controls, bool cls_only_last) {
    int L = c->visual.cfg.layers;
    Tensor **h = t_arena_alloc(sizeof(Tensor *) * (size_t)L);
    if (!h) return NULL;
    Tensor *x = vit_embed(&c->visual, img);                                        /* [B, T, W] */
    /* every block's full output is needed: each one feeds a control added to all tokens of the encoder */
    x = transformer_forward(&c->visual.transformer, x, NULL, NULL, h);             /* [B, T, W] */
    if (!x) return NULL;
    for (int i = 0; i < L; i++) {
        Tensor *hi = h[i];
        if (i == 0 && cls_only_last) hi = t_slice(hi, 1, 0, 1);                    /* [B, 1, W] */
        controls[L - 1 - i] = linear_forward(&c->zero_modules[i], hi);             /* [B, T or 1, W] */
        if (!controls[L - 1 - i]) return NULL;
    }
    return vit_head(&c->visual, x);                                                /* [B, E] */
}

int daclip_encode_image(const DaclipController *c, const VisionTransformer *frozen, Tensor *img, Tensor **content,
                        Tensor **degradation) {
    *content = *degradation = NULL;
    if (!same_config(&c->visual.cfg, &frozen->cfg)) {
        t_error("daclip_encode_image", "the controller and the image tower have different configurations");
        return -1;
    }
    Tensor **controls = t_arena_alloc(sizeof(Tensor *) * (size_t)c->visual.cfg.layers);
    if (!controls) return -1;
    *degradation = controller_forward(c, img, controls, true);                      /* [B, E] */
    if (!*degradation) return -1;
    /* vit_forward without hidden keeps only the class token in the last block: c_0 was made for it alone */
    *content = vit_forward(frozen, img, controls, NULL);                            /* [B, E] */
    return *content ? 0 : -1;
}
