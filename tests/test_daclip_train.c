/* train/daclip_train: DA-CLIP controller training is proven by learning — on a held-out split of a small
 * three-degradation dataset, degradation accuracy rises from chance to >= 80% — with the CLIP bit-identical
 * after training, a resumed run bit-identical to an uninterrupted one, a model file that loads back, and
 * clear errors for a bad CSV and a CLIP file whose tensors do not match its configuration. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "data/dataset.h"
#include "data/degrade.h"
#include "data/image_io.h"
#include "tensor/ops.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"
#include "train/clip_io.h"
#include "train/daclip_model.h"
#include "train/daclip_train.h"

static char dir[1024], clip_path[1200], train_csv[1200], val_csv[1200];
static const int types[3] = {3, 4, 1};   /* low-light, noisy, hazy: distinct at 32 px */

/* A smooth random "photo": a few coloured blobs over a gradient. */
static void synth_photo(Image *im, int S, uint64_t seed) {
    image_alloc(im, S, S, 3);
    uint64_t s = seed;
    float cx[3], cy[3], col[3][3];
    for (int k = 0; k < 3; k++) {
        s = data_hash64(s);
        cx[k] = (float)(s % 1000) / 1000.0f * S, cy[k] = (float)((s >> 20) % 1000) / 1000.0f * S;
        for (int c = 0; c < 3; c++) col[k][c] = (float)((s >> (30 + 8 * c)) % 256) / 255.0f;
    }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0.3f + 0.3f * (float)(x + y) / (2.0f * S);
                for (int k = 0; k < 3; k++) {
                    float d2 = (x - cx[k]) * (x - cx[k]) + (y - cy[k]) * (y - cy[k]);
                    v += 0.5f * col[k][c] * expf(-d2 / (0.05f * S * S));
                }
                image_at(im, x, y)[c] = v > 1 ? 1 : v;
            }
}

/* n photos per type; rows "a photo number k: <degradation>" with paths relative to the CSV's folder. */
static void write_split(const char *csv, const char *split, int n, uint64_t seed) {
    CaptionRow rows[64];
    int k = 0;
    char path[1400], rel[256], caption[64];
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < n; i++) {
            Image clean, lq;
            synth_photo(&clean, 40, seed + (uint64_t)i * 31 + (uint64_t)t * 7);
            assert_int_equal(degrade_apply(&clean, types[t], NULL, seed * 77 + (uint64_t)(i * 3 + t), &lq), 0);
            snprintf(rel, sizeof rel, "%s_%d_%d.png", split, t, i);
            snprintf(path, sizeof path, "%s/%s", dir, rel);
            assert_int_equal(image_save(path, &lq), 0);
            image_free(&clean);
            image_free(&lq);
            snprintf(caption, sizeof caption, "a photo number %d", i);
            rows[k].filepath = strdup(rel);
            rows[k].caption = strdup(caption);
            rows[k].degradation = strdup(degrade_name(types[t]));
            k++;
        }
    assert_int_equal(caption_csv_write(csv, rows, k), 0);
    for (int i = 0; i < k; i++) free(rows[i].filepath), free(rows[i].caption), free(rows[i].degradation);
}

static ClipConfig tiny(void) {
    ClipConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "test");
    cfg.vision = (VisionConfig){32, 8, 32, 2, 2, 16};
    cfg.context_length = 16, cfg.vocab_size = 49408, cfg.text_width = 32, cfg.text_heads = 2, cfg.text_layers = 1;
    return cfg;
}

static int setup(void **state) {
    (void)state;
    if (test_tmpdir_create(dir, sizeof dir, "daclip-train")) return -1;
    snprintf(train_csv, sizeof train_csv, "%s/train.csv", dir);
    snprintf(val_csv, sizeof val_csv, "%s/val.csv", dir);
    snprintf(clip_path, sizeof clip_path, "%s/clip.safetensors", dir);
    write_split(train_csv, "train", 16, 1);
    write_split(val_csv, "val", 8, 1000);
    /* a random CLIP (no pretraining): the controller must learn everything itself */
    ClipConfig cfg = tiny();
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 4);
    Clip clip;
    if (clip_init(&clip, &ps, "", &cfg, &rng)) return -1;
    char meta[6000];
    const char *vocab = clip_vocab_path(NULL);
    if (!vocab || clip_model_meta(&cfg, vocab, meta, sizeof meta) || params_save_file(&ps, clip_path, meta)) return -1;
    clip_free(&clip);
    params_free(&ps);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    t_arena_shutdown();
    return test_tmpdir_remove(dir);
}

