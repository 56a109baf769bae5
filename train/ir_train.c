#include "train/ir_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/clip_preprocess.h"
#include "data/image_io.h"
#include "data/image_ops.h"
#include "data/metrics.h"
#include "irsde/sample.h"
#include "nn/checkpoint.h"
#include "nn/ema.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tensor/ops.h"
#include "train/batch_shard.h"
#include "train/dist.h"
#include "train/dist_train.h"
#include "train/paths.h"
#include "train/plot.h"
#include "train/progress.h"
#include "train/pt_import.h"
#include "train/sample_order.h"
#include "train/train_log.h"

#define MAX_CONFIG_BYTES 65536
#define LOSS_WINDOW 50          /* IrTrainResult.last_loss: the mean of the last steps (t varies per step) */
#define VAL_SEED_SALT 0x5A17D00Dull

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Ops report shape errors through t_error, whose default handler exits; training reports them instead. */
static void keep_going(const char *msg) { (void)msg; }

/* ------------------------------------------------------------------ the model */

bool ir_model_uses_context(const UNetConfig *cfg) { return cfg->use_degra_context || cfg->use_image_context; }

static char *read_small_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_CONFIG_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > MAX_CONFIG_BYTES) {
        snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : bad ? "read error" : "larger than 64 KB: not a config");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

int ir_model_config(const char *spec, bool no_daclip, UNetConfig *cfg, char *err, size_t errlen) {
    if (!spec) spec = "small";
    if (unet_config_preset(spec, cfg) == 0) {
        if (no_daclip) cfg->use_degra_context = cfg->use_image_context = false;
        return 0;
    }
    struct stat st;
    if (stat(spec, &st) != 0) {
        snprintf(err, errlen, "--model %s: neither a preset (universal, small, plain) nor a JSON config file", spec);
        return -1;
    }
    char *json = read_small_file(spec, err, errlen);
    if (!json) return -1;
    int rc = unet_config_from_json(json, spec, cfg);
    free(json);
    if (rc) {
        snprintf(err, errlen, "%s", t_errmsg());
        return -1;
    }
    if (no_daclip && ir_model_uses_context(cfg)) {
        snprintf(err, errlen, "%s: the config uses DA-CLIP embeddings (use_degra_context/use_image_context) but "
                 "--no-daclip was given", spec);
        return -1;
    }
    return 0;
}

int ir_model_init(IrModel *m, const UNetConfig *cfg, const char *init_path, const char *model_name,
                  DaclipModel *daclip, const char *daclip_name, uint64_t seed, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    params_init(&m->ps);
    IrSdeOptions so = irsde_options_default();
    if (irsde_init(&m->sde, &so)) {
        snprintf(err, errlen, "%s", t_errmsg());
        return -1;
    }
    if (init_path) {   /* a model file of ours or an official .pth; strict names and shapes either way */
        UNetConfig file_cfg;
        if (unet_model_open(init_path, NULL, &m->net, &m->ps, &file_cfg, err, errlen)) goto fail;
        model_name = init_path;
    } else {
        TRng rng;
        rng_seed(&rng, seed);
        if (unet_init(&m->net, &m->ps, "", cfg, &rng)) {
            snprintf(err, errlen, "%s: %s", model_name, t_errmsg());
            goto fail;
        }
    }
    m->cfg = m->net.cfg;
    if (ir_model_uses_context(&m->cfg)) {
        if (!daclip) {
            snprintf(err, errlen, "%s: the U-Net uses DA-CLIP embeddings (use_degra_context/use_image_context): give "
                     "--daclip FILE, or train the plain IR-SDE with --no-daclip", model_name);
            goto fail;
        }
        int64_t E = daclip->clip.cfg.vision.embed_dim;
        if (E != m->cfg.context_dim) {
            snprintf(err, errlen, "%s has context_dim %d but the DA-CLIP %s gives %lld-dim embeddings: they must be "
                     "equal", model_name, m->cfg.context_dim, daclip_name, (long long)E);
            goto fail;
        }
        m->daclip = daclip;
        m->clip_size = daclip->clip.cfg.vision.image_size;
    }
    return 0;
fail:
    ir_model_free(m);
    return -1;
}

void ir_model_free(IrModel *m) {
    params_free(&m->ps);
    irsde_free(&m->sde);
    memset(m, 0, sizeof *m);
}

