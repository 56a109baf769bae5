#include "train/clip_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
#include "train/clip_train_stream.h"
#include "train/train_log.h"

#define LOG_HEADER "step,lr,loss,logit_scale,val_loss,val_top1,images_per_s"
/* Validation streams its images like training; it runs between steps, while training's workers wait. */
#define CLIP_EVAL_THREADS 2
#define CLIP_EVAL_DEPTH 2
/* The decoding workers run below the training threads: an OpenMP team whose thread is preempted stalls at
 * its next barrier, so on a busy machine they should take spare time rather than a core from the team. */
#define CLIP_LOADER_NICE 10

/* ------------------------------------------------------------------ samples */

void clip_samples_free(ClipSamples *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) {
        if (s->titles) free(s->titles[i]);
        if (s->paths) free(s->paths[i]);
    }
    free(s->titles);
    free(s->paths);
    free(s->csv);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

/* A missing file is found now, not when its batch comes hours into a run; a corrupt one only when decoded. */
static int check_image_file(const char *csv, int line, const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb)) {
        snprintf(err, errlen, "%s: line %d: %s: %s", csv, line, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: line %d: %s: not a regular file", csv, line, path);
        return -1;
    }
    return 0;
}

int clip_samples_from_csv(const char *csv, const char *root, Tokenizer *tok, int size, int ctx, ClipSamples *out,
                          char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
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
    out->n = n;
    out->size = size;
    out->ctx = ctx;
    out->csv = strdup(csv);
    out->paths = calloc((size_t)n, sizeof(char *));
    out->ids = calloc((size_t)n * (size_t)ctx, sizeof(int32_t));
    out->titles = calloc((size_t)n, sizeof(char *));
    int rc = out->csv && out->paths && out->ids && out->titles ? 0 : -1;
    if (rc) snprintf(err, errlen, "out of memory for %d samples", n);
    for (int i = 0; !rc && i < n; i++) {
        const char *fp = rows[i].filepath;
        bool rel = root && fp[0] != '/';
        size_t plen = strlen(fp) + (rel ? strlen(root) + 1 : 0) + 1;
        size_t tlen = strlen(rows[i].caption) + strlen(rows[i].degradation) + 3;
        out->paths[i] = malloc(plen);
        out->titles[i] = malloc(tlen);
        if (!out->paths[i] || !out->titles[i]) {
            snprintf(err, errlen, "out of memory for %d samples", n);
            rc = -1;
            break;
        }
        snprintf(out->paths[i], plen, "%s%s%s", rel ? root : "", rel ? "/" : "", fp);
        rc = check_image_file(csv, i + 2, out->paths[i], err, errlen);
        snprintf(out->titles[i], tlen, "%s: %s", rows[i].caption, rows[i].degradation);
        tokenizer_tokenize_n(tok, out->titles[i], out->ids + (size_t)i * ctx, ctx);
    }
    caption_rows_free(rows, n);
    if (rc) clip_samples_free(out);
    return rc;
}

/* ------------------------------------------------------------------ training */

void clip_train_default_options(ClipTrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->steps = 1000;
    o->batch = 64;
    o->lr = 5e-4;
    o->weight_decay = 0.05;
    o->warmup = 100;
    o->seed = 0;
    o->loader_threads = 2;
    o->prefetch = 3;
}

/* Token ids of samples idx[0..B) (arena). */
static int32_t *batch_ids(const ClipSamples *s, const int64_t *idx, int B) {
    int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)B * (size_t)s->ctx);
    for (int b = 0; b < B; b++) memcpy(ids + (size_t)b * s->ctx, s->ids + (size_t)idx[b] * s->ctx, sizeof(int32_t) * (size_t)s->ctx);
    return ids;
}

/* A streamed batch's images as a tensor: a copy in the arena, since the slot goes back to the workers at the
 * next clip_stream_next. */
static Tensor *batch_images(const ClipSamples *s, const ClipBatch *b) {
    return t_from(T_SHAPE(b->n, 3, s->size, s->size), b->images);                       /* [n, 3, S, S] */
}

