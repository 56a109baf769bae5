#include "train/daclip_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/clip_augment.h"
#include "data/clip_preprocess.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "nn/checkpoint.h"
#include "nn/contrastive.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tensor/ops.h"
#include "train/dist.h"
#include "train/dist_train.h"
#include "train/paths.h"
#include "train/plot.h"
#include "train/progress.h"
#include "train/sample_order.h"
#include "train/train_log.h"

/* ------------------------------------------------------------------ samples */

void daclip_samples_free(DaclipSamples *s) {
    if (!s) return;
    if (s->paths)
        for (int64_t i = 0; i < s->n; i++) free(s->paths[i]);
    free(s->paths);
    free(s->type);
    free(s->text);
    memset(s, 0, sizeof *s);
}

int daclip_samples_from_csv(DaclipModel *m, const char *csv, const char *root, DaclipSamples *s, char *err,
                            size_t errlen) {
    memset(s, 0, sizeof *s);
    CaptionRow *rows = NULL;
    int n = 0;
    if (caption_csv_read(csv, &rows, &n)) {
        snprintf(err, errlen, "%s", data_error());
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "%s: no rows", csv);
        caption_rows_free(rows, n);
        return -1;
    }
    int ctx = m->clip.cfg.context_length;
    s->n = n;
    s->E = m->clip.cfg.vision.embed_dim;
    s->paths = calloc((size_t)n, sizeof *s->paths);
    s->type = calloc((size_t)n, sizeof *s->type);
    s->text = malloc(sizeof(float) * (size_t)n * (size_t)s->E);
    int32_t *ids = calloc((size_t)n * (size_t)ctx, sizeof *ids);
    int rc = (s->paths && s->type && s->text && ids) ? 0 : -1;
    if (rc) snprintf(err, errlen, "out of memory for %d rows of %s", n, csv);
    for (int i = 0; !rc && i < n; i++) {
        s->type[i] = degrade_type_from_name(rows[i].degradation);
        if (s->type[i] < 0) {
            snprintf(err, errlen, "%s: line %d: unknown degradation \"%s\" (the ten names: motion-blurry, hazy, "
                     "jpeg-compressed, low-light, noisy, raindrop, rainy, shadowed, snowy, uncompleted)",
                     csv, i + 2, rows[i].degradation);
            rc = -1;
            break;
        }
        const char *fp = rows[i].filepath;
        size_t len = strlen(fp) + (root ? strlen(root) : 0) + 2;
        s->paths[i] = malloc(len);
        if (!s->paths[i]) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        if (root && fp[0] != '/') snprintf(s->paths[i], len, "%s/%s", root, fp);
        else snprintf(s->paths[i], len, "%s", fp);
        tokenizer_tokenize_n(m->tok, rows[i].caption, ids + (size_t)i * ctx, ctx);
    }
    caption_rows_free(rows, n);
    /* the caption embeddings: the text tower is frozen, so once for the whole run */
    bool prev = t_set_grad_enabled(false);
    Progress bar;
    bool show = n >= 2048;
    if (show) progress_begin(&bar, "encoding captions", n, "text");
    for (int64_t start = 0; !rc && start < n; start += 64) {
        int64_t B = n - start < 64 ? n - start : 64;
        size_t mark = t_arena_mark();
        Tensor *e = clip_encode_text(&m->clip, ids + start * ctx, B);              /* [B, E] */
        if (!e) {
            snprintf(err, errlen, "%s: encoding captions: %s", csv, t_errmsg());
            rc = -1;
        } else {
            memcpy(s->text + start * s->E, e->data, sizeof(float) * (size_t)(B * s->E));
        }
        t_arena_release(mark);
        if (show) progress_update(&bar, start + B, NULL);
    }
    if (show) progress_end(&bar);
    t_set_grad_enabled(prev);
    free(ids);
    if (rc) daclip_samples_free(s);
    return rc;
}

/* ------------------------------------------------------------------ batches */

/* CLIP views of samples idx[0..B) into out [B, 3, S, S]: the random training crop (seeded by the sample's
 * position in the run, so resumed runs see the same views; idx[0] is row `first` of its batch, so a rank's
 * shard gets the crops the whole batch would) or the centre view. Decoding runs in parallel. */