/* The two DA-CLIP embeddings of B CLIP views, computed without a tape (DA-CLIP is frozen). */
static int daclip_embed(DaclipModel *d, const float *views, int B, int S, Tensor **content, Tensor **degra) {
    bool prev = t_set_grad_enabled(false);
    int rc = daclip_encode_image(&d->ctl, &d->clip.visual, t_from(T_SHAPE(B, 3, S, S), views), content, degra);
    t_set_grad_enabled(prev);
    return rc;
}

/* ------------------------------------------------------------------ data */

int ir_types_parse(const char *list, bool mask[DEGRADE_N], char *err, size_t errlen) {
    bool any = list && list[0];
    for (int t = 0; t < DEGRADE_N; t++) mask[t] = !any;
    if (!any) return 0;
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) {
        snprintf(err, errlen, "--types: list too long");
        return -1;
    }
    for (char *save = NULL, *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int t = degrade_type_from_name(name);
        if (t < 0) {
            snprintf(err, errlen, "--types: unknown degradation \"%s\" (the ten: motion-blurry, hazy, jpeg-compressed, "
                     "low-light, noisy, raindrop, rainy, shadowed, snowy, uncompleted)", name);
            return -1;
        }
        mask[t] = true;
    }
    return 0;
}

/* Keeps the items of the selected types (ownership of their paths stays with ds). */
static int keep_types(Dataset *ds, const bool mask[DEGRADE_N]) {
    DatasetItem *kept = malloc(sizeof *kept * (size_t)(ds->n ? ds->n : 1));
    if (!kept) return -1;
    int n = 0, start[DEGRADE_N + 1];
    for (int t = 0; t < DEGRADE_N; t++) {
        start[t] = n;
        for (int i = ds->type_start[t]; i < ds->type_start[t + 1]; i++) {
            if (mask[t]) kept[n++] = ds->items[i];
            else free(ds->items[i].lq), free(ds->items[i].gt);
        }
    }
    start[DEGRADE_N] = n;
    free(ds->items);
    ds->items = kept;
    ds->n = n;
    memcpy(ds->type_start, start, sizeof start);
    return 0;
}

