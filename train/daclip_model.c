#include "train/daclip_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/contrastive.h"
#include "tensor/json.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"
#include "train/clip_io.h"
#include "train/pt_import.h"

/* Reads the CLIP configuration and the vocabulary a model file records. */
static int read_header(const char *path, const char *vocab_override, ClipConfig *cfg, char *vocab, size_t vn,
                       bool *is_daclip, char *err, size_t errlen) {
    StFile *f = st_open(path);
    if (!f) {
        snprintf(err, errlen, "%s", t_errmsg());
        return -1;
    }
    t_set_errmsg("%s", "");
    if (!f->metadata_json || clip_config_from_json(f->metadata_json, cfg) || clip_config_fits_file(cfg, f)) {
        if (f->metadata_json && *t_errmsg()) snprintf(err, errlen, "%s: %s", path, t_errmsg());
        else snprintf(err, errlen, "%s: no CLIP configuration in the file's metadata (not a daclip model file?)", path);
        st_close(f);
        return -1;
    }
    char arch[32] = "", recorded[4096] = "";
    st_meta_get(f, "arch", arch, sizeof arch);
    st_meta_get(f, "vocab", recorded, sizeof recorded);
    *is_daclip = !strcmp(arch, "daclip") || st_find(f, "visual_control.proj") || st_find(f, "module.visual_control.proj");
    st_close(f);
    const char *v = vocab_override;
    if (!v && recorded[0] && access(recorded, R_OK) == 0) v = recorded;
    if (!v) v = clip_vocab_path(NULL);
    if (!v) {
        snprintf(err, errlen, "%s: its vocabulary %s is not here; pass --vocab FILE", path,
                 recorded[0] ? recorded : "(none recorded)");
        return -1;
    }
    snprintf(vocab, vn, "%s", v);
    return 0;
}

bool daclip_file_is_daclip(const char *path) {
    if (pt_is_checkpoint_path(path)) {
        PtStateDict sd;
        if (pt_state_dict_open(path, &sd)) return false;
        bool is = pt_state_dict_kind(&sd) == PT_KIND_DACLIP;
        pt_state_dict_close(&sd);
        return is;
    }
    ClipConfig cfg;
    char vocab[4096], err[512];
    bool is = false;
    return read_header(path, NULL, &cfg, vocab, sizeof vocab, &is, err, sizeof err) == 0 && is;
}

/* Builds the empty model for a configuration, with its tokenizer. */
static int model_setup(DaclipModel *m, const ClipConfig *cfg, const char *path, char *err, size_t errlen) {
    m->tok = tokenizer_load(m->vocab, err, errlen);
    if (!m->tok) return -1;
    if (tokenizer_vocab_size(m->tok) != cfg->vocab_size) {
        snprintf(err, errlen, "%s: the model has %d token ids but the vocabulary %s has %d", path, cfg->vocab_size,
                 m->vocab, tokenizer_vocab_size(m->tok));
        return -1;
    }
    params_init(&m->ps);
    /* no random start (NULL): every caller then loads the whole CLIP and loads or copies the controller */
    if (clip_init(&m->clip, &m->ps, "clip", cfg, NULL) || controller_init(&m->ctl, &m->ps, &cfg->vision, NULL)) {
        snprintf(err, errlen, "%s: %s", path, t_errmsg());
        return -1;
    }
    params_freeze(&m->ps, "clip.", true);
    return 0;
}

/* Prefixes every name of a state dict (a CLIP's names live under "clip." in a DA-CLIP). */
static int prefix_names(PtStateDict *sd, const char *prefix) {
    for (int i = 0; i < sd->n; i++) {
        size_t len = strlen(prefix) + strlen(sd->names[i]) + 1;
        char *n = malloc(len);
        if (!n) return -1;
        snprintf(n, len, "%s%s", prefix, sd->names[i]);
        free(sd->names[i]);
        sd->names[i] = n;
    }
    return 0;
}

