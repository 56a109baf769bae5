#include "train/pt_import.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/json.h"

/* ------------------------------------------------------------------ shapes */

static const PtEntry *shape_of(const PtStateDict *sd, const char *prefix, const char *name) {
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return pt_state_dict_find(sd, full);
}

/* How many "<prefix><stem>.N.<leaf>" exist for N = 0, 1, ... */
static int count_blocks(const PtStateDict *sd, const char *prefix, const char *stem, const char *leaf) {
    int n = 0;
    char name[512];
    for (;; n++) {
        snprintf(name, sizeof name, "%s.%d.%s", stem, n, leaf);
        if (!shape_of(sd, prefix, name)) return n;
    }
}

int clip_config_from_pt(const PtStateDict *sd, const char *prefix, ClipConfig *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    const PtEntry *conv = shape_of(sd, prefix, "visual.conv1.weight"), *pos = shape_of(sd, prefix, "visual.positional_embedding"),
                  *proj = shape_of(sd, prefix, "visual.proj"), *tok = shape_of(sd, prefix, "token_embedding.weight"),
                  *tpos = shape_of(sd, prefix, "positional_embedding"), *tproj = shape_of(sd, prefix, "text_projection");
    if (!conv || !pos || !proj || !tok || !tpos || !tproj || conv->ndim != 4 || pos->ndim != 2 || proj->ndim != 2 ||
        tok->ndim != 2 || tpos->ndim != 2 || tproj->ndim != 2) {
        snprintf(err, errlen, "%s: not an open_clip CLIP under \"%s\" (visual.conv1.weight, visual.proj, "
                 "token_embedding.weight, text_projection expected); give --config FILE.json", pt_path(sd->f), prefix);
        return -1;
    }
    int64_t W = conv->shape[0], P = conv->shape[2], grid = (int64_t)llround(sqrt((double)(pos->shape[0] - 1)));
    c->vision.width = (int)W;
    c->vision.patch_size = (int)P;
    c->vision.image_size = (int)(grid * P);
    c->vision.layers = count_blocks(sd, prefix, "visual.transformer.resblocks", "ln_1.weight");
    c->vision.heads = (int)(W / 64);
    c->vision.embed_dim = (int)proj->shape[1];
    c->vocab_size = (int)tok->shape[0];
    c->text_width = (int)tok->shape[1];
    c->context_length = (int)tpos->shape[0];
    c->text_layers = count_blocks(sd, prefix, "transformer.resblocks", "ln_1.weight");
    c->text_heads = c->text_width / 64;
    ClipConfig b32;
    clip_config_preset("ViT-B-32", &b32);
    bool is_b32 = !memcmp(&b32.vision, &c->vision, sizeof c->vision) && b32.context_length == c->context_length &&
                  b32.vocab_size == c->vocab_size && b32.text_width == c->text_width &&
                  b32.text_layers == c->text_layers && b32.text_heads == c->text_heads;
    snprintf(c->name, sizeof c->name, "%s", is_b32 ? "ViT-B-32" : "from-checkpoint");
    if (grid * grid + 1 != pos->shape[0] || W % 64 || c->text_width % 64 || clip_config_validate(c)) {
        snprintf(err, errlen, "%s: the CLIP configuration cannot be read from the shapes (width %lld, %lld positions): "
                 "give --config FILE.json (open_clip's model config)", pt_path(sd->f), (long long)W,
                 (long long)pos->shape[0]);
        return -1;
    }
    return 0;
}

int unet_config_from_pt(const PtStateDict *sd, UNetConfig *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    const PtEntry *init = pt_state_dict_find(sd, "init_conv.weight"), *fin = pt_state_dict_find(sd, "final_conv.weight");
    if (!init || !fin || init->ndim != 4 || fin->ndim != 4) {
        snprintf(err, errlen, "%s: not a ConditionalUNet state dict (init_conv.weight, final_conv.weight expected)",
                 pt_path(sd->f));
        return -1;
    }
    c->nf = (int)init->shape[0];
    c->in_nc = (int)(init->shape[1] / 2);
    c->out_nc = (int)fin->shape[0];
    c->depth = count_blocks(sd, "", "downs", "0.block1.proj.weight");
    if (c->depth < 1 || c->depth > UNET_MAX_DEPTH) {
        snprintf(err, errlen, "%s: %d U-Net levels", pt_path(sd->f), c->depth);
        return -1;
    }
    for (int i = 0; i < c->depth; i++) {
        char name[64];
        snprintf(name, sizeof name, "downs.%d.3.weight", i);   /* the level's resample conv: dim_in -> dim_out */
        const PtEntry *d = pt_state_dict_find(sd, name);
        if (!d || d->ndim != 4 || c->nf <= 0 || d->shape[0] % c->nf) {
            snprintf(err, errlen, "%s: cannot read ch_mult from %s; give --config FILE.json", pt_path(sd->f), name);
            return -1;
        }
        c->ch_mult[i] = (int)(d->shape[0] / c->nf);
    }
    c->use_degra_context = pt_state_dict_find(sd, "prompt") != NULL;
    const PtEntry *k = pt_state_dict_find(sd, "mid_attn.fn.fn.transformer_blocks.0.attn2.to_k.weight");
    const PtEntry *tm = pt_state_dict_find(sd, "text_mlp.0.weight");
    c->use_image_context = k != NULL;
    c->context_dim = k ? (int)k->shape[1] : tm ? (int)tm->shape[1] : 0;
    if (unet_config_validate(c)) {
        snprintf(err, errlen, "%s: %s", pt_path(sd->f), t_errmsg());
        return -1;
    }
    return 0;
}