int ir_dataset_open(const char *root, const char *split, const bool mask[DEGRADE_N], Dataset *ds, char *err,
                    size_t errlen) {
    memset(ds, 0, sizeof *ds);
    char top[4096], dir[4200], lq[4300], gt[4300];
    snprintf(top, sizeof top, "%s/%s", root, split);
    if (!is_dir(top)) {
        snprintf(err, errlen, "%s: no such folder (expected %s/<degradation>/{LQ,GT})", top, top);
        return -1;
    }
    bool all = true;
    for (int t = 0; t < DEGRADE_N; t++) all = all && mask[t];
    for (int t = 0; t < DEGRADE_N; t++) {
        if (!mask[t]) continue;
        snprintf(dir, sizeof dir, "%s/%s", top, degrade_name(t));
        snprintf(lq, sizeof lq, "%s/LQ", dir);
        snprintf(gt, sizeof gt, "%s/GT", dir);
        bool has_lq = is_dir(lq), has_gt = is_dir(gt);
        if (has_lq != has_gt) {
            snprintf(err, errlen, "%s: has %s/ but no %s/ folder (every degradation needs LQ/ and GT/ with paired "
                     "images)", dir, has_lq ? "LQ" : "GT", has_lq ? "GT" : "LQ");
            return -1;
        }
        if (!has_lq && (is_dir(dir) || !all)) {
            snprintf(err, errlen, "%s: no LQ/ and GT/ folders%s", dir, all ? "" : " (a type --types asks for)");
            return -1;
        }
    }
    if (dataset_open(root, split, ds)) {
        snprintf(err, errlen, "%s", data_error());
        return -1;
    }
    if (keep_types(ds, mask)) {
        snprintf(err, errlen, "%s: out of memory", top);
        dataset_free(ds);
        return -1;
    }
    for (int t = 0; t < DEGRADE_N; t++)
        if (mask[t] && !all && dataset_type_count(ds, t) == 0) {
            snprintf(err, errlen, "%s/%s/LQ: no images (a type --types asks for)", top, degrade_name(t));
            dataset_free(ds);
            return -1;
        }
    if (ds->n == 0) {
        snprintf(err, errlen, "%s: no LQ/GT image pairs of the selected degradations", top);
        dataset_free(ds);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ validation */

static void chw_to_image(const float *chw, int w, int h, Image *im) {
    size_t plane = (size_t)w * h;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) im->px[p * 3 + c] = chw[c * plane + p];
}

/* An RGB centre crop of side `crop` (the whole image when crop <= 0 or the image is not larger). */
static int load_rgb_crop(const char *path, int crop, Image *out) {
    Image im = {0}, rgb = {0};
    int rc = image_load(path, &im) || image_to_rgb(&im, &rgb);
    image_free(&im);
    if (rc) return -1;
    int cw = crop > 0 && crop < rgb.w ? crop : rgb.w, ch = crop > 0 && crop < rgb.h ? crop : rgb.h;
    if (cw == rgb.w && ch == rgb.h) {
        *out = rgb;
        return 0;
    }
    rc = image_crop(&rgb, (rgb.w - cw) / 2, (rgb.h - ch) / 2, cw, ch, out);
    image_free(&rgb);
    return rc;
}

void ir_val_free(IrValSet *v) {
    for (int i = 0; i < v->n; i++) {
        if (v->lq) free(v->lq[i]);
        if (v->gt) image_free(&v->gt[i]);
    }
    free(v->lq), free(v->gt), free(v->type), free(v->content), free(v->degra);
    memset(v, 0, sizeof *v);
}

/* Loads validation image k of the set from dataset item `item`. */
static int val_load_one(IrModel *m, const DatasetItem *item, int crop, IrValSet *v, int k, Metrics *lqm, char *err,
                        size_t errlen) {
    Image lq = {0};
    if (load_rgb_crop(item->lq, crop, &lq) || load_rgb_crop(item->gt, crop, &v->gt[k])) {
        snprintf(err, errlen, "%s", data_error());
        image_free(&lq);
        return -1;
    }
    int rc = -1;
    if (lq.w != v->gt[k].w || lq.h != v->gt[k].h) {
        snprintf(err, errlen, "%s and %s: LQ is %dx%d but GT is %dx%d", item->lq, item->gt, lq.w, lq.h, v->gt[k].w,
                 v->gt[k].h);
        goto done;
    }
    if (metrics_compute(&v->gt[k], &lq, METRICS_DEFAULT_CROP, lqm)) {
        snprintf(err, errlen, "%s: %s", item->lq, data_error());
        goto done;
    }
    v->lq[k] = malloc(sizeof(float) * 3 * (size_t)lq.w * (size_t)lq.h);
    if (!v->lq[k]) {
        snprintf(err, errlen, "%s: out of memory", item->lq);
        goto done;
    }
    image_to_chw(&lq, v->lq[k]);
    if (m->daclip) {
        int S = m->clip_size;
        size_t mark = t_arena_mark();
        float *view = t_arena_alloc(sizeof(float) * 3 * (size_t)S * S);
        Tensor *c, *d;
        if (clip_preprocess(&lq, S, view)) {
            snprintf(err, errlen, "%s: %s", item->lq, data_error());
        } else if (daclip_embed(m->daclip, view, 1, S, &c, &d)) {
            snprintf(err, errlen, "%s: DA-CLIP: %s", item->lq, t_errmsg());
        } else {
            memcpy(v->content + k * v->E, c->data, sizeof(float) * (size_t)v->E);
            memcpy(v->degra + k * v->E, d->data, sizeof(float) * (size_t)v->E);
            rc = 0;
        }
        t_arena_release(mark);
    } else {
        rc = 0;
    }
done:
    image_free(&lq);
    return rc;
}

int ir_val_load(IrModel *m, const Dataset *ds, int n, int crop, IrValSet *v, char *err, size_t errlen) {
    memset(v, 0, sizeof *v);
    if (n > ds->n) n = ds->n;
    if (n <= 0) {
        snprintf(err, errlen, "no validation images");
        return -1;
    }
    v->E = m->daclip ? m->daclip->clip.cfg.vision.embed_dim : 0;
    v->lq = calloc((size_t)n, sizeof *v->lq);
    v->gt = calloc((size_t)n, sizeof *v->gt);
    v->type = calloc((size_t)n, sizeof *v->type);
    if (v->E) {
        v->content = malloc(sizeof(float) * (size_t)(n * v->E));
        v->degra = malloc(sizeof(float) * (size_t)(n * v->E));
    }
    if (!v->lq || !v->gt || !v->type || (v->E && (!v->content || !v->degra))) {
        snprintf(err, errlen, "out of memory");
        ir_val_free(v);
        return -1;
    }
    v->n = n;
    int next[DEGRADE_N] = {0}, k = 0;
    bool prev = t_set_grad_enabled(false);
    TErrorHandler prev_handler = t_set_error_handler(keep_going);
    int rc = 0;
    while (k < n && !rc)   /* round robin over the types, each in file order */
        for (int t = 0; t < DEGRADE_N && k < n && !rc; t++) {
            if (next[t] >= dataset_type_count(ds, t)) continue;
            const DatasetItem *item = &ds->items[ds->type_start[t] + next[t]++];
            Metrics lqm;
            v->type[k] = t;
            rc = val_load_one(m, item, crop, v, k, &lqm, err, errlen);
            if (!rc) v->lq_psnr += lqm.psnr / n, v->lq_ssim += lqm.ssim / n;
            k++;
        }
    t_set_error_handler(prev_handler);
    t_set_grad_enabled(prev);
    if (rc) ir_val_free(v);
    return rc;
}

int ir_validate(IrModel *m, const IrValSet *v, uint64_t seed, IrValResult *r) {
    memset(r, 0, sizeof *r);
    r->lq_psnr = v->lq_psnr, r->lq_ssim = v->lq_ssim;
    int rc = 0;
    int64_t lo, hi;   /* data-parallel: each rank restores its slice of the images; the sums are reduced */
    dist_shard(v->n, &lo, &hi);
    for (int i = (int)lo; i < hi && !rc; i++) {
        int w = v->gt[i].w, h = v->gt[i].h;
        size_t mark = t_arena_mark();
        Tensor *lq = t_from(T_SHAPE(1, 3, h, w), v->lq[i]);
        Tensor *c = v->content ? t_from(T_SHAPE(1, v->E), v->content + i * v->E) : NULL;
        Tensor *d = v->degra ? t_from(T_SHAPE(1, v->E), v->degra + i * v->E) : NULL;
        TRng rng;
        rng_seed(&rng, sample_mix64(seed ^ VAL_SEED_SALT ^ sample_mix64((uint64_t)i)));
        Image out = {0};
        Metrics mm;
        if (image_alloc(&out, w, h, 3)) {
            t_set_errmsg("validation: out of memory");
            rc = -1;
        } else {
            float *x = t_arena_alloc(sizeof(float) * 3 * (size_t)w * h);
            rc = irsde_sample(&m->sde, &m->net, lq, d, c, IRSDE_SAMPLE_POSTERIOR, &rng, x);
            if (!rc) {
                chw_to_image(x, w, h, &out);
                if (metrics_compute(&v->gt[i], &out, METRICS_DEFAULT_CROP, &mm)) {
                    t_set_errmsg("validation: %s", data_error());
                    rc = -1;
                } else {
                    r->psnr += mm.psnr / v->n, r->ssim += mm.ssim / v->n;
                }
            }
        }
        image_free(&out);
        t_arena_release(mark);
    }
    double sums[3] = {r->psnr, r->ssim, rc ? 1 : 0};
    dist_sum_f64(sums, 3, "validation");
    r->psnr = sums[0], r->ssim = sums[1];
    if (sums[2] > 0 && !rc) {
        t_set_errmsg("validation failed on another rank (its message is above)");
        rc = -1;
    }
    return rc;
}

/* ------------------------------------------------------------------ one step's loss */

void ir_train_default_options(IrTrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->steps = 10000;
    o->batch = 4;
    o->patch = 128;
    o->lr = 2e-4;
    o->eta_min = 1e-6;
    o->ema_beta = 0.995;
    o->ema_every = 10;
    o->loader_threads = 2;
}

void ir_loader_config(const IrModel *m, const Dataset *train, const IrTrainOptions *o, LoaderConfig *c) {
    loader_default_config(c);
    c->batch = o->batch;
    c->patch = o->patch;
    c->clip_size = m->daclip ? m->clip_size : 0;
    c->threads = o->loader_threads;
    c->seed = o->seed;
    if (train->n < o->batch) c->epoch_len = o->batch;   /* a tiny dataset still fills a batch */
}

static uint64_t step_seed(uint64_t seed, int64_t step) {
    return sample_mix64(seed ^ sample_mix64((uint64_t)step + 0x9E3779B97F4A7C15ull));
}

/* The loss of `step` on batch b (§4.4): per sample t ~ U{1..T} and x_t from the marginal with GT as x_0, both
 * from a generator seeded by (seed, step); ε̂ = U-Net(x_t, LQ, t, DA-CLIP embeddings of the LQ's CLIP view).
 * b holds rows [first, first + b->n) of a global batch of `global` rows (data-parallel: a rank's shard; else
 * first 0, global b->n): the generator draws the t of every global row, then the noise row after row, so a row
 * gets the same t and noise whichever rank computes it. On the tape when gradients are enabled. NULL with
 * t_errmsg() on failure. */
static Tensor *step_loss(IrModel *m, const Batch *b, uint64_t seed, int64_t step, int global, int first) {
    int B = b->n, P = b->patch;
    int64_t n = (int64_t)3 * P * P;
    Tensor *lq = t_from(T_SHAPE(B, 3, P, P), b->lq), *gt = t_from(T_SHAPE(B, 3, P, P), b->gt);
    Tensor *content = NULL, *degra = NULL;
    if (m->daclip && daclip_embed(m->daclip, b->clip, B, m->clip_size, &content, &degra)) return NULL;
    int *t_all = t_arena_alloc(sizeof(int) * (size_t)global), *t = t_all + first;
    float *time = t_arena_alloc(sizeof(float) * (size_t)B);
    TRng rng;
    rng_seed(&rng, step_seed(seed, step));
    for (int i = 0; i < global; i++) t_all[i] = irsde_random_t(&m->sde, &rng);
    for (int i = 0; i < B; i++) time[i] = irsde_time_input(&m->sde, t[i]);
    for (int64_t i = 0; i < (int64_t)first * n; i++) rng_normal(&rng);   /* the rows before this shard */
    float *noise = t_arena_alloc(sizeof(float) * (size_t)(B * n));
    for (int64_t i = 0; i < B * n; i++) noise[i] = rng_normal(&rng);
    Tensor *xt = t_new(T_SHAPE(B, 3, P, P));
    if (irsde_marginal(&m->sde, xt->data, gt->data, lq->data, t, B, n, noise, NULL)) {
        t_error("train-ir", "%s", t_errmsg());
        return NULL;
    }
    Tensor *eps = unet_forward(&m->net, xt, lq, time, degra, content);   /* [B, 3, P, P] */
    return eps ? irsde_loss(&m->sde, eps, xt, lq, gt, t) : NULL;
}

int ir_batch_loss(IrModel *m, const Batch *batch, uint64_t seed, int64_t step, double *loss) {
    bool prev = t_set_grad_enabled(false);
    TErrorHandler prev_handler = t_set_error_handler(keep_going);
    size_t mark = t_arena_mark();
    Tensor *l = step_loss(m, batch, seed, step, batch->n, 0);
    if (l) *loss = l->data[0];   /* else the message is in t_errmsg() */
    t_arena_release(mark);
    t_set_error_handler(prev_handler);
    t_set_grad_enabled(prev);
    return l ? 0 : -1;
}

/* ------------------------------------------------------------------ the loss and PSNR plot */

#define LOG_HEADER "step,lr,loss,val_psnr,val_ssim,lq_psnr,lq_ssim,ema_decay,images_per_s"
enum { COL_STEP, COL_LR, COL_LOSS, COL_VAL_PSNR, COL_VAL_SSIM, COL_LQ_PSNR, COL_LQ_SSIM, COL_N = 9 };

/* Reads our own log (LOG_HEADER columns, in that order) into per-column arrays. Returns the row count. */
static int read_log(const char *path, double *cols[COL_N]) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0, cap = 0;
    bool header = true;
    while (fgets(line, sizeof line, f)) {
        if (header) {
            header = false;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            for (int c = 0; c < COL_N; c++) {
                double *p = realloc(cols[c], sizeof(double) * (size_t)cap);
                if (!p) {
                    fclose(f);
                    return -1;
                }
                cols[c] = p;
            }
        }
        char *p = line;
        for (int c = 0; c < COL_N; c++) {
            char *end;
            cols[c][n] = strtod(p, &end);   /* "nan" reads as NaN: a step without validation */
            if (end == p) cols[c][n] = NAN;
            p = strchr(end, ',');
            if (!p) {
                for (int r = c + 1; r < COL_N; r++) cols[r][n] = NAN;
                break;
            }
            p++;
        }
        if (!isnan(cols[COL_STEP][n])) n++;
    }
    fclose(f);
    return n;
}

