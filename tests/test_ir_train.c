/* train/ir_train: IR-SDE training is proven by learning — a tiny plain U-Net trained on a synthetic "noisy"
 * task (σ = 25/255) restores held-out images, sampled with the posterior sampler, to a PSNR clearly above the
 * noisy input's — with a resumed run bit-identical to an uninterrupted one (weights, AdamW state and EMA), a
 * fine-tuning start (--init) that loads every tensor and gives the saved weights' loss on the same batch, the
 * DA-CLIP conditioning path end to end with a tiny random DA-CLIP, clear errors for bad inputs, and the CLI. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/degrade.h"
#include "data/image_io.h"
#include "tensor/ops.h"
#include "tests/util_check.h"
#include "tests/util_tiny_daclip.h"
#include "tests/util_tmpdir.h"
#include "train/ir_train.h"
#include "train/paths.h"

#define NOISY 4          /* degrade_name(4) == "noisy" */
#define IMG 48           /* synthetic image side */
#define PATCH 16         /* training crops: the tiny net learns faster from batches of 8 small crops */
#define N_TRAIN 128

static char dir[1024], root[1100];

/* A piecewise-smooth synthetic scene: a colour gradient with a few soft-edged rectangles, so that a small
 * network can learn to separate it from pixel noise. */
static void synth_scene(Image *im, uint64_t seed) {
    assert_int_equal(image_alloc(im, IMG, IMG, 3), 0);
    uint64_t s = data_hash64(seed + 1);
    float base[3], slope[3], rect[3][4], col[3][3];
    for (int c = 0; c < 3; c++) {
        s = data_hash64(s);
        base[c] = 0.2f + 0.5f * (float)(s % 1000) / 1000.0f;
        slope[c] = ((float)((s >> 16) % 1000) / 1000.0f - 0.5f) * 0.4f;
    }
    for (int k = 0; k < 3; k++) {
        s = data_hash64(s);
        for (int j = 0; j < 4; j++) rect[k][j] = (float)((s >> (10 * j)) % IMG);
        for (int c = 0; c < 3; c++) col[k][c] = (float)((s >> (40 + 7 * c)) % 128) / 127.0f - 0.5f;
    }
    for (int y = 0; y < IMG; y++)
        for (int x = 0; x < IMG; x++)
            for (int c = 0; c < 3; c++) {
                float v = base[c] + slope[c] * (float)(x - y) / IMG;
                for (int k = 0; k < 3; k++) {
                    float x0 = fminf(rect[k][0], rect[k][1]), x1 = fmaxf(rect[k][0], rect[k][1]) + 6;
                    float y0 = fminf(rect[k][2], rect[k][3]), y1 = fmaxf(rect[k][2], rect[k][3]) + 6;
                    float in = fminf(fminf(x - x0, x1 - x), fminf(y - y0, y1 - y));   /* soft edge, 2 px */
                    v += col[k][c] * 0.5f * fminf(fmaxf(in / 2.0f + 0.5f, 0.0f), 1.0f);
                }
                image_at(im, x, y)[c] = fminf(fmaxf(v, 0.0f), 1.0f);
            }
}

/* ROOT/<split>/noisy/{LQ,GT}/NNNN.png: n scenes and their official "noisy" degradation at σ = 25/255. */
static void write_noisy_split(const char *droot, const char *split, int n, uint64_t seed) {
    char lqdir[1400], gtdir[1400], path[1500];
    snprintf(lqdir, sizeof lqdir, "%s/%s/noisy/LQ", droot, split);
    snprintf(gtdir, sizeof gtdir, "%s/%s/noisy/GT", droot, split);
    assert_int_equal(path_mkdir_p(lqdir), 0);
    assert_int_equal(path_mkdir_p(gtdir), 0);
    DegradeParams p;
    degrade_default_params(NOISY, &p);
    p.noise_sigma = 25.0f / 255.0f;
    for (int i = 0; i < n; i++) {
        Image gt, lq;
        synth_scene(&gt, seed + (uint64_t)i);
        assert_int_equal(degrade_apply(&gt, NOISY, &p, seed * 1000 + (uint64_t)i, &lq), 0);
        snprintf(path, sizeof path, "%s/%04d.png", lqdir, i + 1);
        assert_int_equal(image_save(path, &lq), 0);
        snprintf(path, sizeof path, "%s/%04d.png", gtdir, i + 1);
        assert_int_equal(image_save(path, &gt), 0);
        image_free(&gt);
        image_free(&lq);
    }
}

