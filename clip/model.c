#include "clip/model.h"

#include <math.h>
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
    } else if (!strcmp(name, "small")) {
        c->vision = (VisionConfig){96, 16, 256, 6, 4, 256};
        c->context_length = 77, c->vocab_size = 49408, c->text_width = 256, c->text_heads = 4, c->text_layers = 6;
    } else {
        return -1;
    }
    return 0;
}

void clip_config_to_json(const ClipConfig *c, char *buf, size_t n) {
    snprintf(buf, n,
             "{\"model\":\"%s\",\"image_size\":\"%d\",\"patch_size\":\"%d\",\"vision_width\":\"%d\","
             "\"vision_layers\":\"%d\",\"vision_heads\":\"%d\",\"embed_dim\":\"%d\",\"context_length\":\"%d\","
             "\"vocab_size\":\"%d\",\"text_width\":\"%d\",\"text_heads\":\"%d\",\"text_layers\":\"%d\"}",
             c->name, c->vision.image_size, c->vision.patch_size, c->vision.width, c->vision.layers, c->vision.heads,
             c->vision.embed_dim, c->context_length, c->vocab_size, c->text_width, c->text_heads, c->text_layers);
}

/* Reads "key":"<int>" from a flat JSON object; returns -1 when absent. */
static int json_int(const char *json, const char *key, int *out) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    char *end;
    long v = strtol(p + strlen(pat), &end, 10);
    if (*end != '"' || v < 0 || v > 1000000) return -1;
    *out = (int)v;
    return 0;
}

int clip_config_from_json(const char *json, ClipConfig *c) {
    memset(c, 0, sizeof *c);
    const char *p = json ? strstr(json, "\"model\":\"") : NULL;
    if (p) {
        p += 9;
        size_t k = 0;
        while (p[k] && p[k] != '"' && k + 1 < sizeof c->name) c->name[k] = p[k], k++;
    }
    if (!json || json_int(json, "image_size", &c->vision.image_size) ||
        json_int(json, "patch_size", &c->vision.patch_size) || json_int(json, "vision_width", &c->vision.width) ||
        json_int(json, "vision_layers", &c->vision.layers) || json_int(json, "vision_heads", &c->vision.heads) ||
        json_int(json, "embed_dim", &c->vision.embed_dim) || json_int(json, "context_length", &c->context_length) ||
        json_int(json, "vocab_size", &c->vocab_size) || json_int(json, "text_width", &c->text_width) ||
        json_int(json, "text_heads", &c->text_heads) || json_int(json, "text_layers", &c->text_layers))
        return -1;
    return 0;
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
    for (int64_t b = 0; b < B; b++) {
        int64_t best = 0;
        for (int64_t k = 1; k < L; k++)
            if (ids[b * L + k] > ids[b * L + best]) best = k;
        rows[b] = (int32_t)(b * L + best);
    }
    Tensor *pooled = t_embedding(t_reshape(x, T_SHAPE(B * L, Wt)), rows, B);             /* [B, Wt] */
    return t_matmul(pooled, t->text_projection);                                           /* [B, E] */
}