/* loss.png: the training loss with its moving average, and the validation PSNR of the restored images next
 * to the degraded input's. */
static int plot_log(const char *csv, const char *png) {
    double *cols[COL_N] = {0};
    int n = read_log(csv, cols), rc = -1;
    double *smooth = n > 0 ? malloc(sizeof(double) * (size_t)n) : NULL;
    Image im = {0};
    if (n > 0 && smooth && image_alloc(&im, 1000, 360, 3) == 0) {
        int w = n < 10 * LOSS_WINDOW ? (n / 10 > 1 ? n / 10 : 1) : LOSS_WINDOW;
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += cols[COL_LOSS][i] - (i >= w ? cols[COL_LOSS][i - w] : 0);
            smooth[i] = sum / (i + 1 < w ? i + 1 : w);
        }
        for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++) im.px[i] = 1.0f;
        PlotSeries loss[2] = {{"LOSS", cols[COL_STEP], cols[COL_LOSS], n, {0.7f, 0.78f, 0.92f}},
                              {"MOVING MEAN", cols[COL_STEP], smooth, n, {0.15f, 0.35f, 0.8f}}};
        PlotSeries psnr[2] = {{"RESTORED - EMA", cols[COL_STEP], cols[COL_VAL_PSNR], n, {0.2f, 0.65f, 0.25f}},
                              {"DEGRADED INPUT", cols[COL_STEP], cols[COL_LQ_PSNR], n, {0.9f, 0.4f, 0.1f}}};
        plot_panel(&im, 0, 0, 500, 360, "TRAINING LOSS", 2, loss);
        plot_panel(&im, 500, 0, 500, 360, "VALIDATION PSNR DB", 2, psnr);
        rc = image_save(png, &im);
    }
    image_free(&im);
    free(smooth);
    for (int c = 0; c < COL_N; c++) free(cols[c]);
    return rc;
}