int clip_evaluate(Clip *m, const ClipSamples *val, int batch, double *loss, double *top1) {
    int64_t n = val->n, E = m->cfg.vision.embed_dim, lo, hi;
    /* data-parallel: each rank encodes its slice of the rows, then every rank has every embedding */
    dist_shard(n, &lo, &hi);
    int64_t *rows_of = malloc(sizeof(int64_t) * (size_t)dist_size());
    float *ri = malloc(sizeof(float) * (size_t)(n * E)), *rt = malloc(sizeof(float) * (size_t)(n * E));
    float *fi = malloc(sizeof(float) * (size_t)(n * E)), *ft = malloc(sizeof(float) * (size_t)(n * E));
    int rc = rows_of && ri && rt && fi && ft ? 0 : -1;
    ClipStream *stream = NULL;
    if (!rc && hi > lo) {   /* this rank's rows, decoded in the background batch by batch */
        ClipStreamConfig sc = {batch, lo, hi, false, 0, 0, CLIP_EVAL_THREADS, CLIP_EVAL_DEPTH, CLIP_LOADER_NICE};
        if (!(stream = clip_stream_open(val, &sc))) {
            fprintf(stderr, "daclip: validation: %s\n", data_error());
            rc = -1;
        }
    }
    bool prev = t_set_grad_enabled(false);
    for (int64_t start = lo; start < hi && !rc; start += batch) {   /* raw embeddings of this rank's rows */
        const ClipBatch *b = clip_stream_next(stream);
        if (!b) {
            fprintf(stderr, "daclip: validation: %s\n", data_error());
            rc = -1;
            break;
        }
        int B = b->n;
        size_t mark = t_arena_mark();
        Tensor *ei = clip_encode_image(m, batch_images(val, b), NULL, NULL);   /* [B, E] */
        Tensor *et = clip_encode_text(m, batch_ids(val, b->rows, B), B);       /* [B, E] */
        if (ei && et) {
            memcpy(fi + start * E, ei->data, sizeof(float) * (size_t)(B * E));
            memcpy(ft + start * E, et->data, sizeof(float) * (size_t)(B * E));
        } else {
            rc = -1;
        }
        t_arena_release(mark);
    }
    clip_stream_close(stream);
    double failed = rc ? 1 : 0;   /* every rank must reach the gathers, or leave together */
    dist_sum_f64(&failed, 1, "validation");
    if (failed > 0) {
        t_set_grad_enabled(prev);
        free(rows_of), free(ri), free(rt), free(fi), free(ft);
        return -1;
    }
    dist_shard_sizes(n, rows_of);
    dist_gather_rows_f32(fi + lo * E, rows_of, E, ri, "validation image embeddings");
    dist_gather_rows_f32(ft + lo * E, rows_of, E, rt, "validation text embeddings");
    /* the loss over batches of `batch` rows, as training sees them; then the normalised embeddings */
    double loss_sum = 0;
    int n_batches = 0;
    for (int64_t start = 0; start < n; start += batch) {
        int B = (int)(n - start < batch ? n - start : batch);
        size_t mark = t_arena_mark();
        Tensor *ei = t_from(T_SHAPE(B, E), ri + start * E), *et = t_from(T_SHAPE(B, E), rt + start * E);
        if (B > 1) {
            loss_sum += nn_clip_loss(ei, et, m->logit_scale, NULL)->data[0];
            n_batches++;
        }
        Tensor *ni = nn_l2_normalize(ei), *nt = nn_l2_normalize(et);
        memcpy(fi + start * E, ni->data, sizeof(float) * (size_t)(B * E));
        memcpy(ft + start * E, nt->data, sizeof(float) * (size_t)(B * E));
        t_arena_release(mark);
    }
    t_set_grad_enabled(prev);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        double bv = -1e30;
        for (int64_t j = 0; j < n; j++) {
            double d = 0;
            for (int64_t k = 0; k < E; k++) d += (double)fi[i * E + k] * ft[j * E + k];
            if (d > bv) bv = d, best = j;
        }
        hits += !memcmp(val->ids + best * val->ctx, val->ids + i * val->ctx, sizeof(int32_t) * (size_t)val->ctx);
    }
    *loss = n_batches ? loss_sum / n_batches : NAN;
    *top1 = n ? (double)hits / (double)n : 0;
    free(rows_of), free(ri), free(rt), free(fi), free(ft);
    return 0;
}

