#include "clip/model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

int clip_config_preset(const char *name, ClipConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    if (!strcmp(name, "ViT-B-32")) {
        c->vision = (VisionConfig){224, 32, 768, 12, 12, 512};
        c->context_length = 77, c->vocab_size = 49408, c->text_width = 512, c->text_heads = 8, c->text_layers = 12;
    } else if (!strcmp(name, "tiny")) {
        c->vision = (VisionConfig){64, 8, 128, 4, 4, 128};
        c->context_length = 32, c->vocab_size = 49408, c->text_width = 128, c->text_heads = 4, c->text_layers = 4;
    } else if (!strcmp(name, "tiny-128")) {
        /* tiny's transformer (64 tokens) on a 128-px view: 16-px patches cover 2×2 JPEG blocks, which a
         * 64-px view of a 128-px crop averages away */
        c->vision = (VisionConfig){128, 16, 128, 4, 4, 128};
        c->context_length = 32, c->vocab_size = 49408, c->text_width = 128, c->text_heads = 4, c->text_layers = 4;
    } else if (!strcmp(name, "tiny-128-deep")) {
        /* tiny-128 with twice the image layers (twice the cost): tiny-128's controller fits only part of its
         * training crops (models/README.md); the text tower stays tiny's, its embeddings are cached anyway */
        c->vision = (VisionConfig){128, 16, 128, 8, 4, 128};
        c->context_length = 32, c->vocab_size = 49408, c->text_width = 128, c->text_heads = 4, c->text_layers = 4;
    } else if (!strcmp(name, "small")) {
        c->vision = (VisionConfig){96, 16, 256, 6, 4, 256};
        c->context_length = 77, c->vocab_size = 49408, c->text_width = 256, c->text_heads = 4, c->text_layers = 6;
    } else {
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ configuration in files */

/* Bounds for a configuration read from a file: generous for any real CLIP (ViT-bigG has width 1664, 48
 * layers, 16 heads) yet small enough that a crafted value cannot overflow the shape arithmetic. The model
 * loader also requires the file to hold the parameters the configuration implies (clip_param_count), so
 * the memory allocated is bounded by the file's size. */
#define CLIP_MAX_IMAGE 4096
#define CLIP_MAX_TOKENS 16385     /* grid² + 1 image tokens */
#define CLIP_MAX_WIDTH 16384
#define CLIP_MAX_LAYERS 256
#define CLIP_MAX_CONTEXT 16384
#define CLIP_MAX_VOCAB 4194304

typedef struct {
    const char *key;
    size_t offset;             /* of the int field in ClipConfig */
    int64_t lo, hi;
} IntField;

#define FIELD(key, member, lo, hi) {key, offsetof(ClipConfig, member), lo, hi}
static const IntField fields[] = {
    FIELD("image_size", vision.image_size, 1, CLIP_MAX_IMAGE),
    FIELD("patch_size", vision.patch_size, 1, CLIP_MAX_IMAGE),
    FIELD("vision_width", vision.width, 1, CLIP_MAX_WIDTH),
    FIELD("vision_layers", vision.layers, 1, CLIP_MAX_LAYERS),
    FIELD("vision_heads", vision.heads, 1, CLIP_MAX_WIDTH),
    FIELD("embed_dim", vision.embed_dim, 1, CLIP_MAX_WIDTH),
    FIELD("context_length", context_length, 2, CLIP_MAX_CONTEXT),   /* start and end tokens */
    FIELD("vocab_size", vocab_size, 1, CLIP_MAX_VOCAB),
    FIELD("text_width", text_width, 1, CLIP_MAX_WIDTH),
    FIELD("text_heads", text_heads, 1, CLIP_MAX_WIDTH),
    FIELD("text_layers", text_layers, 1, CLIP_MAX_LAYERS),
};
#define N_FIELDS (int)(sizeof fields / sizeof fields[0])

static int *field_ptr(ClipConfig *c, const IntField *f) { return (int *)((char *)c + f->offset); }

int clip_config_validate(const ClipConfig *c) {
    for (int i = 0; i < N_FIELDS; i++) {
        int v = *field_ptr((ClipConfig *)c, &fields[i]);
        if (v < fields[i].lo || v > fields[i].hi) {
            t_set_errmsg("CLIP configuration: %s = %d is outside %lld..%lld", fields[i].key, v,
                         (long long)fields[i].lo, (long long)fields[i].hi);
            return -1;
        }
    }
    const VisionConfig *v = &c->vision;
    if (v->image_size % v->patch_size) {
        t_set_errmsg("CLIP configuration: patch_size %d does not divide image_size %d", v->patch_size, v->image_size);
        return -1;
    }
    int64_t grid = v->image_size / v->patch_size;
    if (grid * grid + 1 > CLIP_MAX_TOKENS) {
        t_set_errmsg("CLIP configuration: image_size %d / patch_size %d gives %lld image tokens, above %d",
                     v->image_size, v->patch_size, (long long)(grid * grid + 1), CLIP_MAX_TOKENS);
        return -1;
    }
    if (v->width % v->heads || c->text_width % c->text_heads) {
        bool vis = v->width % v->heads != 0;
        t_set_errmsg("CLIP configuration: %s %d is not divisible by %s %d", vis ? "vision_width" : "text_width",
                     vis ? v->width : c->text_width, vis ? "vision_heads" : "text_heads",
                     vis ? v->heads : c->text_heads);
        return -1;
    }
    return 0;
}

/* Parameters of one residual attention block of width w: two LayerNorms, in/out projections, 4w MLP. */
static int64_t block_params(int64_t w) { return 12 * w * w + 13 * w; }

int64_t clip_param_count(const ClipConfig *c) {
    const VisionConfig *v = &c->vision;
    int64_t W = v->width, P = v->patch_size, G = v->image_size / v->patch_size, E = v->embed_dim;
    int64_t Wt = c->text_width;
    int64_t vision = W * 3 * P * P + W + (G * G + 1) * W + 4 * W + v->layers * block_params(W) + W * E;
    int64_t text = (int64_t)c->vocab_size * Wt + (int64_t)c->context_length * Wt + c->text_layers * block_params(Wt) +
                   2 * Wt + Wt * E;
    return vision + text + 1;   /* + logit_scale */
}

int clip_config_to_object(const ClipConfig *c, JsonObject *o) {
    if (json_object_set(o, "model", c->name)) return -1;
    for (int i = 0; i < N_FIELDS; i++)
        if (json_object_set_int(o, fields[i].key, *field_ptr((ClipConfig *)c, &fields[i]))) return -1;
    return 0;
}

int clip_config_from_object(const JsonObject *o, ClipConfig *c) {
    memset(c, 0, sizeof *c);
    const char *name = json_object_get(o, "model");
    if (!name) {
        t_set_errmsg("CLIP configuration: 'model' is missing");
        return -1;
    }
    if (strlen(name) >= sizeof c->name) {
        t_set_errmsg("CLIP configuration: 'model' is longer than %zu characters", sizeof c->name - 1);
        return -1;
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    for (int i = 0; i < N_FIELDS; i++) {
        int64_t v;
        if (json_object_get_int(o, fields[i].key, fields[i].lo, fields[i].hi, &v)) {
            char why[256];
            snprintf(why, sizeof why, "%s", t_errmsg());
            t_set_errmsg("CLIP configuration: %s", why);
            return -1;
        }
        *field_ptr(c, &fields[i]) = (int)v;
    }
    return clip_config_validate(c);
}

int clip_config_to_json(const ClipConfig *c, char *buf, size_t n) {
    JsonObject o = {0};
    char *text = clip_config_to_object(c, &o) ? NULL : json_object_write(&o);
    json_object_free(&o);
    int rc = text && strlen(text) < n ? 0 : -1;
    if (n) snprintf(buf, n, "%s", rc ? "" : text);
    free(text);
    return rc;
}

int clip_config_from_json(const char *json, ClipConfig *c) {
    memset(c, 0, sizeof *c);
    if (!json) {
        t_set_errmsg("CLIP configuration: no metadata");
        return -1;
    }
    JsonObject o = {0};
    if (json_object_parse(&o, json, strlen(json))) {
        char why[256];
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("CLIP configuration: malformed JSON: %s", why);
        return -1;
    }
    int rc = clip_config_from_object(&o, c);
    json_object_free(&o);
    return rc;
}

int clip_init(Clip *m, ParamSet *ps, const char *prefix, const ClipConfig *cfg, TRng *rng) {
    char name[256];
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (vit_init(&m->visual, ps, nn_join(name, sizeof name, prefix, "visual"), "transformer", &cfg->vision, rng))
        return -1;
    TextTower *t = &m->text;
    int64_t Wt = cfg->text_width;
    embedding_init(&t->token_embedding, ps, nn_join(name, sizeof name, prefix, "token_embedding"), cfg->vocab_size, Wt,
                   rng);
    init_normal(t->token_embedding.weight, rng, 0.02f);              /* CLIP.init_parameters */
    t->positional_embedding = params_new(ps, prefix, "positional_embedding", T_SHAPE(cfg->context_length, Wt));
    init_normal(t->positional_embedding, rng, 0.01f);
    if (transformer_init(&t->transformer, ps, nn_join(name, sizeof name, prefix, "transformer"), Wt, cfg->text_layers,
                         cfg->text_heads, 4.0, rng))
        return -1;
    /* open_clip's text-transformer init: attn std W^-0.5, proj std W^-0.5 (2L)^-0.5, fc std (2W)^-0.5 */
    float attn_std = 1.0f / sqrtf((float)Wt), proj_std = attn_std / sqrtf(2.0f * (float)cfg->text_layers),
          fc_std = 1.0f / sqrtf(2.0f * (float)Wt);
    for (int i = 0; i < cfg->text_layers; i++) {
        ResidualAttentionBlock *b = &t->transformer.resblocks[i];
        init_normal(b->attn.in_proj_weight, rng, attn_std);
        init_normal(b->attn.out_proj.weight, rng, proj_std);
        init_normal(b->mlp.c_fc.weight, rng, fc_std);
        init_normal(b->mlp.c_proj.weight, rng, proj_std);
    }
    layernorm_init(&t->ln_final, ps, nn_join(name, sizeof name, prefix, "ln_final"), Wt);
    t->text_projection = params_new(ps, prefix, "text_projection", T_SHAPE(Wt, cfg->vision.embed_dim));
    init_normal(t->text_projection, rng, attn_std);
    m->logit_scale = params_new(ps, prefix, "logit_scale", 0, NULL);
    if (ps->failed) return -1;   /* out of memory or a name clash: the message is in t_errmsg() */
    m->logit_scale->data[0] = logf(1.0f / 0.07f);
    return 0;
}

void clip_free(Clip *m) {
    vit_free(&m->visual);
    transformer_free(&m->text.transformer);
}

Tensor *clip_encode_image(const Clip *m, Tensor *img, Tensor *const *control, Tensor **hidden) {
    return vit_forward(&m->visual, img, control, hidden);
}

Tensor *clip_encode_text(const Clip *m, const int32_t *ids, int64_t B) {
    const TextTower *t = &m->text;
    int64_t L = m->cfg.context_length, Wt = m->cfg.text_width;
    Tensor *x = embedding_forward(&t->token_embedding, ids, 2, (const int64_t[]){B, L});   /* [B, L, Wt] */
    x = t_add(x, t->positional_embedding);
    x = transformer_forward(&t->transformer, x, mha_causal_mask(L), NULL, NULL);
    x = layernorm_forward(&t->ln_final, x);                                                /* [B, L, Wt] */
    if (!x) return NULL;
    /* pool at the EOT position = argmax of the ids (the largest id in any sequence) */
    int32_t *rows = t_arena_alloc(sizeof(int32_t) * (size_t)B);
    if (!rows) return NULL;
    for (int64_t b = 0; b < B; b++) {
        int64_t best = 0;
        for (int64_t k = 1; k < L; k++)
            if (ids[b * L + k] > ids[b * L + best]) best = k;
        rows[b] = (int32_t)(b * L + best);
    }
    Tensor *pooled = t_embedding(t_reshape(x, T_SHAPE(B * L, Wt)), rows, B);             /* [B, Wt] */
    return t_matmul(pooled, t->text_projection);                                           /* [B, E] */
}
