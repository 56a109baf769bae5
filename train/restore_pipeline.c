/* Models, DA-CLIP embeddings, the sampler on HWC images, atomic writes: shared by restore and eval-ir. */
#include "train/restore_pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/clip_preprocess.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "tensor/safetensors.h"
#include "train/progress.h"
#include "train/pt_import.h"

/* ---- models ------------------------------------------------------------------------------------------------ */

/* The schedule options: universal-IR defaults, overridden by the official option names in the metadata of a
 * U-Net model file of ours. */
static int sde_options_from_file(const char *path, IrSdeOptions *o, char *err, size_t errlen) {
    *o = irsde_options_default();
    StFile *f = st_open(path);
    if (!f) return 0;   /* an official .pth (already loaded, so readable): the universal-IR options */
    char v[64], *end;
    int rc = 0;
    if (st_meta_get(f, "T", v, sizeof v) == 0) {
        errno = 0;
        long T = strtol(v, &end, 10);
        if (errno || *end || end == v || T < 1 || T > 100000) rc = -1;
        else o->T = (int)T;
    }
    if (!rc && st_meta_get(f, "max_sigma", v, sizeof v) == 0) {
        o->max_sigma = strtod(v, &end);
        if (*end || end == v || !(o->max_sigma > 0)) rc = -1;
    }
    if (!rc && st_meta_get(f, "eps", v, sizeof v) == 0) {
        o->eps = strtod(v, &end);
        if (*end || end == v || !(o->eps > 0 && o->eps < 1)) rc = -1;
    }
    if (!rc && st_meta_get(f, "schedule", v, sizeof v) == 0 && irsde_schedule_parse(v, &o->schedule)) rc = -1;
    if (rc) snprintf(err, errlen, "%s: bad SDE option '%s' in the metadata", path, v);
    st_close(f);
    return rc;
}

int restorer_open(Restorer *r, const char *daclip_path, const char *unet_path, int steps, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    params_init(&r->unet_ps);
    UNetConfig loaded;
    if (unet_model_open(unet_path, NULL, &r->unet, &r->unet_ps, &loaded, err, errlen)) goto fail;
    const UNetConfig *cfg = &r->unet.cfg;
    if (cfg->in_nc != 3 || cfg->out_nc != 3) {
        snprintf(err, errlen, "%s: the U-Net has %d input and %d output channels; images have 3", unet_path, cfg->in_nc,
                 cfg->out_nc);
        goto fail;
    }
    r->needs_context = cfg->use_degra_context || cfg->use_image_context;
    if (daclip_path) {
        if (daclip_model_load(daclip_path, NULL, &r->daclip, err, errlen)) goto fail;
        r->has_daclip = true;
        daclip_model_prepack(&r->daclip);   /* inference only */
        r->embed = (int)r->daclip.clip.cfg.vision.embed_dim;
    }
    if (r->needs_context && !r->has_daclip) {
        snprintf(err, errlen, "%s: this U-Net takes DA-CLIP embeddings (context_dim %d): give the DA-CLIP model with "
                 "--daclip", unet_path, cfg->context_dim);
        goto fail;
    }
    if (r->needs_context && cfg->context_dim != r->embed) {
        snprintf(err, errlen, "the U-Net %s has context_dim %d but the DA-CLIP model %s makes %d-wide embeddings: "
                 "they were not trained together", unet_path, cfg->context_dim, daclip_path, r->embed);
        goto fail;
    }
    IrSdeOptions o;
    if (sde_options_from_file(unet_path, &o, err, errlen)) goto fail;
    o.sample_T = steps;
    if (irsde_init(&r->sde, &o)) {
        snprintf(err, errlen, "--steps %d: %s", steps, t_errmsg());
        goto fail;
    }
    return 0;
fail:
    restorer_close(r);
    return -1;
}

void restorer_close(Restorer *r) {
    if (r->has_daclip) daclip_model_free(&r->daclip);
    params_free(&r->unet_ps);
    irsde_free(&r->sde);
    memset(r, 0, sizeof *r);
}

/* ---- DA-CLIP ----------------------------------------------------------------------------------------------- */

void restore_embedding_free(RestoreEmbedding *e) {
    free(e->content), free(e->degra);
    memset(e, 0, sizeof *e);
}