PtKind pt_state_dict_kind(const PtStateDict *sd) {
    if (pt_state_dict_find(sd, "visual_control.proj")) return PT_KIND_DACLIP;
    if (pt_state_dict_find(sd, "init_conv.weight")) return PT_KIND_UNET;
    if (pt_state_dict_find(sd, "visual.proj") && pt_state_dict_find(sd, "text_projection")) return PT_KIND_CLIP;
    return PT_KIND_UNKNOWN;
}

/* ------------------------------------------------------------------ JSON configs */

static char *read_text(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    bool too_big = buf && n == (1 << 20) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (!buf || too_big) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, buf ? "larger than 1 MB: not a model configuration" : "out of memory");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static bool read_int(JsonReader *j, int *out) {
    int64_t v;
    if (!json_uint(j, &v)) return false;
    if (v > 1000000) return json_fail(j, "value out of range");
    *out = (int)v;
    return true;
}

static bool read_bool(JsonReader *j, bool *out) {
    json_peek(j, ' ');
    size_t left = (size_t)(j->end - j->s);
    if (left >= 4 && !strncmp(j->s, "true", 4)) { j->s += 4; *out = true; return true; }
    if (left >= 5 && !strncmp(j->s, "false", 5)) { j->s += 5; *out = false; return true; }
    return json_fail(j, "expected true or false");
}

typedef struct { ClipConfig *c; int head_width; bool has_embed, has_vision, has_text; } OcCtx;

static bool oc_vision(JsonReader *j, const char *key, void *ctx) {
    OcCtx *o = ctx;
    VisionConfig *v = &o->c->vision;
    if (!strcmp(key, "image_size")) return read_int(j, &v->image_size);
    if (!strcmp(key, "layers")) return read_int(j, &v->layers);
    if (!strcmp(key, "width")) return read_int(j, &v->width);
    if (!strcmp(key, "patch_size")) return read_int(j, &v->patch_size);
    if (!strcmp(key, "head_width")) return read_int(j, &o->head_width);
    return json_skip(j);
}

static bool oc_text(JsonReader *j, const char *key, void *ctx) {
    ClipConfig *c = ((OcCtx *)ctx)->c;
    if (!strcmp(key, "context_length")) return read_int(j, &c->context_length);
    if (!strcmp(key, "vocab_size")) return read_int(j, &c->vocab_size);
    if (!strcmp(key, "width")) return read_int(j, &c->text_width);
    if (!strcmp(key, "heads")) return read_int(j, &c->text_heads);
    if (!strcmp(key, "layers")) return read_int(j, &c->text_layers);
    return json_skip(j);
}

static bool oc_top(JsonReader *j, const char *key, void *ctx) {
    OcCtx *o = ctx;
    if (!strcmp(key, "embed_dim")) return (o->has_embed = true) && read_int(j, &o->c->vision.embed_dim);
    if (!strcmp(key, "vision_cfg")) return (o->has_vision = true) && json_object(j, oc_vision, ctx);
    if (!strcmp(key, "text_cfg")) return (o->has_text = true) && json_object(j, oc_text, ctx);
    return json_skip(j);
}

int clip_config_from_open_clip_json(const char *path, ClipConfig *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    size_t len;
    char *text = read_text(path, &len, err, errlen);
    if (!text) return -1;
    /* open_clip's defaults (CLIPVisionCfg, CLIPTextCfg) for what a config leaves out */
    c->vision = (VisionConfig){224, 16, 768, 12, 0, 512};
    c->context_length = 77, c->vocab_size = 49408, c->text_width = 512, c->text_heads = 8, c->text_layers = 12;
    OcCtx o = {c, 64, false, false, false};
    JsonReader j;
    json_reader_init(&j, text, len);
    bool ok = json_object(&j, oc_top, &o) && json_at_end(&j);
    if (!ok) snprintf(err, errlen, "%s: byte %zu: %s", path, json_offset(&j), j.err ? j.err : "invalid JSON");
    free(text);
    if (!ok) return -1;
    if (!o.has_embed || !o.has_vision || !o.has_text) {
        snprintf(err, errlen, "%s: not an open_clip model config (embed_dim, vision_cfg and text_cfg expected)", path);
        return -1;
    }
    if (o.head_width <= 0 || c->vision.width % o.head_width) {
        snprintf(err, errlen, "%s: vision width %d is not a multiple of head_width %d", path, c->vision.width, o.head_width);
        return -1;
    }
    c->vision.heads = c->vision.width / o.head_width;
    snprintf(c->name, sizeof c->name, "from-config");
    if (clip_config_validate(c)) {
        snprintf(err, errlen, "%s: %s", path, t_errmsg());
        return -1;
    }
    return 0;
}