static int load_views(const DaclipSamples *s, const int64_t *idx, int B, int64_t first, int S, double scale_min,
                      bool mirror, uint64_t seed, float *out, char *err, size_t errlen) {
    int failed = 0;
    size_t per = (size_t)3 * S * S;
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        Image im = {0};
        int rc = image_load(s->paths[idx[b]], &im);
        uint64_t view_seed = sample_mix64(seed + (uint64_t)(first + b));
        if (!rc) rc = scale_min > 0 ? clip_preprocess_train(&im, S, scale_min, view_seed, out + per * b)
                                    : clip_preprocess(&im, S, out + per * b);
        if (!rc && mirror && clip_view_mirror_coin(view_seed)) clip_view_mirror(out + per * b, S);
        if (rc) {
#pragma omp critical
            if (!failed) {
                failed = 1;
                snprintf(err, errlen, "%s", data_error());
            }
        }
        image_free(&im);
    }
    return failed ? -1 : 0;
}

static Tensor *rows_of(const float *src, int64_t E, const int64_t *idx, int B) {
    Tensor *t = t_new(T_SHAPE(B, E));                                             /* [B, E] */
    for (int b = 0; b < B; b++) memcpy(t->data + b * E, src + idx[b] * E, sizeof(float) * (size_t)E);
    return t;
}

static Tensor *name_rows(const DaclipModel *m, const DaclipSamples *s, const int64_t *idx, int B) {
    int64_t E = s->E;
    Tensor *t = t_new(T_SHAPE(B, E));                                             /* [B, E] */
    for (int b = 0; b < B; b++) memcpy(t->data + b * E, m->names + s->type[idx[b]] * E, sizeof(float) * (size_t)E);
    return t;
}

/* ------------------------------------------------------------------ evaluation */

/* The degradation class of each row of degra [B, E]: argmax of cos(degradation embedding, name embedding). */
static void classify_rows(const DaclipModel *m, Tensor *degra, int64_t E, float *pred) {
    Tensor *dn = nn_l2_normalize(degra);                                                           /* [B, E] */
    Tensor *tn = nn_l2_normalize(t_from(T_SHAPE(DEGRADE_N, E), m->names));                         /* [10, E] */
    Tensor *sim = t_matmul(dn, t_transpose(tn, 0, 1));                                             /* [B, 10] */
    for (int64_t b = 0; b < degra->shape[0]; b++) {
        int best = 0;
        for (int k = 1; k < DEGRADE_N; k++)
            if (sim->data[b * DEGRADE_N + k] > sim->data[b * DEGRADE_N + best]) best = k;
        pred[b] = (float)best;
    }
}