static void open_model(DaclipModel *m, DaclipSamples *tr, DaclipSamples *va) {
    char err[2048] = "";
    if (daclip_model_from_clip(clip_path, NULL, false, m, err, sizeof err)) fail_msg("%s", err);
    if (daclip_samples_from_csv(m, train_csv, dir, tr, err, sizeof err)) fail_msg("%s", err);
    if (va && daclip_samples_from_csv(m, val_csv, dir, va, err, sizeof err)) fail_msg("%s", err);
}

static float *snapshot(const ParamSet *ps, const char *prefix, int64_t *n_out) {
    int64_t n = params_count(ps, prefix, false), k = 0;
    float *buf = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < ps->n; i++)
        if (!strncmp(ps->items[i].name, prefix, strlen(prefix))) {
            memcpy(buf + k, ps->items[i].t->data, sizeof(float) * (size_t)t_numel(ps->items[i].t));
            k += t_numel(ps->items[i].t);
        }
    *n_out = n;
    return buf;
}

/* An untrained text tower gives the ten names nearly one direction (cos 0.7-0.97: the pooled EOT token
 * dominates), which no controller could separate; a trained CLIP's names are distinct. So the learning test
 * gives the names random directions, as daclip_name_embeddings' cache (the text path itself is checked
 * against PyTorch in test_controller). */
static void distinct_names(DaclipModel *m) {
    int64_t E = m->clip.cfg.vision.embed_dim;
    free(m->names);
    m->names = malloc(sizeof(float) * (size_t)(DEGRADE_N * E));
    Tensor *t = t_new(T_SHAPE(DEGRADE_N, E));
    fill_uniform(t, 99, -1.0f, 1.0f);
    memcpy(m->names, t->data, sizeof(float) * (size_t)(DEGRADE_N * E));
}

static void test_training_learns(void **state) {
    (void)state;
    DaclipModel m;
    DaclipSamples tr, va;
    open_model(&m, &tr, &va);
    distinct_names(&m);
    DaclipEval before, after;
    assert_int_equal(daclip_evaluate(&m, &va, 24, &before, false), 0);
    int64_t nclip;
    float *clip0 = snapshot(&m.ps, "clip.", &nclip);
    DaclipTrainOptions o;
    daclip_train_default_options(&o);
    o.steps = 80, o.batch = 24, o.lr = 2e-3, o.warmup = 10, o.quiet = true;
    DaclipTrainResult r;
    assert_int_equal(daclip_train(&m, &tr, &va, &o, &r), 0);
    assert_int_equal(daclip_evaluate(&m, &va, 24, &after, false), 0);
    print_message("held-out degradation accuracy %.1f%% -> %.1f%%; loss %.3f -> %.3f; val degradation loss %.3f -> %.3f\n",
                  100 * before.acc, 100 * after.acc, r.first_loss, r.train_loss, before.loss_degra, after.loss_degra);
    for (int t = 0; t < 3; t++)
        print_message("  %-10s -> %lld %lld %lld\n", degrade_name(types[t]), (long long)after.confusion[types[t]][types[0]],
                      (long long)after.confusion[types[t]][types[1]], (long long)after.confusion[types[t]][types[2]]);
    assert_true(after.acc >= 0.8);
    assert_true(after.acc > before.acc + 0.3);
    assert_true(r.train_loss < r.first_loss - 0.5);
    assert_true(after.loss_degra < before.loss_degra);
    /* the frozen CLIP did not move */
    int64_t n2;
    float *clip1 = snapshot(&m.ps, "clip.", &n2);
    assert_int_equal(nclip, n2);
    assert_memory_equal(clip0, clip1, sizeof(float) * (size_t)nclip);
    /* the temperature stays in [0, ln 100] */
    assert_true(m.ctl.logit_scale->data[0] >= 0 && m.ctl.logit_scale->data[0] <= logf(100.0f) + 1e-6f);
    free(clip0), free(clip1);
    daclip_samples_free(&tr);
    daclip_samples_free(&va);
    daclip_model_free(&m);
}

/* 16 steps at once == 8 steps, a checkpoint, and 8 more in a new process-like start; and the model file
 * written at the end loads back with every tensor. */