int clip_train(Clip *m, ParamSet *ps, const ClipSamples *train, const ClipSamples *val, const ClipTrainOptions *o_in,
               ClipTrainResult *res) {
    memset(res, 0, sizeof *res);
    res->val_loss = res->val_top1 = NAN;
    /* data-parallel (docs/distributed.md): every rank encodes its rows [lo, hi) of every global batch; rank 0
     * alone writes files and reports */
    ClipTrainOptions oo = *o_in;
    const ClipTrainOptions *o = &oo;
    bool files_wanted = o_in->out_dir != NULL;
    if (!dist_is_root()) oo.out_dir = NULL, oo.quiet = true;
    int B = o->batch;
    if (B < 2 || train->n < 2) {
        fprintf(stderr, "daclip: train-clip: need a batch of at least 2 and at least 2 samples\n");
        return -1;
    }
    if (B > train->n) B = (int)train->n;
    int64_t lo, hi;
    dist_shard(B, &lo, &hi);
    if (B < dist_size()) {
        fprintf(stderr, "daclip: train-clip: a batch of %d is smaller than the %d ranks: every rank needs a sample\n", B,
                dist_size());
        return -1;
    }
    OptConfig oc = optim_adamw_config(o->lr, o->weight_decay);
    oc.beta2 = 0.98;
    oc.eps = 1e-6;
    Optim *opt = optim_new(ps, &oc);
    if (!opt) {
        fprintf(stderr, "daclip: train-clip: %s\n", t_errmsg());
        return -1;
    }
    TRng rng;
    rng_seed(&rng, o->seed);
    char config[96];   /* what decides the batches: a resume must repeat it */
    snprintf(config, sizeof config, "batch=%d seed=%llu", o->batch, (unsigned long long)o->seed);
    TrainState st = {ps, opt, &rng, NULL, 0, o->lr, config};
    char ckpt[4200] = "", model_path[4200] = "", log_path[4200] = "";
    FILE *log = NULL;
    if (o->out_dir) {
        if (path_mkdir_p(o->out_dir)) {
            fprintf(stderr, "daclip: train-clip: cannot create %s: %s\n", o->out_dir, strerror(errno));
            optim_free(opt);
            return -1;
        }
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o->out_dir);
        snprintf(model_path, sizeof model_path, "%s/model.safetensors", o->out_dir);
        snprintf(log_path, sizeof log_path, "%s/log.csv", o->out_dir);
    }
    if (o->resume) {
        if (ckpt_load(o->resume, &st)) {
            fprintf(stderr, "daclip: train-clip: cannot resume: %s\n", t_errmsg());
            optim_free(opt);
            return -1;
        }
        if (!o->quiet) fprintf(stderr, "resumed from %s at step %lld\n", o->resume, (long long)st.step);
    }
    if (dist_check_in_sync(ps, st.step, "train-clip")) {
        optim_free(opt);
        return -1;
    }
    int64_t end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    /* this rank's rows of every batch, decoded ahead by the workers; batch g is step g's */
    ClipStream *stream = NULL;
    ClipStreamConfig sc = {B, lo, hi, true, o->seed, st.step, o->loader_threads, o->prefetch, CLIP_LOADER_NICE};
    if (st.step < end && !(stream = clip_stream_open(train, &sc))) {
        fprintf(stderr, "daclip: train-clip: %s\n", data_error());
        optim_free(opt);
        return -1;
    }
    char err[1024] = "";
    if (o->out_dir && !(log = train_log_open(log_path, LOG_HEADER, o->resume != NULL, st.step, err, sizeof err))) {
        /* a resumed run keeps the log rows up to the checkpoint's step and drops the ones after it */
        fprintf(stderr, "daclip: train-clip: %s\n", err);
        clip_stream_close(stream);
        optim_free(opt);
        return -1;
    }
    double recent[20] = {0};
    int n_recent = 0, rc = 0;
    Progress bar;
    progress_begin_at(&bar, "train-clip", o->steps, "step", st.step);   /* a resumed run's rate counts from here */
    double t0 = progress_now();
    int64_t first_step = st.step;
    const float max_scale = logf(100.0f);
    while (st.step < end) {
        const ClipBatch *batch = clip_stream_next(stream);
        if (!batch) {
            fprintf(stderr, "%sdaclip: train-clip: %s (step %lld)\n", !o->quiet && bar.is_tty ? "\n" : "",
                    data_error(), (long long)st.step + 1);
            rc = -1;
            break;
        }
        t_arena_reset();
        params_zero_grad_lazy(ps);
        /* this rank's rows, then the whole batch's embeddings: the contrastive loss needs every pair */
        int Bl = batch->n;
        Tensor *ei = clip_encode_image(m, batch_images(train, batch), NULL, NULL);          /* [Bl, E] */
        Tensor *et = clip_encode_text(m, batch_ids(train, batch->rows, Bl), Bl);            /* [Bl, E] */
        ei = dist_gather_rows(ei, B, "image embeddings");                                   /* [B, E] */
        et = dist_gather_rows(et, B, "text embeddings");                                    /* [B, E] */
        Tensor *loss = nn_clip_loss(ei, et, m->logit_scale, NULL);                          /* [] */
        if (!loss) {
            rc = -1;
            break;
        }
        double lv = loss->data[0];
        if (!isfinite(lv)) {
            fprintf(stderr, "\ndaclip: train-clip: loss is %g at step %lld; stopping\n", lv, (long long)st.step);
            rc = -1;
            break;
        }
        if (t_backward(loss)) {   /* out of memory: the gradients are incomplete, so no update */
            fprintf(stderr, "\ndaclip: train-clip: step %lld: %s; stopping\n", (long long)st.step, t_errmsg());
            rc = -1;
            break;
        }
        dist_sum_grads(ps, &m->logit_scale, 1);   /* every rank computed the temperature's gradient in full */
        st.lr = lr_warmup_cosine(o->lr, o->warmup, o->steps, st.step);
        opt->cfg.lr = st.lr;
        optim_step(opt);
        /* open_clip clamps the temperature after every step */
        float *ls = m->logit_scale->data;
        ls[0] = ls[0] < 0 ? 0 : (ls[0] > max_scale ? max_scale : ls[0]);
        if (st.step == first_step) res->first_loss = lv;
        recent[n_recent++ % 20] = lv;
        st.step++;
        double el = progress_now() - t0;
        res->images_per_s = el > 0 ? (double)(st.step - first_step) * B / el : 0;
        bool do_val = val && ((o->val_every > 0 && st.step % o->val_every == 0) || st.step == o->steps);
        double vl = NAN, vt = NAN;
        if (do_val) {
            t_arena_reset();
            if (clip_evaluate(m, val, B, &vl, &vt)) {
                rc = -1;   /* an unreadable validation image: named on stderr */
                break;
            }
            res->val_loss = vl, res->val_top1 = vt;
            if (!o->quiet)
                fprintf(stderr, "%sstep %lld: val loss %.4f, image->text top-1 %.1f%%\n", bar.is_tty ? "\n" : "",
                        (long long)st.step, vl, 100 * vt);
        }
        if (log)
            fprintf(log, "%lld,%.6g,%.6f,%.4f,%.6f,%.4f,%.2f\n", (long long)st.step, st.lr, lv, exp(ls[0]), vl, vt,
                    res->images_per_s);
        bool ckpt_now = files_wanted && ((o->ckpt_every > 0 && st.step % o->ckpt_every == 0) || st.step == end);
        if (ckpt_now && dist_check_in_sync(ps, st.step, "train-clip")) {
            rc = -1;
            break;
        }
        if (ckpt_now && o->out_dir) {
            if (log) fflush(log);
            if (ckpt_save(ckpt, &st) || params_save_file(ps, model_path, o->model_meta)) {
                fprintf(stderr, "\ndaclip: train-clip: %s\n", t_errmsg());
                rc = -1;
                break;
            }
        }
        if (!o->quiet) progress_update(&bar, st.step, "loss %.4f  scale %.1f", lv, exp(ls[0]));
    }
    if (!o->quiet) progress_end(&bar);
    if (!o->quiet) dist_report("train-clip", st.step - first_step, progress_now() - t0);
    /* resumed at or past the end: nothing to train, but the model file is still what the user asked for */
    if (!rc && o->out_dir && first_step >= end) {
        if (params_save_file(ps, model_path, o->model_meta)) {
            fprintf(stderr, "daclip: train-clip: %s\n", t_errmsg());
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
            fprintf(stderr, "daclip: train-clip: %s\n", err);
            rc = -1;
        }
        char png[4300];
        snprintf(png, sizeof png, "%s/loss.png", o->out_dir);
        if (plot_training_log(log_path, png) == 0 && !o->quiet) fprintf(stderr, "loss curves: %s\n", png);
    }
    if (stream) {
        ClipStreamStats ss = clip_stream_stats(stream);
        res->loader_peak_batches = ss.peak_batches, res->loader_peak_decoded = ss.peak_decoded;
    }
    clip_stream_close(stream);
    optim_free(opt);
    return rc;
}