/* A DA-CLIP or a CLIP (start_controller) from a PyTorch checkpoint. */
static int model_from_pt(const char *path, const char *vocab, const char *config_json, bool start_controller,
                         bool official_quirk, DaclipModel *m, char *err, size_t errlen) {
    PtStateDict sd;
    if (pt_state_dict_open(path, &sd)) {
        snprintf(err, errlen, "%s", t_errmsg());
        return -1;
    }
    PtKind want = start_controller ? PT_KIND_CLIP : PT_KIND_DACLIP, kind = pt_state_dict_kind(&sd);
    ClipConfig cfg;
    int rc = 0;
    if (kind != want) {
        snprintf(err, errlen, "%s: %s, not a %s", path,
                 kind == PT_KIND_DACLIP ? "a DA-CLIP checkpoint" : kind == PT_KIND_CLIP ? "a CLIP checkpoint"
                 : kind == PT_KIND_UNET ? "an IR-SDE U-Net checkpoint" : "no CLIP or DA-CLIP state dict",
                 start_controller ? "CLIP (visual.*, transformer.*, token_embedding.*)" : "DA-CLIP (clip.*, visual_control.*)");
        rc = -1;
    }
    if (!rc) rc = config_json ? clip_config_from_open_clip_json(config_json, &cfg, err, errlen)
                              : clip_config_from_pt(&sd, start_controller ? "" : "clip.", &cfg, err, errlen);
    const char *v = vocab ? vocab : clip_vocab_path(NULL);
    if (!rc && !v) {
        snprintf(err, errlen, "%s: no vocabulary: pass --vocab FILE", path);
        rc = -1;
    }
    if (!rc) snprintf(m->vocab, sizeof m->vocab, "%s", v);
    if (!rc) rc = model_setup(m, &cfg, path, err, errlen);
    if (!rc && start_controller && prefix_names(&sd, "clip.")) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    LoadReport rep;
    if (!rc && params_load_pt(&m->ps, &sd, !start_controller, &rep)) {
        snprintf(err, errlen, "%s", t_errmsg());
        rc = -1;
    }
    int64_t frozen = 0;
    for (int i = 0; i < m->ps.n; i++) frozen += m->ps.items[i].frozen;
    if (!rc && start_controller && (rep.unexpected || rep.wrong_shape || rep.loaded != frozen)) {
        snprintf(err, errlen, "%s: not a CLIP of the configuration its shapes give: %s", path, t_errmsg());
        rc = -1;
    }
    if (!rc && start_controller &&
        controller_start_from(&m->ctl, &m->clip.visual, m->clip.logit_scale->data[0], official_quirk)) {
        snprintf(err, errlen, "%s: %s", path, t_errmsg());
        rc = -1;
    }
    pt_state_dict_close(&sd);
    if (rc) daclip_model_free(m);
    return rc;
}

int daclip_model_from_clip(const char *clip_path, const char *vocab, bool official_quirk, DaclipModel *m, char *err,
                           size_t errlen) {
    memset(m, 0, sizeof *m);
    if (pt_is_checkpoint_path(clip_path)) return model_from_pt(clip_path, vocab, NULL, true, official_quirk, m, err, errlen);
    ClipConfig cfg;
    bool is_daclip;
    if (read_header(clip_path, vocab, &cfg, m->vocab, sizeof m->vocab, &is_daclip, err, errlen)) return -1;
    if (is_daclip) {
        snprintf(err, errlen, "%s: this is already a DA-CLIP model; give the CLIP it was made from", clip_path);
        return -1;
    }
    if (model_setup(m, &cfg, clip_path, err, errlen)) {
        daclip_model_free(m);
        return -1;
    }
    /* the CLIP file's names ("visual.*", "transformer.*", ...) live under "clip." here */
    StFile *f = st_open(clip_path);
    if (!f) {
        snprintf(err, errlen, "%s", t_errmsg());
        daclip_model_free(m);
        return -1;
    }
    NamedArray *arr = calloc((size_t)f->n + 1, sizeof *arr);
    char **names = calloc((size_t)f->n + 1, sizeof *names);
    int rc = (arr && names) ? 0 : -1;
    for (int i = 0; !rc && i < f->n; i++) {
        const char *n = f->entries[i].name;
        if (!strncmp(n, "module.", 7)) n += 7;
        size_t len = strlen(n) + 6;
        names[i] = malloc(len);
        if (!names[i]) {
            rc = -1;
            break;
        }
        snprintf(names[i], len, "clip.%s", n);
        arr[i] = (NamedArray){names[i], f->entries[i].ndim, f->entries[i].shape, f->entries[i].data};
    }
    LoadReport rep = {0};
    if (!rc) rc = params_load_arrays(&m->ps, f->n, arr, false, &rep);
    int64_t want = 0;
    for (int i = 0; i < m->ps.n; i++) want += m->ps.items[i].frozen;
    if (!rc && (rep.unexpected || rep.wrong_shape || rep.loaded != want)) {
        snprintf(err, errlen, "%s: not a CLIP of the configuration its metadata states (%d of %lld tensors loaded, "
                 "%d unexpected, %d of the wrong shape): %s", clip_path, rep.loaded, (long long)want, rep.unexpected,
                 rep.wrong_shape, t_errmsg());
        rc = -1;
    } else if (rc) {
        snprintf(err, errlen, "%s: %s", clip_path, t_errmsg());
    }
    for (int i = 0; names && i < f->n; i++) free(names[i]);
    free(names);
    free(arr);
    st_close(f);
    if (!rc && controller_start_from(&m->ctl, &m->clip.visual, m->clip.logit_scale->data[0], official_quirk)) {
        snprintf(err, errlen, "%s: %s", clip_path, t_errmsg());
        rc = -1;
    }
    if (rc) daclip_model_free(m);
    return rc;
}

int daclip_model_load(const char *path, const char *vocab, DaclipModel *m, char *err, size_t errlen) {
    return daclip_model_load_config(path, vocab, NULL, m, err, errlen);
}

