#ifndef DACLIP_CLIP_MODEL_H
#define DACLIP_CLIP_MODEL_H
/* open_clip's CLIP: the ViT image tower and the causal text tower, with open_clip's state-dict names
 * (under an optional prefix, e.g. "clip" inside DA-CLIP):
 *   visual.*   token_embedding.weight   positional_embedding [ctx, Wt]   transformer.resblocks.N.*
 *   ln_final.{weight,bias}   text_projection [Wt, E]   logit_scale []                              */
#include <stdint.h>

#include "nn/embedding.h"
#include "nn/layernorm.h"
#include "nn/module.h"
#include "nn/transformer.h"
#include "nn/vision_transformer.h"
#include "tensor/json.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    char name[32];
    VisionConfig vision;
    int context_length, vocab_size, text_width, text_heads, text_layers;
} ClipConfig;

/* "ViT-B-32" (the DA-CLIP base), "tiny" (64 px, width 128, 4 layers) and "small" (96 px, width 256,
 * 6 layers) for training here. Returns -1 for an unknown name. vocab_size of the small presets follows
 * the tokenizer actually used (set it after loading one). */
int clip_config_preset(const char *name, ClipConfig *cfg);
/* A configuration read from a file is checked before use: every number within generous bounds (no
 * gigabyte-sized layer from a crafted value), heads dividing widths, patch_size dividing image_size.
 * -1 with t_errmsg() naming the field. */
int clip_config_validate(const ClipConfig *cfg);
/* Number of parameters (floats) the configuration implies; a file that holds fewer cannot be this model. */
int64_t clip_param_count(const ClipConfig *cfg);
/* The config as metadata entries of a model file: "model" (the name) and the integer fields as strings
 * ("image_size", "patch_size", "vision_width", "vision_layers", "vision_heads", "embed_dim",
 * "context_length", "vocab_size", "text_width", "text_heads", "text_layers"). Other keys are left alone. */
int clip_config_to_object(const ClipConfig *cfg, JsonObject *meta);
/* Reads and validates them (any JSON spelling; other keys ignored). -1 with t_errmsg() naming the key. */
int clip_config_from_object(const JsonObject *meta, ClipConfig *cfg);
/* The same from/to JSON text; to_json returns -1 when buf is too small. */
int clip_config_to_json(const ClipConfig *cfg, char *buf, size_t n);
int clip_config_from_json(const char *json, ClipConfig *cfg);

typedef struct {
    Embedding token_embedding;
    Tensor *positional_embedding;   /* [ctx, Wt] */
    Transformer transformer;
    LayerNorm ln_final;
    Tensor *text_projection;        /* [Wt, E] */
} TextTower;

typedef struct {
    ClipConfig cfg;
    VisionTransformer visual;
    TextTower text;
    Tensor *logit_scale;            /* [] = ln(1/0.07) at init */
} Clip;

int clip_init(Clip *m, ParamSet *ps, const char *prefix, const ClipConfig *cfg, TRng *rng);
void clip_free(Clip *m);
/* img [B, 3, S, S] CLIP-normalised -> [B, E] unnormalised. control/hidden: see vit_forward. */
Tensor *clip_encode_image(const Clip *m, Tensor *img, Tensor *const *control, Tensor **hidden);
/* ids [B, ctx] -> [B, E] unnormalised, pooled at each row's argmax id (the EOT token). */
Tensor *clip_encode_text(const Clip *m, const int32_t *ids, int64_t B);

#endif
