#include "train/clip_io.h"

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

int clip_model_meta(const ClipConfig *cfg, const char *vocab, char *buf, size_t n) {
    char cj[1024];
    clip_config_to_json(cfg, cj, sizeof cj);
    for (const char *c = vocab; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) return -1;
    char full[4096];
    if (vocab[0] != '/' && realpath(vocab, full)) vocab = full;
    size_t k = strlen(cj);
    if (k < 2) return -1;
    cj[k - 1] = 0;  /* drop the closing brace and append the vocab entry */
    int w = snprintf(buf, n, "%s,\"vocab\":\"%s\"}", cj, vocab);
    return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

int clip_model_load(const char *path, const char *vocab_override, Clip *m, ParamSet *ps, Tokenizer **tok, char *err,
                    size_t errlen) {
    *tok = NULL;
    StFile *f = st_open(path);
    if (!f) {
        snprintf(err, errlen, "%s", t_errmsg());
        return -1;
    }
    ClipConfig cfg;
    if (!f->metadata_json || clip_config_from_json(f->metadata_json, &cfg)) {
        snprintf(err, errlen, "%s: no CLIP configuration in the file's metadata (not a daclip CLIP model file?)", path);
        st_close(f);
        return -1;
    }
    char file_vocab[4096] = "";
    st_meta_get(f, "vocab", file_vocab, sizeof file_vocab);
    st_close(f);
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
    TRng rng;
    rng_seed(&rng, 0);
    LoadReport rep;
    if (clip_init(m, ps, "", &cfg, &rng) || params_load_file(ps, path, true, "module.", &rep)) {
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