/* nf 8, two levels, no DA-CLIP input: the plain IR-SDE at test size. */
static UNetConfig tiny_plain(void) {
    UNetConfig c = {3, 3, 8, 2, {1, 2}, 0, false, false};
    return c;
}

static int setup(void **state) {
    (void)state;
    if (test_tmpdir_create(dir, sizeof dir, "ir-train")) return -1;
    snprintf(root, sizeof root, "%s/ds", dir);
    write_noisy_split(root, "train", N_TRAIN, 1);
    write_noisy_split(root, "val", 6, 5000);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    t_arena_shutdown();
    return test_tmpdir_remove(dir);
}

static void open_data(Dataset *train, Dataset *val) {
    bool mask[DEGRADE_N];
    char err[1024] = "";
    assert_int_equal(ir_types_parse("noisy", mask, err, sizeof err), 0);
    if (ir_dataset_open(root, "train", mask, train, err, sizeof err)) fail_msg("%s", err);
    if (val && ir_dataset_open(root, "val", mask, val, err, sizeof err)) fail_msg("%s", err);
}

static void new_model(IrModel *m, const UNetConfig *cfg, const char *init, uint64_t seed) {
    char err[1024] = "";
    if (ir_model_init(m, cfg, init, "test config", NULL, NULL, seed, err, sizeof err)) fail_msg("%s", err);
}

static float *weights(const ParamSet *ps, int64_t *n_out) {
    int64_t n = params_count(ps, "", false), k = 0;
    float *buf = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < ps->n; i++) {
        memcpy(buf + k, ps->items[i].t->data, sizeof(float) * (size_t)t_numel(ps->items[i].t));
        k += t_numel(ps->items[i].t);
    }
    *n_out = n;
    return buf;
}