/* DA-CLIP on views[0..B) for the images at[0..B) */
static int classify_batch(Restorer *r, const float *views, int B, const int *at, RestoreEmbedding *emb, float *probs,
                          float *content, float *degra, char *err, size_t errlen) {
    int E = r->embed;
    size_t mark = t_arena_mark();
    int rc = daclip_classify(&r->daclip, views, B, probs, content, degra);
    t_arena_release(mark);
    if (rc) {
        snprintf(err, errlen, "DA-CLIP: %s", t_errmsg());
        return -1;
    }
    for (int b = 0; b < B; b++) {
        RestoreEmbedding *e = &emb[at[b]];
        const float *p = probs + (size_t)b * DEGRADE_N;
        e->type = 0;
        for (int k = 1; k < DEGRADE_N; k++)
            if (p[k] > p[e->type]) e->type = k;
        e->prob = p[e->type];
        e->content = malloc(sizeof(float) * (size_t)E);
        e->degra = malloc(sizeof(float) * (size_t)E);
        if (!e->content || !e->degra) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        memcpy(e->content, content + (size_t)b * E, sizeof(float) * (size_t)E);
        memcpy(e->degra, degra + (size_t)b * E, sizeof(float) * (size_t)E);
    }
    return 0;
}

int restorer_embed_files(Restorer *r, const char *cmd, char *const *paths, int n, RestoreEmbedding *emb, char *err,
                         size_t errlen) {
    int S = r->has_daclip ? r->daclip.clip.cfg.vision.image_size : 1, E = r->embed > 0 ? r->embed : 1;
    size_t per = (size_t)3 * S * S;
    float *views = malloc(sizeof(float) * per * RESTORER_CLIP_BATCH);
    float *probs = malloc(sizeof(float) * DEGRADE_N * RESTORER_CLIP_BATCH);
    float *content = malloc(sizeof(float) * (size_t)E * RESTORER_CLIP_BATCH);
    float *degra = malloc(sizeof(float) * (size_t)E * RESTORER_CLIP_BATCH);
    int at[RESTORER_CLIP_BATCH], B = 0, failures = 0, rc = 0;
    if (!views || !probs || !content || !degra) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        memset(&emb[i], 0, sizeof emb[i]);
        emb[i].type = -1;
        Image im = {0};
        if (image_load(paths[i], &im) || (r->has_daclip && clip_preprocess(&im, S, views + per * B))) {
            fprintf(stderr, "daclip %s: %s\n", cmd, data_error());
            failures++;
        } else {
            emb[i].ok = true, emb[i].w = im.w, emb[i].h = im.h;
            if (r->has_daclip) at[B++] = i;
        }
        image_free(&im);
        if (B == RESTORER_CLIP_BATCH || (B > 0 && i == n - 1)) {
            rc = classify_batch(r, views, B, at, emb, probs, content, degra, err, errlen);
            B = 0;
        }
    }
    free(views), free(probs), free(content), free(degra);
    return rc ? -1 : failures;
}

/* ---- sampling ---------------------------------------------------------------------------------------------- */

typedef struct {
    Progress bar;
} RunProgress;

/* steps for the rate and ETA; within a long step of several tiles (an untiled image is one), the tiles done */
static void on_step(void *ctx, int done, int total, int tiles_done, int tiles) {
    (void)total;
    if (tiles > 1 && tiles_done < tiles) progress_update(&((RunProgress *)ctx)->bar, done, "tile %d/%d", tiles_done, tiles);
    else progress_update(&((RunProgress *)ctx)->bar, done, "%s", "");
}

