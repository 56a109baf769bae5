#include "train/clip_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/assets.h"
#include "tensor/safetensors.h"

static char default_vocab[4096];

const char *clip_default_vocab(void) {
    daclip_asset_path(DACLIP_VOCAB_ASSET, default_vocab, sizeof default_vocab);
    return default_vocab;
}

const char *clip_vocab_path(const char *given) {
    if (given && *given) return given;
    const char *env = getenv("DACLIP_VOCAB");
    if (env && *env) return env;
    return daclip_asset_path(DACLIP_VOCAB_ASSET, default_vocab, sizeof default_vocab);
}

/* A model file records the absolute path of its vocabulary, which a clone elsewhere lacks. The official
 * vocabulary is shipped, so a missing file of that name means the shipped copy; any other vocabulary must be
 * given with --vocab. The size check in clip_model_load still guards the choice. */
static const char *recorded_vocab(const char *recorded) {
    if (access(recorded, R_OK) == 0) return recorded;
    const char *base = strrchr(recorded, '/'), *official = strrchr(DACLIP_VOCAB_ASSET, '/') + 1;
    base = base ? base + 1 : recorded;
    if (!strcmp(base, official) && daclip_asset_path(DACLIP_VOCAB_ASSET, default_vocab, sizeof default_vocab))
        return default_vocab;
    return recorded;
}

bool clip_all_finite(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return false;
    return true;
}

int clip_model_meta_object(const ClipConfig *cfg, const char *vocab, JsonObject *meta) {
    char full[4096];
    if (vocab[0] != '/' && realpath(vocab, full)) vocab = full;
    return clip_config_to_object(cfg, meta) || json_object_set(meta, "vocab", vocab) ? -1 : 0;
}

int clip_model_meta(const ClipConfig *cfg, const char *vocab, char *buf, size_t n) {
    JsonObject meta = {0};
    char *text = clip_model_meta_object(cfg, vocab, &meta) ? NULL : json_object_write(&meta);
    json_object_free(&meta);
    int rc = text && strlen(text) < n ? 0 : -1;
    if (!rc) memcpy(buf, text, strlen(text) + 1);
    free(text);
    return rc;
}

/* Elements of every tensor in the file. */
static int64_t file_numel(const StFile *f) {
    int64_t total = 0;
    for (int i = 0; i < f->n; i++) {
        int64_t k = 1;
        for (int d = 0; d < f->entries[i].ndim; d++) k *= f->entries[i].shape[d];
        total += k;
    }
    return total;
}

int clip_config_fits_file(const ClipConfig *cfg, const StFile *f) {
    if (clip_param_count(cfg) <= file_numel(f)) return 0;
    t_set_errmsg("%s: the CLIP configuration needs %lld parameters but the file holds only %lld values", f->path,
                 (long long)clip_param_count(cfg), (long long)file_numel(f));
    return -1;
}

/* The configuration and the recorded vocabulary of a model file. */
static int read_meta(const char *path, ClipConfig *cfg, char *vocab, size_t vn, char *err, size_t errlen) {
    StFile *f = st_open(path);
    if (!f) {
        snprintf(err, errlen, "%s", t_errmsg());
        return -1;
    }
    JsonObject meta;
    int rc = -1;
    if (st_meta(f, &meta)) {
        snprintf(err, errlen, "%s", t_errmsg());
    } else if (!f->metadata_json) {
        snprintf(err, errlen, "%s: no metadata, so no CLIP configuration (not a daclip CLIP model file?)", path);
    } else if (clip_config_from_object(&meta, cfg)) {
        snprintf(err, errlen, "%s: %s", path, t_errmsg());
    } else if (clip_config_fits_file(cfg, f)) {
        snprintf(err, errlen, "%s", t_errmsg());
    } else {
        const char *v = json_object_get(&meta, "vocab");
        if (v && strlen(v) >= vn) snprintf(err, errlen, "%s: the recorded vocabulary path is too long", path);
        else rc = 0, snprintf(vocab, vn, "%s", v ? v : "");
    }
    json_object_free(&meta);
    st_close(f);
    return rc;
}

int clip_model_load(const char *path, const char *vocab_override, Clip *m, ParamSet *ps, Tokenizer **tok, char *err,
                    size_t errlen) {
    *tok = NULL;
    ClipConfig cfg;
    char file_vocab[4096] = "";
    if (read_meta(path, &cfg, file_vocab, sizeof file_vocab, err, errlen)) return -1;
    const char *vocab = vocab_override ? vocab_override
                        : (file_vocab[0] ? recorded_vocab(file_vocab) : clip_vocab_path(NULL));
    if (!vocab) {
        snprintf(err, errlen, "%s: no vocabulary recorded; pass --vocab FILE", path);
        return -1;
    }
    *tok = tokenizer_load(vocab, err, errlen);
    if (!*tok) return -1;
    if (tokenizer_vocab_size(*tok) != cfg.vocab_size) {
        snprintf(err, errlen, "%s: the model has %d token ids but the vocabulary %s has %d", path, cfg.vocab_size, vocab,
                 tokenizer_vocab_size(*tok));
        tokenizer_free(*tok);
        *tok = NULL;
        return -1;
    }
    params_init(ps);
    LoadReport rep;   /* no random start (NULL): the strict load overwrites every value */
    if (clip_init(m, ps, "", &cfg, NULL) || params_load_file(ps, path, true, "module.", &rep)) {
        snprintf(err, errlen, "%s", t_errmsg());
        clip_free(m);
        params_free(ps);
        tokenizer_free(*tok);
        *tok = NULL;
        return -1;
    }
    return 0;
}

int clip_model_open(ClipModel *cm, const char *path, const char *vocab, const char *cmd) {
    t_init();
    char err[1024];
    if (clip_model_load(path, vocab, &cm->m, &cm->ps, &cm->tok, err, sizeof err)) {
        fprintf(stderr, "daclip %s: %s\n", cmd, err);
        return -1;
    }
    return 0;
}

void clip_model_close(ClipModel *cm) {
    clip_free(&cm->m);
    params_free(&cm->ps);
    tokenizer_free(cm->tok);
    t_arena_shutdown();
}