static void read_file(const char *path, unsigned char **buf, long *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    *buf = malloc((size_t)*n);
    assert_int_equal(fread(*buf, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
}

static void assert_same_file(const char *a, const char *b) {
    unsigned char *x, *y;
    long nx, ny;
    read_file(a, &x, &nx);
    read_file(b, &y, &ny);
    if (nx != ny || memcmp(x, y, (size_t)nx)) fail_msg("%s and %s differ", a, b);
    free(x), free(y);
}

/* ---------------------------------------------------------------- training learns */

static void test_training_learns(void **state) {
    (void)state;
    Dataset tr, va;
    open_data(&tr, &va);
    UNetConfig cfg = tiny_plain();
    IrModel m;
    new_model(&m, &cfg, NULL, 3);
    IrValSet val;
    char err[1024] = "";
    if (ir_val_load(&m, &va, 6, 32, &val, err, sizeof err)) fail_msg("%s", err);
    IrValResult before;
    assert_int_equal(ir_validate(&m, &val, 0, &before), 0);
    IrTrainOptions o;
    ir_train_default_options(&o);
    /* A short run: a constant lr of 5e-3 (annealed, it would be small before the net has learnt to tell the
     * image from the noise: in trial runs PSNR sat near the input's for ~500 steps, then rose to 26-28 dB),
     * and an EMA updated every step (its ema_pytorch warmup still averages), which in 10-step updates would
     * lag behind the weights of a run this short. */
    o.steps = 900, o.batch = 8, o.patch = PATCH, o.lr = 5e-3, o.eta_min = 5e-3, o.ema_every = 1, o.quiet = true;
    o.seed = 11;
    IrTrainResult r;
    assert_int_equal(ir_train(&m, &tr, &val, &o, &r), 0);
    print_message("held-out PSNR %.2f dB (untrained %.2f) vs noisy input %.2f dB; SSIM %.4f vs %.4f; "
                  "loss %.5f -> %.5f; %.1f patches/s\n",
                  r.val_psnr, before.psnr, r.lq_psnr, r.val_ssim, r.lq_ssim, r.first_loss, r.last_loss, r.images_per_s);
    assert_int_equal(r.steps_done, 900);
    assert_true(r.last_loss < 0.7 * r.first_loss);
    assert_true(r.val_psnr > r.lq_psnr + 3.0);   /* clearly above the degraded input */
    assert_true(r.val_ssim > r.lq_ssim);
    assert_true(r.val_psnr > before.psnr + 3.0);
    ir_val_free(&val);
    ir_model_free(&m);
    dataset_free(&tr);
    dataset_free(&va);
}

/* ---------------------------------------------------------------- resume */

/* 120 steps at once == 60 steps, a checkpoint, and 60 more from a fresh model: the checkpoints (weights,
 * AdamW moments, EMA shadow and step) and both model files are byte-identical. 120 steps pass ema_pytorch's
 * update_after_step of 100, so the EMA really averages. */
static void test_resume_bit_identical(void **state) {
    (void)state;
    Dataset tr;
    open_data(&tr, NULL);
    UNetConfig cfg = tiny_plain();
    char out_a[1200], out_b[1200], fa[1300], fb[1300];
    snprintf(out_a, sizeof out_a, "%s/run_a", dir);
    snprintf(out_b, sizeof out_b, "%s/run_b", dir);
    IrTrainOptions o;
    ir_train_default_options(&o);
    o.steps = 120, o.batch = 2, o.patch = PATCH, o.lr = 1e-3, o.ema_every = 1, o.quiet = true, o.seed = 7;
    IrTrainResult r;
    IrModel a, b;
    new_model(&a, &cfg, NULL, 5);
    o.out_dir = out_a;
    assert_int_equal(ir_train(&a, &tr, NULL, &o, &r), 0);
    new_model(&b, &cfg, NULL, 5);
    o.out_dir = out_b, o.stop_at = 60;
    assert_int_equal(ir_train(&b, &tr, NULL, &o, &r), 0);
    assert_int_equal(r.steps_done, 60);
    ir_model_free(&b);
    new_model(&b, &cfg, NULL, 5);   /* a fresh start, as a new process would have */
    snprintf(fb, sizeof fb, "%s/checkpoint.safetensors", out_b);
    o.stop_at = 0, o.resume = fb;
    assert_int_equal(ir_train(&b, &tr, NULL, &o, &r), 0);
    assert_int_equal(r.steps_done, 120);
    const char *names[] = {"checkpoint.safetensors", "model.safetensors", "model_raw.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(fa, sizeof fa, "%s/%s", out_a, names[i]);
        snprintf(fb, sizeof fb, "%s/%s", out_b, names[i]);
        assert_same_file(fa, fb);
    }
    /* the EMA model is not the raw one (it averages), and the log has each step once */
    snprintf(fa, sizeof fa, "%s/model.safetensors", out_a);
    snprintf(fb, sizeof fb, "%s/model_raw.safetensors", out_a);
    unsigned char *x, *y;
    long nx, ny;
    read_file(fa, &x, &nx);
    read_file(fb, &y, &ny);
    assert_true(nx == ny && memcmp(x, y, (size_t)nx) != 0);
    free(x), free(y);
    snprintf(fb, sizeof fb, "%s/log.csv", out_b);
    FILE *f = fopen(fb, "r");
    assert_non_null(f);
    char line[512];
    int rows = -1;
    while (fgets(line, sizeof line, f)) rows++;
    fclose(f);
    assert_int_equal(rows, 120);
    ir_model_free(&a);
    ir_model_free(&b);
    dataset_free(&tr);
}

/* ---------------------------------------------------------------- fine-tuning */

/* --init: a model trained for a while and saved; a fine-tuning run starts from that file with every tensor
 * equal, and its first loss is the loss the saved weights give on the same batch (the same t and noise). */
static void test_init_continues(void **state) {
    (void)state;
    Dataset tr;
    open_data(&tr, NULL);
    UNetConfig cfg = tiny_plain();
    char out_a[1200], raw[1300];
    snprintf(out_a, sizeof out_a, "%s/run_init_a", dir);
    snprintf(raw, sizeof raw, "%s/model_raw.safetensors", out_a);
    IrTrainOptions o;
    ir_train_default_options(&o);
    o.steps = 150, o.batch = 8, o.patch = PATCH, o.lr = 5e-3, o.quiet = true, o.seed = 3, o.out_dir = out_a;
    IrTrainResult ra, rc;
    IrModel a, c, fresh;
    new_model(&a, &cfg, NULL, 8);
    assert_int_equal(ir_train(&a, &tr, NULL, &o, &ra), 0);
    new_model(&c, &cfg, raw, 99);   /* the seed must not matter: every tensor comes from the file */
    assert_int_equal(c.ps.n, a.ps.n);
    int64_t na, nc;
    float *wa = weights(&a.ps, &na), *wc = weights(&c.ps, &nc);
    assert_int_equal(na, nc);
    assert_memory_equal(wa, wc, sizeof(float) * (size_t)na);
    /* the fine-tuning run's first batch, and the trained weights' loss on it */
    IrTrainOptions fo = o;
    fo.steps = 1, fo.seed = 21, fo.out_dir = NULL;
    LoaderConfig lc;
    ir_loader_config(&c, &tr, &fo, &lc);
    Loader *l = loader_create(&tr, &lc);
    assert_non_null(l);
    const Batch *b = loader_next(l);
    assert_non_null(b);
    double loss_a, loss_fresh;
    assert_int_equal(ir_batch_loss(&a, b, fo.seed, 0, &loss_a), 0);
    new_model(&fresh, &cfg, NULL, 8);
    assert_int_equal(ir_batch_loss(&fresh, b, fo.seed, 0, &loss_fresh), 0);
    loader_destroy(l);
    assert_int_equal(ir_train(&c, &tr, NULL, &fo, &rc), 0);
    print_message("fine-tuning starts at loss %.6f (the saved weights on that batch: %.6f; untrained: %.6f; the "
                  "saved run's last 50 steps averaged %.6f)\n", rc.first_loss, loss_a, loss_fresh, ra.last_loss);
    assert_true(rc.first_loss == loss_a);
    assert_true(loss_a < loss_fresh);
    free(wa), free(wc);
    ir_model_free(&a);
    ir_model_free(&c);
    ir_model_free(&fresh);
    dataset_free(&tr);
}

/* ---------------------------------------------------------------- DA-CLIP conditioning */

/* A tiny random DA-CLIP (embedding size 16, 32-px views), saved as train-ir loads it. */
static void make_tiny_daclip(const char *path) {
    char clip_path[1300];
    snprintf(clip_path, sizeof clip_path, "%s/clip.safetensors", dir);
    assert_int_equal(test_write_tiny_daclip(clip_path, path, 0.2f), 0);
}

static float param_change(const ParamSet *ps, const float *before, const char *name) {
    int64_t k = 0;
    for (int i = 0; i < ps->n; i++) {
        int64_t n = t_numel(ps->items[i].t);
        if (!strcmp(ps->items[i].name, name)) {
            float d = 0;
            for (int64_t j = 0; j < n; j++) d = fmaxf(d, fabsf(ps->items[i].t->data[j] - before[k + j]));
            return d;
        }
        k += n;
    }
    fail_msg("no parameter %s", name);
    return 0;
}

static void test_daclip_conditioning(void **state) {
    (void)state;
    char dpath[1300], err[2048] = "";
    snprintf(dpath, sizeof dpath, "%s/daclip.safetensors", dir);
    make_tiny_daclip(dpath);
    DaclipModel d;
    if (daclip_model_load(dpath, NULL, &d, err, sizeof err)) fail_msg("%s", err);
    params_freeze(&d.ps, "", true);
    int64_t nd;
    float *d0 = weights(&d.ps, &nd);
    /* prompt (degradation embedding) and cross-attention (content embedding); mid is a SpatialTransformer */
    UNetConfig cfg = {3, 3, 16, 2, {1, 2}, 16, true, true};
    IrModel m;
    if (ir_model_init(&m, &cfg, NULL, "test config", &d, dpath, 2, err, sizeof err)) fail_msg("%s", err);
    assert_ptr_equal(m.daclip, &d);
    assert_int_equal(m.clip_size, 32);
    Dataset tr, va;
    open_data(&tr, &va);
    IrValSet val;
    if (ir_val_load(&m, &va, 2, 32, &val, err, sizeof err)) fail_msg("%s", err);
    assert_non_null(val.content);
    assert_true(fabsf(val.content[0] - val.degra[0]) + fabsf(val.content[1] - val.degra[1]) > 0);
    int64_t nu;
    float *u0 = weights(&m.ps, &nu);
    IrTrainOptions o;
    ir_train_default_options(&o);
    o.steps = 4, o.batch = 2, o.patch = PATCH, o.lr = 1e-3, o.quiet = true, o.seed = 1;
    IrTrainResult r;
    assert_int_equal(ir_train(&m, &tr, &val, &o, &r), 0);
    print_message("DA-CLIP-conditioned: loss %.5f, val PSNR %.2f dB (4 steps)\n", r.first_loss, r.val_psnr);
    assert_true(isfinite(r.first_loss) && isfinite(r.val_psnr));
    /* gradients reached the layers that only the embeddings feed */
    assert_true(param_change(&m.ps, u0, "text_mlp.0.weight") > 0);
    assert_true(param_change(&m.ps, u0, "prompt") > 0);
    assert_true(param_change(&m.ps, u0, "mid_attn.fn.fn.transformer_blocks.0.attn2.to_v.weight") > 0);
    /* the frozen DA-CLIP did not move */
    int64_t nd2;
    float *d1 = weights(&d.ps, &nd2);
    assert_int_equal(nd, nd2);
    assert_memory_equal(d0, d1, sizeof(float) * (size_t)nd);
    /* the embeddings steer the output: other embeddings, another loss on the same batch */
    LoaderConfig lc;
    ir_loader_config(&m, &tr, &o, &lc);
    Loader *l = loader_create(&tr, &lc);
    assert_non_null(l);
    const Batch *b = loader_next(l);
    double l1, l2;
    assert_int_equal(ir_batch_loss(&m, b, 1, 0, &l1), 0);
    for (int i = 0; i < d.ps.n; i++)
        if (!strcmp(d.ps.items[i].name, "visual_control.proj")) fill_uniform(d.ps.items[i].t, 77, -1.0f, 1.0f);
    assert_int_equal(ir_batch_loss(&m, b, 1, 0, &l2), 0);
    loader_destroy(l);
    assert_true(l1 != l2);
    free(d0), free(d1), free(u0);
    ir_val_free(&val);
    ir_model_free(&m);
    daclip_model_free(&d);
    dataset_free(&tr);
    dataset_free(&va);
}

/* ---------------------------------------------------------------- bad inputs */

static void test_bad_inputs(void **state) {
    (void)state;
    char err[2048] = "", path[1300], dpath[1300];
    /* a U-Net file whose metadata states another config than its tensors have */
    UNetConfig real = tiny_plain(), stated = tiny_plain();
    stated.ch_mult[1] = 4;
    IrModel m;
    new_model(&m, &real, NULL, 1);
    char meta[512];
    assert_int_equal(unet_config_to_json(&stated, meta, sizeof meta), 0);
    snprintf(path, sizeof path, "%s/mismatch.safetensors", dir);
    assert_int_equal(params_save_file(&m.ps, path, meta), 0);
    ir_model_free(&m);
    assert_int_equal(ir_model_init(&m, NULL, path, "x", NULL, NULL, 0, err, sizeof err), -1);
    print_message("%s\n", err);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "do not match"));
    /* a DA-CLIP of another embedding size (16) than the U-Net's context (32) */
    snprintf(dpath, sizeof dpath, "%s/daclip.safetensors", dir);
    struct stat st;
    if (stat(dpath, &st)) make_tiny_daclip(dpath);
    DaclipModel d;
    if (daclip_model_load(dpath, NULL, &d, err, sizeof err)) fail_msg("%s", err);
    UNetConfig ctx = {3, 3, 16, 2, {1, 2}, 32, true, true};
    assert_int_equal(ir_model_init(&m, &ctx, NULL, "--model wide.json", &d, dpath, 0, err, sizeof err), -1);
    print_message("%s\n", err);
    assert_non_null(strstr(err, dpath));
    assert_non_null(strstr(err, "wide.json"));
    assert_non_null(strstr(err, "context_dim 32"));
    /* a context U-Net without a DA-CLIP */
    assert_int_equal(ir_model_init(&m, &ctx, NULL, "--model wide.json", NULL, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "--no-daclip"));
    daclip_model_free(&d);
    /* datasets missing LQ, missing GT, with unequal counts, or without the asked type */
    char broot[1200], sub[1300];
    bool all[DEGRADE_N], noisy[DEGRADE_N];
    assert_int_equal(ir_types_parse(NULL, all, err, sizeof err), 0);
    assert_int_equal(ir_types_parse("noisy", noisy, err, sizeof err), 0);
    Dataset ds;
    snprintf(broot, sizeof broot, "%s/bad_gt_only", dir);
    snprintf(sub, sizeof sub, "%s/train/noisy/GT", broot);
    assert_int_equal(path_mkdir_p(sub), 0);
    assert_int_equal(ir_dataset_open(broot, "train", all, &ds, err, sizeof err), -1);
    print_message("%s\n", err);
    assert_non_null(strstr(err, "bad_gt_only/train/noisy"));
    assert_non_null(strstr(err, "no LQ/"));
    snprintf(broot, sizeof broot, "%s/bad_lq_only", dir);
    snprintf(sub, sizeof sub, "%s/train/hazy/LQ", broot);
    assert_int_equal(path_mkdir_p(sub), 0);
    assert_int_equal(ir_dataset_open(broot, "train", all, &ds, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad_lq_only/train/hazy"));
    assert_non_null(strstr(err, "no GT/"));
    snprintf(broot, sizeof broot, "%s/bad_count", dir);
    write_noisy_split(broot, "train", 2, 1);
    snprintf(sub, sizeof sub, "%s/train/noisy/GT/0002.png", broot);
    assert_int_equal(unlink(sub), 0);
    assert_int_equal(ir_dataset_open(broot, "train", all, &ds, err, sizeof err), -1);
    print_message("%s\n", err);
    assert_non_null(strstr(err, "bad_count/train/noisy"));
    assert_non_null(strstr(err, "2 LQ images but 1 GT"));
    bool hazy[DEGRADE_N];
    assert_int_equal(ir_types_parse("hazy", hazy, err, sizeof err), 0);
    assert_int_equal(ir_dataset_open(root, "train", hazy, &ds, err, sizeof err), -1);
    assert_non_null(strstr(err, "train/hazy"));
    assert_int_equal(ir_types_parse("noisy,foggy", hazy, err, sizeof err), -1);
    assert_non_null(strstr(err, "foggy"));
    /* --types keeps only the asked degradations */
    assert_int_equal(ir_dataset_open(root, "train", noisy, &ds, err, sizeof err), 0);
    assert_int_equal(ds.n, N_TRAIN);
    assert_int_equal(dataset_type_count(&ds, NOISY), N_TRAIN);
    dataset_free(&ds);
}

/* ---------------------------------------------------------------- the command line */

static char daclip_bin[PATH_MAX];

/* Runs build/daclip (next to this test's folder) with stderr and stdout to files in the scratch folder;
 * returns the exit status and leaves stderr's text in err_out. */
static int run_cli(const char *args, char *err_out, size_t n) {
    char cmd[12288], err_path[1300];
    snprintf(err_path, sizeof err_path, "%s/cli_stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "DACLIP_THREADS=1 '%s' %s >'%s/cli_stdout.txt' 2>'%s'", daclip_bin, args, dir, err_path);
    int status = system(cmd);
    FILE *f = fopen(err_path, "r");
    size_t k = f ? fread(err_out, 1, n - 1, f) : 0;
    err_out[k] = 0;
    if (f) fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_cli(void **state) {
    (void)state;
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(k > 0);
    self[k] = 0;
    snprintf(daclip_bin, sizeof daclip_bin, "%s/../daclip", dirname(self));
    if (access(daclip_bin, X_OK)) skip();
    char json[1300], args[4096], out[1200], file[1300], text[8192];
    snprintf(json, sizeof json, "%s/tiny.json", dir);
    FILE *f = fopen(json, "w");
    assert_non_null(f);
    UNetConfig cfg = tiny_plain();
    char meta[512];
    assert_int_equal(unet_config_to_json(&cfg, meta, sizeof meta), 0);
    fputs(meta, f);
    fclose(f);
    snprintf(out, sizeof out, "%s/cli_run", dir);
    snprintf(args, sizeof args, "train-ir --no-daclip --data '%s' --out '%s' --model '%s' --types noisy --steps 3 "
             "--batch 2 --patch 32 --val-images 1 --quiet", root, out, json);
    assert_int_equal(run_cli(args, text, sizeof text), 0);
    const char *files[] = {"model.safetensors", "model_raw.safetensors", "checkpoint.safetensors", "log.csv", "loss.png"};
    struct stat st;
    for (int i = 0; i < 5; i++) {
        snprintf(file, sizeof file, "%s/%s", out, files[i]);
        if (stat(file, &st) || st.st_size == 0) fail_msg("%s missing after the run; stderr: %s", file, text);
    }
    /* the model written loads as a U-Net with the config it was given */
    IrModel m;
    snprintf(file, sizeof file, "%s/model.safetensors", out);
    new_model(&m, NULL, file, 0);
    assert_int_equal(m.cfg.nf, 8);
    assert_int_equal(m.cfg.depth, 2);
    ir_model_free(&m);
    /* usage errors exit 2, bad data 1 with the folder named */
    snprintf(args, sizeof args, "train-ir --data '%s' --out '%s'", root, out);
    assert_int_equal(run_cli(args, text, sizeof text), 2);
    assert_non_null(strstr(text, "--daclip"));
    snprintf(args, sizeof args, "train-ir --no-daclip --data '%s' --out '%s' --types foggy", root, out);
    assert_int_equal(run_cli(args, text, sizeof text), 2);
    assert_non_null(strstr(text, "foggy"));
    snprintf(file, sizeof file, "%s/cli_bad/train/rainy/GT", dir);
    assert_int_equal(path_mkdir_p(file), 0);
    snprintf(args, sizeof args, "train-ir --no-daclip --data '%s/cli_bad' --out '%s'", dir, out);
    assert_int_equal(run_cli(args, text, sizeof text), 1);
    assert_non_null(strstr(text, "cli_bad/train/rainy"));
}

int main(void) {
    t_init();
    t_set_threads(1);   /* tiny networks: threads only add synchronisation (and spin on a busy machine) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_resume_bit_identical),
        cmocka_unit_test(test_init_continues),
        cmocka_unit_test(test_daclip_conditioning),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