int restorer_run(Restorer *r, const Image *lq, const RestoreEmbedding *const *emb, int n, const RestoreOptions *o,
                 const char *label, Image *out, char *err, size_t errlen) {
    RestoreImage *ims = calloc((size_t)n, sizeof *ims);
    int rc = ims ? 0 : -1;
    for (int i = 0; i < n; i++) out[i] = (Image){0};
    for (int i = 0; i < n && !rc; i++) {
        size_t hw = (size_t)lq[i].w * lq[i].h;
        float *planar = malloc(sizeof(float) * hw * 3), *x = malloc(sizeof(float) * hw * 3);
        ims[i] = (RestoreImage){.lq = planar, .out = x, .h = lq[i].h, .w = lq[i].w};
        if (!planar || !x || lq[i].c != 3) {
            rc = -1;
            break;
        }
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++) planar[c * hw + p] = lq[i].px[p * 3 + c];
        if (r->needs_context && emb && emb[i]) {
            ims[i].degra = r->unet.cfg.use_degra_context ? emb[i]->degra : NULL;
            ims[i].content = r->unet.cfg.use_image_context ? emb[i]->content : NULL;
        }
    }
    if (rc) {
        snprintf(err, errlen, "out of memory (or not an RGB image)");
    } else {
        RunProgress pr;
        RestoreOptions opt = *o;
        opt.progress = on_step, opt.progress_ctx = &pr;
        progress_begin(&pr.bar, label, r->sde.steps, "step");
        rc = restore_images(&r->sde, &r->unet, ims, n, &opt);
        progress_end(&pr.bar);
        if (rc) snprintf(err, errlen, "%s", t_errmsg());
    }
    for (int i = 0; i < n && !rc; i++) {
        size_t hw = (size_t)lq[i].w * lq[i].h;
        if (image_alloc(&out[i], lq[i].w, lq[i].h, 3)) {
            snprintf(err, errlen, "%s", data_error());
            rc = -1;
            break;
        }
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++) {
                float v = ims[i].out[c * hw + p];
                out[i].px[p * 3 + c] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;   /* tensor2img's clamp */
            }
    }
    for (int i = 0; ims && i < n; i++) free((float *)ims[i].lq), free(ims[i].out);
    free(ims);
    if (rc)
        for (int i = 0; i < n; i++) image_free(&out[i]);
    return rc;
}

static int64_t pixels(const RestoreEmbedding *e) { return (int64_t)e->w * e->h; }

int restore_group_size(const RestoreEmbedding *emb, const int *idx, int n, int first) {
    int k = 1;
    int64_t total = pixels(&emb[idx[first]]);
    while (first + k < n && k < RESTORER_GROUP_MAX && total + pixels(&emb[idx[first + k]]) <= RESTORE_BATCH_PIXELS)
        total += pixels(&emb[idx[first + k++]]);
    return k;
}

/* Appends one malloc'd path to the growing list. */
static int push_path(char ***list, int *n, int *cap, char *path) {
    if (!path) return -1;
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 32;
        char **grown = realloc(*list, sizeof *grown * (size_t)c);
        if (!grown) {
            free(path);
            return -1;
        }
        *list = grown, *cap = c;
    }
    (*list)[(*n)++] = path;
    return 0;
}

int restore_collect_inputs(const char *cmd, char *const *args, int nargs, char ***paths, int *n) {
    char **list = NULL;
    int cnt = 0, cap = 0;
    for (int a = 0; a < nargs; a++) {
        struct stat st;
        if (stat(args[a], &st) || !S_ISDIR(st.st_mode)) {   /* a file (an unreadable one is reported later) */
            if (push_path(&list, &cnt, &cap, strdup(args[a]))) goto oom;
            continue;
        }
        char **files;
        int nf;
        if (dataset_list_images(args[a], &files, &nf)) {
            fprintf(stderr, "daclip %s: %s\n", cmd, data_error());
            dataset_free_list(list, cnt);
            return -1;
        }
        if (nf == 0) fprintf(stderr, "daclip %s: %s: no PNG or JPEG images in this folder\n", cmd, args[a]);
        int k = 0;
        while (k < nf && push_path(&list, &cnt, &cap, files[k]) == 0) k++;
        if (k < nf) {
            dataset_free_list(files + k + 1, nf - k - 1);
            free(files);
            goto oom;
        }
        free(files);
    }
    *paths = list, *n = cnt;
    return 0;
oom:
    fprintf(stderr, "daclip %s: out of memory\n", cmd);
    dataset_free_list(list, cnt);
    return -1;
}

/* ---- files ------------------------------------------------------------------------------------------------- */

int restore_save_atomic(const char *path, const Image *im) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *dot = strrchr(base, '.');
    char tmp[4200];
    int dir_len = (int)(base - path);
    if (snprintf(tmp, sizeof tmp, "%.*s.%s.tmp%ld%s", dir_len, path, base, (long)getpid(), dot ? dot : "") >=
        (int)sizeof tmp) {
        data_set_error("%s: path too long", path);
        return -1;
    }
    if (image_save(tmp, im)) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path)) {
        data_set_error("%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void restore_stem(const char *path, char *buf, size_t n) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    snprintf(buf, n, "%.*s", (int)len, base);
}