/* ------------------------------------------------------------------ training */

/* model_raw.safetensors (the raw weights) and model.safetensors (the EMA weights, swapped in for the save). */
static int save_models(IrModel *m, Ema *ema, const char *raw_path, const char *ema_path) {
    if (unet_save_file(&m->ps, &m->cfg, raw_path)) return -1;
    ema_swap(ema);
    int rc = unet_save_file(&m->ps, &m->cfg, ema_path);
    ema_swap(ema);
    return rc;
}

/* Validation on the EMA weights; prints and fills res. */
static void run_validation(IrModel *m, Ema *ema, const IrValSet *val, const IrTrainOptions *o, int64_t step,
                           bool newline, IrValResult *vr, IrTrainResult *res) {
    ema_swap(ema);
    t_arena_reset();
    int rc = ir_validate(m, val, o->seed, vr);
    ema_swap(ema);
    if (rc) {
        fprintf(stderr, "%sdaclip: train-ir: validation: %s\n", newline ? "\n" : "", t_errmsg());
        vr->psnr = vr->ssim = NAN;
        return;
    }
    res->val_psnr = vr->psnr, res->val_ssim = vr->ssim, res->lq_psnr = vr->lq_psnr, res->lq_ssim = vr->lq_ssim;
    if (!o->quiet)
        fprintf(stderr, "%sstep %lld: val PSNR %.2f dB SSIM %.4f (EMA weights, %d images; degraded input %.2f dB "
                "%.4f)\n", newline ? "\n" : "", (long long)step, vr->psnr, vr->ssim, val->n, vr->lq_psnr, vr->lq_ssim);
}