int daclip_evaluate(DaclipModel *m, const DaclipSamples *val, int batch, DaclipEval *ev, bool progress) {
    memset(ev, 0, sizeof *ev);
    if (daclip_name_embeddings(m)) return -1;
    int S = m->clip.cfg.vision.image_size;
    int64_t n = val->n, E = val->E, lo, hi;
    /* data-parallel: each rank encodes its slice of the rows; then every rank has every embedding */
    dist_shard(n, &lo, &hi);
    size_t per = (size_t)3 * S * S;
    float *views = malloc(sizeof(float) * per * (size_t)batch);
    float *emb = malloc(sizeof(float) * (size_t)(4 * n * E + 2 * n));   /* content, degra: mine, then everyone's */
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)batch), *shard_rows = malloc(sizeof(int64_t) * (size_t)dist_size());
    if (!views || !emb || !idx || !shard_rows) {
        free(views), free(emb), free(idx), free(shard_rows);
        t_error("eval", "out of memory");
        return -1;
    }
    float *mc = emb, *md = mc + n * E, *ac = md + n * E, *ad = ac + n * E, *mp = ad + n * E, *ap = mp + n;
    bool prev = t_set_grad_enabled(false);
    int rc = 0;
    int64_t hits = 0;
    Progress bar;
    bool show = progress && dist_is_root();
    if (show) progress_begin(&bar, "evaluating", hi - lo, "img");
    for (int64_t start = lo; start < hi && !rc; start += batch) {
        int B = (int)(hi - start < batch ? hi - start : batch);
        size_t mark = t_arena_mark();
        for (int b = 0; b < B; b++) idx[b] = start + b;
        char err[1024];
        if (load_views(val, idx, B, 0, S, 0, false, 0, views, err, sizeof err)) {
            t_error("eval", "%s", err);
            rc = -1;
            break;
        }
        Tensor *content, *degra;
        rc = daclip_encode_image(&m->ctl, &m->clip.visual, t_from(T_SHAPE(B, 3, S, S), views), &content, &degra);
        if (rc) break;
        memcpy(mc + start * E, content->data, sizeof(float) * (size_t)(B * E));
        memcpy(md + start * E, degra->data, sizeof(float) * (size_t)(B * E));
        classify_rows(m, degra, E, mp + start);
        for (int b = 0; b < B; b++) hits += (int)mp[start + b] == val->type[start + b];
        t_arena_release(mark);
        if (show) progress_update(&bar, start + B - lo, "accuracy %.1f%%", 100.0 * hits / (double)(start + B - lo));
    }
    if (show) progress_end(&bar);
    double failed = rc ? 1 : 0;   /* every rank must reach the gathers, or leave together */
    dist_sum_f64(&failed, 1, "evaluation");
    if (failed > 0 && !rc) {
        t_error("eval", "evaluation failed on another rank (its message is above)");
        rc = -1;
    }
    double lc = 0, ld = 0;
    int nb = 0;
    if (!rc) {
        dist_shard_sizes(n, shard_rows);
        dist_gather_rows_f32(mc + lo * E, shard_rows, E, ac, "content embeddings");
        dist_gather_rows_f32(md + lo * E, shard_rows, E, ad, "degradation embeddings");
        dist_gather_rows_f32(mp + lo, shard_rows, 1, ap, "degradation classes");
        hits = 0;
        for (int64_t i = 0; i < n; i++) {
            int truth = val->type[i], best = (int)ap[i];
            ev->confusion[truth][best]++;
            hits += best == truth;
        }
        /* the losses over batches of `batch` rows, as training sees them */
        for (int64_t start = 0; start < n; start += batch) {
            int B = (int)(n - start < batch ? n - start : batch);
            if (B < 2) continue;
            size_t mark = t_arena_mark();
            for (int b = 0; b < B; b++) idx[b] = start + b;
            lc += nn_clip_loss(t_from(T_SHAPE(B, E), ac + start * E), rows_of(val->text, E, idx, B), m->ctl.logit_scale,
                               NULL)->data[0];
            ld += nn_clip_loss(t_from(T_SHAPE(B, E), ad + start * E), name_rows(m, val, idx, B), m->ctl.logit_scale,
                               NULL)->data[0];
            nb++;
            t_arena_release(mark);
        }
    }
    t_set_grad_enabled(prev);
    ev->n = n;
    ev->loss_clip = nb ? lc / nb : NAN;
    ev->loss_degra = nb ? ld / nb : NAN;
    ev->acc = n ? (double)hits / (double)n : 0;
    free(views), free(emb), free(idx), free(shard_rows);
    return rc;
}

/* ------------------------------------------------------------------ training */

void daclip_train_default_options(DaclipTrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->steps = 1000;
    o->batch = 64;
    o->lr = 2e-5 * 10;   /* the official 2e-5 is for batch 784 from a LAION CLIP; small models here need more */
    o->weight_decay = 0.05;
    o->warmup = 100;
    o->scale_min = 0.9;
}

int daclip_decay_group(const char *name, const Tensor *t, void *ctx) {
    (void)ctx;
    bool no_decay = t->ndim < 2 || strstr(name, "bn") || strstr(name, "ln") || strstr(name, "bias") ||
                    strstr(name, "logit_scale");
    return no_decay ? 1 : 0;
}

#define LOG_HEADER "step,lr,loss,loss_clip,loss_degra,logit_scale,val_loss,val_loss_clip,val_loss_degra,val_top1,images_per_s"