int daclip_model_load_config(const char *path, const char *vocab, const char *config_json, DaclipModel *m, char *err,
                             size_t errlen) {
    memset(m, 0, sizeof *m);
    if (pt_is_checkpoint_path(path)) return model_from_pt(path, vocab, config_json, false, false, m, err, errlen);
    ClipConfig cfg;
    bool is_daclip;
    if (read_header(path, vocab, &cfg, m->vocab, sizeof m->vocab, &is_daclip, err, errlen)) return -1;
    if (!is_daclip) {
        snprintf(err, errlen, "%s: a plain CLIP, not a DA-CLIP model (train one with `daclip train-daclip --clip %s`)",
                 path, path);
        return -1;
    }
    LoadReport rep;
    if (model_setup(m, &cfg, path, err, errlen) || params_load_file(&m->ps, path, true, "module.", &rep)) {
        if (!err[0] || m->tok) snprintf(err, errlen, "%s", t_errmsg());
        daclip_model_free(m);
        return -1;
    }
    return 0;
}

int daclip_model_save(const DaclipModel *m, const char *path) {
    JsonObject meta = {0};
    char *text = NULL;
    int rc = -1;
    if (clip_model_meta_object(&m->clip.cfg, m->vocab, &meta) || json_object_set(&meta, "arch", "daclip") ||
        !(text = json_object_write(&meta)))
        t_set_errmsg("%s: cannot write the metadata (vocabulary path %s)", path, m->vocab);
    else
        rc = params_save_file(&m->ps, path, text);
    free(text);
    json_object_free(&meta);
    return rc;
}

void daclip_model_prepack(DaclipModel *m) {
    vit_prepack(&m->clip.visual);
    controller_prepack(&m->ctl);
}

void daclip_model_free(DaclipModel *m) {
    if (!m) return;
    if (m->ps.items) {
        controller_free(&m->ctl);
        clip_free(&m->clip);
        params_free(&m->ps);
    }
    tokenizer_free(m->tok);
    free(m->names);
    memset(m, 0, sizeof *m);
}

int daclip_name_embeddings(DaclipModel *m) {
    if (m->names) return 0;
    int ctx = m->clip.cfg.context_length;
    int64_t E = m->clip.cfg.vision.embed_dim;
    int32_t *ids = calloc((size_t)DEGRADE_N * (size_t)ctx, sizeof *ids);
    m->names = malloc(sizeof(float) * (size_t)(DEGRADE_N * E));
    if (!ids || !m->names) {
        free(ids);
        free(m->names);
        m->names = NULL;
        t_error("daclip", "out of memory");
        return -1;
    }
    /* the bare names, no template (da-clip/src/evaluate.py) */
    for (int t = 0; t < DEGRADE_N; t++) tokenizer_tokenize_n(m->tok, degrade_name(t), ids + (size_t)t * ctx, ctx);
    bool prev = t_set_grad_enabled(false);
    size_t mark = t_arena_mark();
    Tensor *e = clip_encode_text(&m->clip, ids, DEGRADE_N);                     /* [10, E] */
    if (e) memcpy(m->names, e->data, sizeof(float) * (size_t)(DEGRADE_N * E));
    t_arena_release(mark);
    t_set_grad_enabled(prev);
    free(ids);
    if (!e) {
        free(m->names);
        m->names = NULL;
        return -1;
    }
    return 0;
}

int daclip_classify(DaclipModel *m, const float *images, int B, float *probs, float *content, float *degradation) {
    if (daclip_name_embeddings(m)) return -1;
    int S = m->clip.cfg.vision.image_size;
    int64_t E = m->clip.cfg.vision.embed_dim;
    bool prev = t_set_grad_enabled(false);
    Tensor *img = t_from(T_SHAPE(B, 3, S, S), images);
    Tensor *c, *d;
    int rc = daclip_encode_image(&m->ctl, &m->clip.visual, img, &c, &d);
    if (!rc) {
        Tensor *dn = nn_l2_normalize(d);                                               /* [B, E] */
        Tensor *tn = nn_l2_normalize(t_from(T_SHAPE(DEGRADE_N, E), m->names));         /* [10, E] */
        Tensor *logits = t_mul_scalar(t_matmul(dn, t_transpose(tn, 0, 1)), 100.0f);   /* [B, 10] */
        Tensor *p = t_softmax(logits, 1);
        if (!p) rc = -1;
        for (int64_t k = 0; !rc && k < (int64_t)B * DEGRADE_N; k++)
            if (!isfinite(p->data[k])) {
                t_error("daclip", "the model produced non-finite outputs (corrupt weights?)");
                rc = -1;
            }
        if (!rc) {
            memcpy(probs, p->data, sizeof(float) * (size_t)B * DEGRADE_N);
            if (content) memcpy(content, c->data, sizeof(float) * (size_t)(B * E));
            if (degradation) memcpy(degradation, d->data, sizeof(float) * (size_t)(B * E));
        }
    }
    t_set_grad_enabled(prev);
    return rc;
}
