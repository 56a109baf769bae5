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
#include "train/sample_order.h"
#include "train/train_log.h"

#define LOG_HEADER "step,lr,loss,logit_scale,val_loss,val_top1,images_per_s"

/* ------------------------------------------------------------------ samples */

void clip_samples_free(ClipSamples *s) {
    if (!s) return;
    if (s->titles)
        for (int64_t i = 0; i < s->n; i++) free(s->titles[i]);
    free(s->titles);
    free(s->images);
    free(s->ids);
    memset(s, 0, sizeof *s);
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
    size_t per = (size_t)3 * size * size;
    out->images = malloc(sizeof(float) * per * (size_t)n);
    out->ids = calloc((size_t)n * (size_t)ctx, sizeof(int32_t));
    out->titles = calloc((size_t)n, sizeof(char *));
    if (!out->images || !out->ids || !out->titles) {
        snprintf(err, errlen, "out of memory for %d samples", n);
        caption_rows_free(rows, n);
        clip_samples_free(out);
        return -1;
    }
    int failed = -1;
    char fail_msg[4400] = "";
    /* decoding and resizing dominate: spread over threads; the tokenizer is not thread-safe */
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) {
        char path[4096];
        const char *fp = rows[i].filepath;
        if (root && fp[0] != '/')
            snprintf(path, sizeof path, "%s/%s", root, fp);
        else
            snprintf(path, sizeof path, "%s", fp);
        Image im = {0};
        int rc = image_load(path, &im), loaded = !rc;
        if (!rc) rc = clip_preprocess(&im, size, out->images + per * (size_t)i);
        if (rc) {
#pragma omp critical
            if (failed < 0) {
                failed = i;
                /* image_load names the file; clip_preprocess does not */
                snprintf(fail_msg, sizeof fail_msg, "%.1500s%s%.1500s (row %d of %.1000s)", loaded ? path : "", loaded ? ": " : "",
                         data_error(), i + 2, csv);
            }
        }
        image_free(&im);
    }
    if (failed >= 0) {
        snprintf(err, errlen, "%s", fail_msg);
        caption_rows_free(rows, n);
        clip_samples_free(out);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(rows[i].caption) + strlen(rows[i].degradation) + 3;
        out->titles[i] = malloc(len);
        snprintf(out->titles[i], len, "%s: %s", rows[i].caption, rows[i].degradation);
        tokenizer_tokenize_n(tok, out->titles[i], out->ids + (size_t)i * ctx, ctx);
    }
    caption_rows_free(rows, n);
    return 0;
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
}

/* Batch tensors for samples idx[0..B): images [B,3,S,S] and ids (arena). */
static Tensor *batch_images(const ClipSamples *s, const int64_t *idx, int B) {
    size_t per = (size_t)3 * s->size * s->size;
    Tensor *img = t_new(T_SHAPE(B, 3, s->size, s->size));
    for (int b = 0; b < B; b++) memcpy(img->data + per * (size_t)b, s->images + per * (size_t)idx[b], sizeof(float) * per);
    return img;
}

static int32_t *batch_ids(const ClipSamples *s, const int64_t *idx, int B) {
    int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)B * (size_t)s->ctx);
    for (int b = 0; b < B; b++) memcpy(ids + (size_t)b * s->ctx, s->ids + (size_t)idx[b] * s->ctx, sizeof(int32_t) * (size_t)s->ctx);
    return ids;
}

int clip_evaluate(Clip *m, const ClipSamples *val, int batch, double *loss, double *top1) {
    int64_t n = val->n, E = m->cfg.vision.embed_dim, lo, hi;
    /* data-parallel: each rank encodes its slice of the rows, then every rank has every embedding */
    dist_shard(n, &lo, &hi);
    int64_t *rows_of = malloc(sizeof(int64_t) * (size_t)dist_size());
    float *ri = malloc(sizeof(float) * (size_t)(n * E)), *rt = malloc(sizeof(float) * (size_t)(n * E));
    float *fi = malloc(sizeof(float) * (size_t)(n * E)), *ft = malloc(sizeof(float) * (size_t)(n * E));
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)batch);
    int rc = rows_of && ri && rt && fi && ft && idx ? 0 : -1;
    bool prev = t_set_grad_enabled(false);
    for (int64_t start = lo; start < hi && !rc; start += batch) {   /* raw embeddings of this rank's rows */
        int B = (int)(hi - start < batch ? hi - start : batch);
        size_t mark = t_arena_mark();
        for (int b = 0; b < B; b++) idx[b] = start + b;
        Tensor *ei = clip_encode_image(m, batch_images(val, idx, B), NULL, NULL);   /* [B, E] */
        Tensor *et = clip_encode_text(m, batch_ids(val, idx, B), B);                 /* [B, E] */
        if (ei && et) {
            memcpy(fi + start * E, ei->data, sizeof(float) * (size_t)(B * E));
            memcpy(ft + start * E, et->data, sizeof(float) * (size_t)(B * E));
        } else {
            rc = -1;
        }
        t_arena_release(mark);
    }
    double failed = rc ? 1 : 0;   /* every rank must reach the gathers, or leave together */
    dist_sum_f64(&failed, 1, "validation");
    if (failed > 0) {
        t_set_grad_enabled(prev);
        free(rows_of), free(ri), free(rt), free(fi), free(ft), free(idx);
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
    free(rows_of), free(ri), free(rt), free(fi), free(ft), free(idx);
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
    TrainState st = {ps, opt, &rng, NULL, 0, o->lr};
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
    char err[1024] = "";
    if (o->out_dir && !(log = train_log_open(log_path, LOG_HEADER, o->resume != NULL, st.step, err, sizeof err))) {
        /* a resumed run keeps the log rows up to the checkpoint's step and drops the ones after it */
        fprintf(stderr, "daclip: train-clip: %s\n", err);
        optim_free(opt);
        return -1;
    }
    SampleOrder order;
    sample_order_init(&order, train->n, o->seed);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)B);
    double recent[20] = {0};
    int n_recent = 0, rc = 0;
    Progress bar;
    progress_begin(&bar, "train-clip", o->steps, "step");
    bar.done = st.step;
    double t0 = progress_now();
    int64_t first_step = st.step;
    const float max_scale = logf(100.0f);
    int64_t end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    while (st.step < end) {
        t_arena_reset();
        params_zero_grad_lazy(ps);
        for (int b = 0; b < B; b++) idx[b] = sample_order_at(&order, st.step * B + b);
        /* this rank's rows, then the whole batch's embeddings: the contrastive loss needs every pair */
        int Bl = (int)(hi - lo);
        Tensor *ei = clip_encode_image(m, batch_images(train, idx + lo, Bl), NULL, NULL);   /* [Bl, E] */
        Tensor *et = clip_encode_text(m, batch_ids(train, idx + lo, Bl), Bl);               /* [Bl, E] */
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
        t_backward(loss);
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
            if (clip_evaluate(m, val, B, &vl, &vt) == 0) res->val_loss = vl, res->val_top1 = vt;
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
    sample_order_free(&order);
    free(idx);
    optim_free(opt);
    return rc;
}