typedef struct {
    char ckpt[4200], model[4200], raw[4200], log[4200], png[4200];
} RunFiles;

static void run_files(const char *dir, RunFiles *f) {
    snprintf(f->ckpt, sizeof f->ckpt, "%s/checkpoint.safetensors", dir);
    snprintf(f->model, sizeof f->model, "%s/model.safetensors", dir);
    snprintf(f->raw, sizeof f->raw, "%s/model_raw.safetensors", dir);
    snprintf(f->log, sizeof f->log, "%s/log.csv", dir);
    snprintf(f->png, sizeof f->png, "%s/loss.png", dir);
}

int ir_train(IrModel *m, const Dataset *train, const IrValSet *val, const IrTrainOptions *o_in, IrTrainResult *res) {
    memset(res, 0, sizeof *res);
    res->val_psnr = res->val_ssim = res->lq_psnr = res->lq_ssim = NAN;
    /* data-parallel (docs/distributed.md): every rank runs this loop on its rows [lo, hi) of every global batch;
     * rank 0 alone writes files and draws the progress bar */
    IrTrainOptions oo = *o_in;
    const IrTrainOptions *o = &oo;
    bool files_wanted = o_in->out_dir != NULL;
    if (!dist_is_root()) oo.out_dir = NULL, oo.quiet = true;
    int ranks = dist_size();
    int64_t lo, hi;
    dist_shard(o->batch, &lo, &hi);
    if (o->batch < ranks) {
        fprintf(stderr, "daclip: train-ir: --batch %d is smaller than the %d ranks: every rank needs a sample\n",
                o->batch, ranks);
        return -1;
    }
    int pad = unet_pad_multiple(&m->cfg), P = o->patch;
    if ((P + pad - 1) / pad * pad - P >= P) {
        fprintf(stderr, "daclip: train-ir: --patch %d is smaller than the U-Net's padding to a multiple of %d\n", P, pad);
        return -1;
    }
    OptConfig oc = optim_adamw_config(o->lr, 0.0);   /* the official AdamW: no weight_decay_G, so wd 0 */
    oc.beta2 = 0.99;
    Optim *opt = optim_new(&m->ps, &oc);
    Ema ema;
    EmaConfig ec = ema_default_config(o->ema_beta, o->ema_every);   /* ema_pytorch.EMA(beta, update_every) */
    if (!opt || ema_init(&ema, &m->ps, &ec)) {
        fprintf(stderr, "daclip: train-ir: %s\n", t_errmsg());
        optim_free(opt);
        return -1;
    }
    char config[96];   /* what decides the batches and the noise: a resume must repeat it */
    snprintf(config, sizeof config, "batch=%d patch=%d seed=%llu", o->batch, o->patch, (unsigned long long)o->seed);
    TrainState st = {&m->ps, opt, NULL, &ema, 0, o->lr, config};   /* no running generator: step s seeds its own */
    RunFiles files;
    char err[1024] = "";
    FILE *log = NULL;
    Loader *loader = NULL;
    BatchShard shard = {0};
    int rc = -1;
    if (o->out_dir) {
        run_files(o->out_dir, &files);
        if (path_mkdir_p(o->out_dir)) {
            fprintf(stderr, "daclip: train-ir: cannot create %s: %s\n", o->out_dir, strerror(errno));
            goto done;
        }
    }
    if (o->resume) {
        if (ckpt_load(o->resume, &st)) {
            fprintf(stderr, "daclip: train-ir: cannot resume: %s\n", t_errmsg());
            goto done;
        }
        if (!o->quiet) fprintf(stderr, "resumed from %s at step %lld\n", o->resume, (long long)st.step);
    }
    if (dist_check_in_sync(&m->ps, st.step, "train-ir")) goto done;
    if (o->out_dir && !(log = train_log_open(files.log, LOG_HEADER, o->resume != NULL, st.step, err, sizeof err))) {
        fprintf(stderr, "daclip: train-ir: %s\n", err);
        goto done;
    }
    int64_t end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps, first_step = st.step;
    LoaderConfig lc;
    ir_loader_config(m, train, o, &lc);
    lc.start_batch = st.step;   /* batch s of the run, whatever step it resumes at */
    if (st.step < end && (ranks > 1 ? batch_shard_init(&shard, train, &lc, lo, hi) : !(loader = loader_create(train, &lc)))) {
        fprintf(stderr, "daclip: train-ir: %s\n", data_error());
        goto done;
    }
    TErrorHandler prev_handler = t_set_error_handler(keep_going);
    double recent[LOSS_WINDOW] = {0}, train_time = 0;
    int n_recent = 0;
    Progress bar;
    if (!o->quiet && st.step < end) progress_begin(&bar, "train-ir", end - first_step, "step");
    rc = 0;
    while (!rc && st.step < end) {
        double t0 = progress_now();
        t_arena_reset();
        params_zero_grad_lazy(&m->ps);
        const Batch *b = ranks > 1 ? batch_shard_get(&shard, st.step) : loader_next(loader);
        if (!b) {
            fprintf(stderr, "\ndaclip: train-ir: %s\n", data_error());
            rc = -1;
            break;
        }
        Tensor *loss = step_loss(m, b, o->seed, st.step, o->batch, (int)lo);
        if (!loss) {
            fprintf(stderr, "\ndaclip: train-ir: step %lld: %s\n", (long long)st.step, t_errmsg());
            rc = -1;
            break;
        }
        double lv = loss->data[0];
        if (ranks > 1) {   /* the batch mean is the sum of the shards' means weighted by their share of the rows */
            double share = (double)b->n / o->batch;
            loss = t_mul_scalar(loss, (float)share);
            lv *= share;
            dist_sum_f64(&lv, 1, "loss");
        }
        if (!isfinite(lv)) {
            fprintf(stderr, "\ndaclip: train-ir: loss is %g at step %lld; stopping\n", lv, (long long)st.step);
            rc = -1;
            break;
        }
        if (t_backward(loss)) {   /* out of memory: the gradients are incomplete, so no update */
            fprintf(stderr, "\ndaclip: train-ir: step %lld: %s; stopping\n", (long long)st.step, t_errmsg());
            rc = -1;
            break;
        }
        dist_sum_grads(&m->ps, NULL, 0);
        st.lr = lr_cosine_anneal(o->lr, o->eta_min, o->steps, st.step);   /* CosineAnnealingLR(T_max = steps) */
        opt->cfg.lr = st.lr;
        optim_step(opt);
        ema_update(&ema);
        if (st.step == first_step) res->first_loss = lv;
        recent[n_recent++ % LOSS_WINDOW] = lv;
        st.step++;
        train_time += progress_now() - t0;
        res->images_per_s = train_time > 0 ? (double)(st.step - first_step) * o->batch / train_time : 0;
        IrValResult vr = {NAN, NAN, NAN, NAN};
        if (val && ((o->val_every > 0 && st.step % o->val_every == 0) || st.step == end))
            run_validation(m, &ema, val, o, st.step, !o->quiet && bar.is_tty, &vr, res);
        if (log)
            fprintf(log, "%lld,%.6g,%.6f,%.4f,%.5f,%.4f,%.5f,%.6f,%.3f\n", (long long)st.step, st.lr, lv, vr.psnr,
                    vr.ssim, vr.lq_psnr, vr.lq_ssim, ema_current_decay(&ema), res->images_per_s);
        bool ckpt_now = files_wanted && ((o->ckpt_every > 0 && st.step % o->ckpt_every == 0) || st.step == end);
        if (ckpt_now && dist_check_in_sync(&m->ps, st.step, "train-ir")) {
            rc = -1;
            break;
        }
        if (ckpt_now && o->out_dir) {
            if (log) fflush(log);
            if (save_models(m, &ema, files.raw, files.model) || ckpt_save(files.ckpt, &st)) {
                fprintf(stderr, "\ndaclip: train-ir: %s\n", t_errmsg());
                rc = -1;
                break;
            }
        }
        if (!o->quiet) {
            double mean = 0;
            int k = n_recent < LOSS_WINDOW ? n_recent : LOSS_WINDOW;
            for (int i = 0; i < k; i++) mean += recent[i] / k;
            progress_update(&bar, st.step - first_step, "step %lld loss %.4f (mean %.4f) lr %.2e", (long long)st.step,
                            lv, mean, st.lr);
        }
    }
    if (!o->quiet && first_step < end) progress_end(&bar);
    if (!o->quiet) dist_report("train-ir", st.step - first_step, train_time);
    t_set_error_handler(prev_handler);
    res->steps_done = st.step;
    int k = n_recent < LOSS_WINDOW ? n_recent : LOSS_WINDOW;
    res->last_loss = k ? 0 : NAN;
    for (int i = 0; i < k; i++) res->last_loss += recent[i] / k;
    /* resumed at or past the end: nothing to train, but the model files are still what the user asked for */
    if (!rc && o->out_dir && first_step >= end) {
        if (save_models(m, &ema, files.raw, files.model)) {
            fprintf(stderr, "daclip: train-ir: %s\n", t_errmsg());
            rc = -1;
        } else if (!o->quiet) {
            fprintf(stderr, "the checkpoint is already at step %lld of %lld: wrote the models without training\n",
                    (long long)first_step, (long long)end);
        }
    }
done:
    loader_destroy(loader);
    batch_shard_free(&shard);
    if (log) {
        if (train_log_close(log, files.log, err, sizeof err)) {
            fprintf(stderr, "daclip: train-ir: %s\n", err);
            rc = -1;
        }
        if (plot_log(files.log, files.png) == 0 && !o->quiet) fprintf(stderr, "loss and PSNR curves: %s\n", files.png);
    }
    ema_free(&ema);
    optim_free(opt);
    return rc;
}