int daclip_train(DaclipModel *m, const DaclipSamples *train, const DaclipSamples *val, const DaclipTrainOptions *o_in,
                 DaclipTrainResult *res) {
    memset(res, 0, sizeof *res);
    res->val_loss_clip = res->val_loss_degra = res->val_acc = NAN;
    /* data-parallel (docs/distributed.md): every rank encodes its rows [lo, hi) of every global batch; rank 0
     * alone writes files and reports */
    DaclipTrainOptions oo = *o_in;
    const DaclipTrainOptions *o = &oo;
    bool files_wanted = o_in->out_dir != NULL;
    if (!dist_is_root()) oo.out_dir = NULL, oo.quiet = true;
    int B = o->batch;
    if (B < 2 || train->n < 2) {
        fprintf(stderr, "daclip: train-daclip: need a batch of at least 2 and at least 2 samples\n");
        return -1;
    }
    if (B > train->n) B = (int)train->n;
    int64_t lo, hi;
    dist_shard(B, &lo, &hi);
    if (B < dist_size()) {
        fprintf(stderr, "daclip: train-daclip: a batch of %d is smaller than the %d ranks: every rank needs a sample\n",
                B, dist_size());
        return -1;
    }
    if (daclip_name_embeddings(m)) return -1;
    OptConfig oc = optim_adamw_config(o->lr, o->weight_decay);
    oc.beta2 = 0.98;
    oc.eps = 1e-6;
    oc.group_of = daclip_decay_group;
    Optim *opt = optim_new(&m->ps, &oc);   /* the frozen CLIP gets no state */
    if (!opt) {
        fprintf(stderr, "daclip: train-daclip: %s\n", t_errmsg());
        return -1;
    }
    TRng rng;
    rng_seed(&rng, o->seed);
    char config[160];   /* what decides the batches and views: a resume must repeat it */
    snprintf(config, sizeof config, "batch=%d crop_scale=%.9g mirror=%d seed=%llu", o->batch, o->scale_min,
             o->mirror ? 1 : 0, (unsigned long long)o->seed);
    TrainState st = {&m->ps, opt, &rng, NULL, 0, o->lr, config};
    char ckpt[4200] = "", model_path[4200] = "", log_path[4200] = "", err[1024] = "";
    FILE *log = NULL;
    int rc = 0;
    if (o->out_dir && path_mkdir_p(o->out_dir)) {
        fprintf(stderr, "daclip: train-daclip: cannot create %s: %s\n", o->out_dir, strerror(errno));
        optim_free(opt);
        return -1;
    }
    if (o->out_dir) {
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o->out_dir);
        snprintf(model_path, sizeof model_path, "%s/model.safetensors", o->out_dir);
        snprintf(log_path, sizeof log_path, "%s/log.csv", o->out_dir);
    }
    if (o->resume) {
        if (ckpt_load(o->resume, &st)) {
            fprintf(stderr, "daclip: train-daclip: cannot resume: %s\n", t_errmsg());
            optim_free(opt);
            return -1;
        }
        if (!o->quiet) fprintf(stderr, "resumed from %s at step %lld\n", o->resume, (long long)st.step);
    }
    if (dist_check_in_sync(&m->ps, st.step, "train-daclip")) {
        optim_free(opt);
        return -1;
    }
    if (o->out_dir && !(log = train_log_open(log_path, LOG_HEADER, o->resume != NULL, st.step, err, sizeof err))) {
        fprintf(stderr, "daclip: train-daclip: %s\n", err);
        optim_free(opt);
        return -1;
    }
    int S = m->clip.cfg.vision.image_size;
    size_t per = (size_t)3 * S * S;
    SampleOrder order;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)B);
    float *views = malloc(sizeof(float) * per * (size_t)B);
    if (sample_order_init(&order, train->n, o->seed) || !idx || !views) {
        fprintf(stderr, "daclip: train-daclip: out of memory\n");
        rc = -1;
    }
    double recent[20] = {0};
    int n_recent = 0;
    int64_t end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    Progress bar;
    progress_begin_at(&bar, "train-daclip", o->steps, "step", st.step);   /* a resumed run's rate counts from here */
    double t0 = progress_now();
    int64_t first_step = st.step;
    const float max_scale = logf(100.0f);
    float *ls = m->ctl.logit_scale->data;
    while (!rc && st.step < end) {
        t_arena_reset();
        params_zero_grad_lazy(&m->ps);
        for (int b = 0; b < B; b++) idx[b] = sample_order_at(&order, st.step * B + b);
        int Bl = (int)(hi - lo);   /* this rank's rows */
        if (load_views(train, idx + lo, Bl, lo, S, o->scale_min, o->mirror,
                       sample_mix64(o->seed ^ (uint64_t)st.step * 0x2545F4914F6CDD1Dull), views, err, sizeof err)) {
            fprintf(stderr, "\ndaclip: train-daclip: %s\n", err);
            rc = -1;
            break;
        }
        Tensor *content, *degra;
        if (daclip_encode_image(&m->ctl, &m->clip.visual, t_from(T_SHAPE(Bl, 3, S, S), views), &content, &degra)) {
            rc = -1;
            break;
        }
        /* the contrastive losses need the whole batch's embeddings */
        content = dist_gather_rows(content, B, "content embeddings");                     /* [B, E] */
        degra = dist_gather_rows(degra, B, "degradation embeddings");                     /* [B, E] */
        Tensor *l_clip = nn_clip_loss(content, rows_of(train->text, train->E, idx, B), m->ctl.logit_scale, NULL);
        Tensor *l_degra = nn_clip_loss(degra, name_rows(m, train, idx, B), m->ctl.logit_scale, NULL);
        Tensor *loss = t_add(l_clip, l_degra);                                             /* [] */
        if (!loss) {
            rc = -1;
            break;
        }
        double lv = loss->data[0], lc = l_clip->data[0], ld = l_degra->data[0];
        if (!isfinite(lv)) {
            fprintf(stderr, "\ndaclip: train-daclip: loss is %g at step %lld; stopping\n", lv, (long long)st.step);
            rc = -1;
            break;
        }
        if (t_backward(loss)) {   /* out of memory: the gradients are incomplete, so no update */
            fprintf(stderr, "\ndaclip: train-daclip: step %lld: %s; stopping\n", (long long)st.step, t_errmsg());
            rc = -1;
            break;
        }
        dist_sum_grads(&m->ps, &m->ctl.logit_scale, 1);   /* every rank computed the temperature's gradient in full */
        st.lr = lr_warmup_cosine(o->lr, o->warmup, o->steps, st.step);
        opt->cfg.lr = st.lr;
        optim_step(opt);
        ls[0] = ls[0] < 0 ? 0 : (ls[0] > max_scale ? max_scale : ls[0]);   /* open_clip's clamp */
        if (st.step == first_step) res->first_loss = lv;
        recent[n_recent++ % 20] = lv;
        st.step++;
        double el = progress_now() - t0;
        res->images_per_s = el > 0 ? (double)(st.step - first_step) * B / el : 0;
        bool do_val = val && ((o->val_every > 0 && st.step % o->val_every == 0) || st.step == end);
        DaclipEval ev = {.loss_clip = NAN, .loss_degra = NAN, .acc = NAN};
        if (do_val) {
            t_arena_reset();
            if (daclip_evaluate(m, val, B, &ev, false) == 0) {
                res->val_loss_clip = ev.loss_clip, res->val_loss_degra = ev.loss_degra, res->val_acc = ev.acc;
                if (!o->quiet)
                    fprintf(stderr, "%sstep %lld: val loss %.4f (content %.4f, degradation %.4f), degradation accuracy %.1f%%\n",
                            bar.is_tty ? "\n" : "", (long long)st.step, ev.loss_clip + ev.loss_degra, ev.loss_clip,
                            ev.loss_degra, 100 * ev.acc);
            }
        }
        if (log)
            fprintf(log, "%lld,%.6g,%.6f,%.6f,%.6f,%.4f,%.6f,%.6f,%.6f,%.4f,%.2f\n", (long long)st.step, st.lr, lv, lc, ld,
                    exp(ls[0]), ev.loss_clip + ev.loss_degra, ev.loss_clip, ev.loss_degra, ev.acc, res->images_per_s);
        bool ckpt_now = files_wanted && ((o->ckpt_every > 0 && st.step % o->ckpt_every == 0) || st.step == end);
        if (ckpt_now && dist_check_in_sync(&m->ps, st.step, "train-daclip")) {
            rc = -1;
            break;
        }
        if (ckpt_now && o->out_dir) {
            if (log) fflush(log);
            if (ckpt_save(ckpt, &st) || daclip_model_save(m, model_path)) {
                fprintf(stderr, "\ndaclip: train-daclip: %s\n", t_errmsg());
                rc = -1;
                break;
            }
        }
        if (!o->quiet) progress_update(&bar, st.step, "loss %.4f (content %.3f, degra %.3f) scale %.1f", lv, lc, ld, exp(ls[0]));
    }
    if (!o->quiet) progress_end(&bar);
    if (!o->quiet) dist_report("train-daclip", st.step - first_step, progress_now() - t0);
    res->steps_done = st.step;
    /* resumed at or past the end: nothing to train, but the model file is still what the user asked for */
    if (!rc && o->out_dir && first_step >= end) {
        if (daclip_model_save(m, model_path)) {
            fprintf(stderr, "daclip: train-daclip: %s\n", t_errmsg());
            rc = -1;
        } else if (!o->quiet) {
            fprintf(stderr, "the checkpoint is already at step %lld of %lld: wrote the model without training\n",
                    (long long)first_step, (long long)o->steps);
        }
    }
    int k = n_recent < 20 ? n_recent : 20;
    for (int i = 0; i < k; i++) res->train_loss += recent[i] / k;
    if (log) {
        if (train_log_close(log, log_path, err, sizeof err)) {
            fprintf(stderr, "daclip: train-daclip: %s\n", err);
            rc = -1;
        }
        char png[4300];
        snprintf(png, sizeof png, "%s/loss.png", o->out_dir);
        if (plot_training_log(log_path, png) == 0 && !o->quiet) fprintf(stderr, "loss curves: %s\n", png);
    }
    sample_order_free(&order);
    free(idx);
    free(views);
    optim_free(opt);
    return rc;
}