typedef struct { UNetConfig *c; bool seen; int found; } UnCtx;

static bool un_setting(JsonReader *j, const char *key, void *ctx) {
    UnCtx *u = ctx;
    UNetConfig *c = u->c;
    u->seen = true;
    if (!strcmp(key, "in_nc")) return read_int(j, &c->in_nc);
    if (!strcmp(key, "out_nc")) return read_int(j, &c->out_nc);
    if (!strcmp(key, "nf")) return read_int(j, &c->nf);
    if (!strcmp(key, "use_degra_context")) return read_bool(j, &c->use_degra_context);
    if (!strcmp(key, "use_image_context")) return read_bool(j, &c->use_image_context);
    if (!strcmp(key, "context_dim")) {
        json_peek(j, ' ');
        if ((size_t)(j->end - j->s) >= 4 && !strncmp(j->s, "null", 4)) { j->s += 4; c->context_dim = 0; return true; }
        return read_int(j, &c->context_dim);
    }
    if (!strcmp(key, "ch_mult")) {
        if (!json_expect(j, '[', "ch_mult: expected a list")) return false;
        c->depth = 0;
        for (;;) {
            if (c->depth == UNET_MAX_DEPTH) return json_fail(j, "ch_mult: too many levels");
            if (!read_int(j, &c->ch_mult[c->depth++])) return false;
            if (json_peek(j, ',')) { j->s++; continue; }
            return json_expect(j, ']', "ch_mult: expected ',' or ']'");
        }
    }
    return json_skip(j);
}

static bool un_network(JsonReader *j, const char *key, void *ctx) {
    if (!strcmp(key, "setting")) return ((UnCtx *)ctx)->found++, json_object(j, un_setting, ctx);
    return json_skip(j);
}

static bool un_top(JsonReader *j, const char *key, void *ctx) {
    if (!strcmp(key, "network_G")) return json_object(j, un_network, ctx);
    return un_setting(j, key, ctx);   /* the setting block on its own */
}

int unet_config_from_options_json(const char *path, UNetConfig *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->in_nc = c->out_nc = 3;
    size_t len;
    char *text = read_text(path, &len, err, errlen);
    if (!text) return -1;
    UnCtx u = {c, false, 0};
    JsonReader j;
    json_reader_init(&j, text, len);
    bool ok = json_object(&j, un_top, &u) && json_at_end(&j);
    if (!ok) snprintf(err, errlen, "%s: byte %zu: %s", path, json_offset(&j), j.err ? j.err : "invalid JSON");
    free(text);
    if (!ok) return -1;
    if (!c->nf || !c->depth) {
        snprintf(err, errlen, "%s: no network_G.setting with nf and ch_mult", path);
        return -1;
    }
    if (unet_config_validate(c)) {
        snprintf(err, errlen, "%s: %s", path, t_errmsg());
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ loading a U-Net from either format */

int unet_model_open(const char *path, const char *config_json, ConditionalUNet *u, ParamSet *ps, UNetConfig *cfg,
                    char *err, size_t errlen) {
    params_init(ps);
    if (!pt_is_checkpoint_path(path)) {
        if (unet_load_file(path, u, ps)) {
            snprintf(err, errlen, "%s", t_errmsg());
            params_free(ps);
            return -1;
        }
        *cfg = u->cfg;
        return 0;
    }
    PtStateDict sd;
    if (pt_state_dict_open(path, &sd)) {
        snprintf(err, errlen, "%s", t_errmsg());
        return -1;
    }
    int rc = config_json ? unet_config_from_options_json(config_json, cfg, err, errlen)
                         : unet_config_from_pt(&sd, cfg, err, errlen);
    LoadReport rep;   /* no random start (NULL): the strict load overwrites every value */
    if (!rc && (unet_init(u, ps, "", cfg, NULL) || params_load_pt(ps, &sd, true, &rep))) {
        snprintf(err, errlen, "%s", t_errmsg());
        rc = -1;
    }
    pt_state_dict_close(&sd);
    if (rc) params_free(ps);
    return rc;
}