static void test_resume_bit_identical(void **state) {
    (void)state;
    char out_a[1300], out_b[1300], ckpt[1400], model[1400];
    snprintf(out_a, sizeof out_a, "%s/run_a", dir);
    snprintf(out_b, sizeof out_b, "%s/run_b", dir);
    DaclipTrainOptions o;
    daclip_train_default_options(&o);
    o.steps = 16, o.batch = 8, o.lr = 1e-3, o.warmup = 4, o.quiet = true, o.seed = 5;
    o.mirror = true;   /* the mirror coins, like the crops, must replay on resume */
    DaclipTrainResult r;
    DaclipModel a, b;
    DaclipSamples tr;
    open_model(&a, &tr, NULL);
    o.out_dir = out_a;
    assert_int_equal(daclip_train(&a, &tr, NULL, &o, &r), 0);
    daclip_samples_free(&tr);
    int64_t n;
    float *wa = snapshot(&a.ps, "", &n);

    open_model(&b, &tr, NULL);
    o.out_dir = out_b, o.stop_at = 8;
    assert_int_equal(daclip_train(&b, &tr, NULL, &o, &r), 0);
    daclip_model_free(&b);
    daclip_samples_free(&tr);
    open_model(&b, &tr, NULL);   /* fresh start, as a new process would */
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out_b);
    o.stop_at = 0, o.resume = ckpt;
    assert_int_equal(daclip_train(&b, &tr, NULL, &o, &r), 0);
    int64_t n2;
    float *wb = snapshot(&b.ps, "", &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(wa, wb, sizeof(float) * (size_t)n);
    /* resuming with other views (here the crop scale) would silently break that: refused, naming both */
    o.scale_min = 1.0;
    assert_int_equal(daclip_train(&b, &tr, NULL, &o, &r), -1);
    assert_non_null(strstr(t_errmsg(), "crop_scale=0.9 mirror=1"));
    assert_non_null(strstr(t_errmsg(), "crop_scale=1 mirror=1"));
    o.scale_min = 0.9;
    /* the log has each step once */
    char logp[1400], line[512];
    snprintf(logp, sizeof logp, "%s/log.csv", out_b);
    FILE *f = fopen(logp, "r");
    assert_non_null(f);
    int rows = -1;
    while (fgets(line, sizeof line, f)) rows++;
    fclose(f);
    assert_int_equal(rows, 16);
    /* the exported model */
    DaclipModel c;
    char err[2048] = "";
    snprintf(model, sizeof model, "%s/model.safetensors", out_a);
    if (daclip_model_load(model, NULL, &c, err, sizeof err)) fail_msg("%s", err);
    float *wc = snapshot(&c.ps, "", &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(wa, wc, sizeof(float) * (size_t)n);
    free(wa), free(wb), free(wc);
    daclip_model_free(&a);
    daclip_model_free(&b);
    daclip_model_free(&c);
    daclip_samples_free(&tr);
}

static void test_bad_inputs(void **state) {
    (void)state;
    char err[2048] = "", csv[1300], bad_clip[1300];
    DaclipModel m;
    DaclipSamples tr;
    open_model(&m, &tr, NULL);
    daclip_samples_free(&tr);
    /* an unknown degradation name: file and line named */
    snprintf(csv, sizeof csv, "%s/bad.csv", dir);
    FILE *f = fopen(csv, "w");
    fprintf(f, "filepath\ttitle\ntrain_0_0.png\ta photo: noisy\ntrain_0_1.png\ta photo: foggy\n");
    fclose(f);
    assert_int_equal(daclip_samples_from_csv(&m, csv, dir, &tr, err, sizeof err), -1);
    assert_non_null(strstr(err, csv));
    assert_non_null(strstr(err, "line 3"));
    assert_non_null(strstr(err, "foggy"));
    /* a title without ": <degradation>" */
    f = fopen(csv, "w");
    fprintf(f, "filepath\ttitle\ntrain_0_0.png\ta photo without a label\n");
    fclose(f);
    assert_int_equal(daclip_samples_from_csv(&m, csv, dir, &tr, err, sizeof err), -1);
    assert_non_null(strstr(err, csv));
    daclip_model_free(&m);
    /* a CLIP file whose metadata states another width than its tensors have */
    ClipConfig cfg = tiny();
    cfg.vision.width = 64;
    char meta[6000];
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    Clip clip;
    ClipConfig real = tiny();
    assert_int_equal(clip_init(&clip, &ps, "", &real, &rng), 0);
    assert_int_equal(clip_model_meta(&cfg, clip_vocab_path(NULL), meta, sizeof meta), 0);
    snprintf(bad_clip, sizeof bad_clip, "%s/bad_clip.safetensors", dir);
    assert_int_equal(params_save_file(&ps, bad_clip, meta), 0);
    clip_free(&clip);
    params_free(&ps);
    assert_int_equal(daclip_model_from_clip(bad_clip, NULL, false, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, bad_clip));
    /* a plain CLIP is not a DA-CLIP model */
    assert_int_equal(daclip_model_load(clip_path, NULL, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a DA-CLIP"));
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_resume_bit_identical),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
