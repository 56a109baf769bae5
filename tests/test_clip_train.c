/* Contrastive training learns: a tiny CLIP trained from scratch on the synthetic coloured-shapes caption
 * task (16 classes "a <colour> <shape>") reaches high image->text accuracy on held-out samples (other
 * seeds, never seen in training). Also: resume from a checkpoint continues bit-identically; images are
 * streamed from their files (the batches are exactly the seeded order's, preprocessed as clip_preprocess does,
 * and memory holds at most the prefetch depth's batches); a corrupt image stops the run naming the CSV line
 * and the file, a missing one is refused before training. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "clip/bpe_train.h"
#include "clip/model.h"
#include "clip/tokenizer.h"
#include "data/clip_preprocess.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/shapes.h"
#include "tensor/ops.h"
#include "train/clip_train.h"
#include "train/clip_train_stream.h"
#include "train/sample_order.h"
#include "tests/util_cli.h"
#include "tests/util_tmpdir.h"
#include "tests/util_check.h"

static char tmpdir[256];


/* Under AddressSanitizer (make san) the run is shortened: that build checks memory safety, the normal
 * build checks that training reaches high held-out accuracy (~94% here; chance is 6.25%). */
#if defined(__SANITIZE_ADDRESS__)
#define TRAIN_STEPS 120
#define TRAIN_SAMPLES 2048
#define MIN_TOP1 0.2
#define MAX_LOSS_RATIO 0.75
#else
#define TRAIN_STEPS 800
#define TRAIN_SAMPLES 8192
#define MIN_TOP1 0.85
#define MAX_LOSS_RATIO 0.5
#endif

/* Every title of the shapes CSVs is "a <colour> <shape>: s" (a CSV title has exactly one ": "). */
#define TITLE_TAIL "s"

static Tokenizer *make_tokenizer(const char *dir) {
    BpeTrainer *bt = bpe_trainer_new();
    char cap[64];
    for (int c = 0; c < SHAPES_N_COLOURS; c++)
        for (int k = 0; k < SHAPES_N_KINDS; k++) {
            snprintf(cap, sizeof cap, "a %s %s: " TITLE_TAIL, shapes_colour_name(c), shapes_kind_name(k));
            for (int r = 0; r < 3; r++) bpe_trainer_add_text(bt, cap);
        }
    assert_true(bpe_trainer_learn(bt, 64, NULL, NULL) > 0);
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/vocab.txt.gz", dir);
    assert_int_equal(bpe_trainer_save(bt, path, err, sizeof err), 0);
    bpe_trainer_free(bt);
    Tokenizer *tok = tokenizer_load(path, err, sizeof err);
    assert_non_null(tok);
    return tok;
}

/* n rendered samples as PNG files tmpdir/<name>/NNNNN.png (row i is sample seed0 + i, class i mod 16) listed in
 * tmpdir/<name>.csv with paths relative to tmpdir: what make-dataset writes, which train-clip streams. */
static void write_shapes(const char *name, int n, uint64_t seed0, int size) {
    char dir[400], csv[400];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    snprintf(csv, sizeof csv, "%s/%s.csv", tmpdir, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    CaptionRow *rows = calloc((size_t)n, sizeof *rows);
    assert_non_null(rows);
    for (int i = 0; i < n; i++) {
        int cls = i % (SHAPES_N_COLOURS * SHAPES_N_KINDS);
        Image im;
        char cap[64], rel[64], path[500];
        assert_int_equal(shapes_render(cls / SHAPES_N_KINDS, cls % SHAPES_N_KINDS, seed0 + (uint64_t)i, size, &im, cap,
                                       sizeof cap), 0);
        snprintf(rel, sizeof rel, "%s/%05d.png", name, i);
        snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
        assert_int_equal(image_save(path, &im), 0);
        image_free(&im);
        rows[i] = (CaptionRow){strdup(rel), strdup(cap), strdup(TITLE_TAIL)};
    }
    if (caption_csv_write(csv, rows, n)) fail_msg("%s", data_error());
    caption_rows_free(rows, n);
}

static void load_shapes(const char *name, int size, int ctx, Tokenizer *tok, ClipSamples *s) {
    char csv[400], err[1024];
    snprintf(csv, sizeof csv, "%s/%s.csv", tmpdir, name);
    if (clip_samples_from_csv(csv, tmpdir, tok, size, ctx, s, err, sizeof err)) fail_msg("%s", err);
}

static void make_samples(ClipSamples *s, const char *name, int n, uint64_t seed0, int size, int ctx, Tokenizer *tok) {
    write_shapes(name, n, seed0, size);
    load_shapes(name, size, ctx, tok, s);
}

static void tiny_config(ClipConfig *cfg, int vocab) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "test");
    cfg->vision = (VisionConfig){32, 8, 64, 2, 2, 64};
    cfg->context_length = 8, cfg->vocab_size = vocab, cfg->text_width = 64, cfg->text_heads = 2, cfg->text_layers = 2;
}

static void test_tiny_clip_learns_shapes(void **state) {
    (void)state;
    Tokenizer *tok = make_tokenizer(tmpdir);
    ClipConfig cfg;
    tiny_config(&cfg, tokenizer_vocab_size(tok));
    ClipSamples train, val;
    make_samples(&train, "learn-train", TRAIN_SAMPLES, 1000, 32, 8, tok);
    make_samples(&val, "learn-val", 128, 900000, 32, 8, tok);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 7);
    Clip m;
    assert_int_equal(clip_init(&m, &ps, "", &cfg, &rng), 0);
    double vl0, top0;
    assert_int_equal(clip_evaluate(&m, &val, 64, &vl0, &top0), 0);
    ClipTrainOptions o;
    clip_train_default_options(&o);
    o.steps = TRAIN_STEPS, o.batch = 32, o.lr = 1e-3, o.warmup = 20, o.quiet = true, o.seed = 3;
    ClipTrainResult r;
    assert_int_equal(clip_train(&m, &ps, &train, &val, &o, &r), 0);
    print_message("tiny CLIP: loss %.3f -> %.3f, held-out image->text top-1 %.1f%% -> %.1f%% (chance 6.25%%), %.0f img/s\n",
                  r.first_loss, r.train_loss, 100 * top0, 100 * r.val_top1, r.images_per_s);
    assert_true(r.train_loss < MAX_LOSS_RATIO * r.first_loss);
    assert_true(r.val_top1 >= MIN_TOP1);
    clip_free(&m);
    params_free(&ps);
    clip_samples_free(&train);
    clip_samples_free(&val);
    tokenizer_free(tok);
}

/* 10 steps straight == 5 steps, checkpoint, a fresh model (other init) + load, 5 more: same losses
 * and the same weights bit for bit. */
static void train_run(const ClipConfig *cfg, const ClipSamples *train, uint64_t init_seed, const char *dir,
                      int64_t stop_at, const char *resume, ParamSet *ps, Clip *m, ClipTrainResult *r) {
    params_init(ps);
    TRng rng;
    rng_seed(&rng, init_seed);
    assert_int_equal(clip_init(m, ps, "", cfg, &rng), 0);
    ClipTrainOptions o;
    clip_train_default_options(&o);
    o.batch = 16, o.lr = 1e-3, o.warmup = 3, o.quiet = true, o.steps = 10;
    o.out_dir = dir, o.stop_at = stop_at, o.resume = resume;
    assert_int_equal(clip_train(m, ps, train, NULL, &o, r), 0);
}

static void test_resume_is_bit_identical(void **state) {
    (void)state;
    Tokenizer *tok = make_tokenizer(tmpdir);
    ClipConfig cfg;
    tiny_config(&cfg, tokenizer_vocab_size(tok));
    ClipSamples train;
    make_samples(&train, "resume", 64, 1, 32, 8, tok);
    char dir_a[300], dir_b[300], ck[400];
    snprintf(dir_a, sizeof dir_a, "%s/a", tmpdir);
    snprintf(dir_b, sizeof dir_b, "%s/b", tmpdir);
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", dir_b);
    ClipTrainResult ra, rb;
    ParamSet pa, pb;
    Clip ma, mb;
    train_run(&cfg, &train, 5, dir_a, 0, NULL, &pa, &ma, &ra);
    train_run(&cfg, &train, 5, dir_b, 5, NULL, &pb, &mb, &rb);
    clip_free(&mb);
    params_free(&pb);
    train_run(&cfg, &train, 99, dir_b, 0, ck, &pb, &mb, &rb);
    assert_int_equal(pa.n, pb.n);
    for (int i = 0; i < pa.n; i++) {
        Tensor *x = pa.items[i].t, *y = pb.items[i].t;
        assert_string_equal(pa.items[i].name, pb.items[i].name);
        if (memcmp(x->data, y->data, sizeof(float) * (size_t)t_numel(x)))
            fail_msg("%s differs after resume", pa.items[i].name);
    }
    /* the last logged losses agree too */
    char la[400], lb[400], line_a[256] = "", line_b[256] = "", buf[256];
    snprintf(la, sizeof la, "%s/log.csv", dir_a);
    snprintf(lb, sizeof lb, "%s/log.csv", dir_b);
    FILE *fa = fopen(la, "r"), *fb = fopen(lb, "r");
    assert_non_null(fa);
    assert_non_null(fb);
    while (fgets(buf, sizeof buf, fa)) snprintf(line_a, sizeof line_a, "%s", buf);
    while (fgets(buf, sizeof buf, fb)) snprintf(line_b, sizeof line_b, "%s", buf);
    fclose(fa);
    fclose(fb);
    assert_true(strncmp(line_a, "10,", 3) == 0);
    /* step, lr, loss, logit_scale must match (the throughput column differs) */
    char *ca = strrchr(line_a, ','), *cb = strrchr(line_b, ',');
    *ca = *cb = 0;
    assert_string_equal(line_a, line_b);
    clip_free(&ma);
    params_free(&pa);
    clip_free(&mb);
    params_free(&pb);
    clip_samples_free(&train);
    tokenizer_free(tok);
}

/* The stream hands out exactly what the in-memory loader did: step g's rows of the seeded order, each image as
 * clip_preprocess makes it from the file; a rank's shard and a resumed start give the same rows; the
 * evaluation order is sequential and ends. */
static void expect_batch(const ClipSamples *s, const ClipBatch *b, const int64_t *rows, int n) {
    assert_non_null(b);
    assert_int_equal(b->n, n);
    size_t per = (size_t)3 * s->size * s->size;
    float *want = malloc(sizeof(float) * per);
    for (int i = 0; i < n; i++) {
        assert_int_equal(b->rows[i], rows[i]);
        Image im;
        assert_int_equal(image_load(s->paths[rows[i]], &im), 0);
        assert_int_equal(clip_preprocess(&im, s->size, want), 0);
        image_free(&im);
        assert_memory_equal(b->images + per * (size_t)i, want, sizeof(float) * per);
    }
    free(want);
}

static void test_stream_batches(void **state) {
    (void)state;
    Tokenizer *tok = make_tokenizer(tmpdir);
    ClipSamples s;
    make_samples(&s, "stream", 60, 77, 32, 8, tok);
    SampleOrder order;
    assert_int_equal(sample_order_init(&order, s.n, 3), 0);
    int64_t rows[16];
    for (int threads = 1; threads <= 3; threads += 2) {
        ClipStreamConfig c = {8, 0, 8, true, 3, 0, threads, 3, 0};
        ClipStream *st = clip_stream_open(&s, &c);
        if (!st) fail_msg("%s", data_error());
        for (int64_t g = 0; g < 20; g++) {   /* 160 draws: more than two epochs of 60 */
            for (int i = 0; i < 8; i++) rows[i] = sample_order_at(&order, g * 8 + i);
            expect_batch(&s, clip_stream_next(st), rows, 8);
            usleep(1000);   /* a slower consumer: the workers fill the ring and must wait */
        }
        ClipStreamStats ss = clip_stream_stats(st);
        assert_true(ss.peak_batches >= 1 && ss.peak_batches <= 3);
        assert_true(ss.peak_decoded >= 1 && ss.peak_decoded <= threads);
        clip_stream_close(st);
    }
    /* rows 3..7 of every batch (one rank of a data-parallel run), resumed at step 11 */
    ClipStreamConfig c = {8, 3, 8, true, 3, 11, 2, 2, 0};
    ClipStream *st = clip_stream_open(&s, &c);
    assert_non_null(st);
    for (int64_t g = 11; g < 14; g++) {
        for (int i = 0; i < 5; i++) rows[i] = sample_order_at(&order, g * 8 + 3 + i);
        expect_batch(&s, clip_stream_next(st), rows, 5);
    }
    clip_stream_close(st);
    /* evaluation: rows 10..59 in batches of 16, the last one short, then the end */
    c = (ClipStreamConfig){16, 10, 60, false, 0, 0, 2, 2, 0};
    st = clip_stream_open(&s, &c);
    assert_non_null(st);
    for (int k = 0; k < 4; k++) {
        int n = k < 3 ? 16 : 2;
        for (int i = 0; i < n; i++) rows[i] = 10 + 16 * k + i;
        expect_batch(&s, clip_stream_next(st), rows, n);
    }
    assert_null(clip_stream_next(st));
    clip_stream_close(st);
    sample_order_free(&order);
    clip_samples_free(&s);
    tokenizer_free(tok);
}

/* Training through the stream holds at most `prefetch` batches and one decoded image per loader thread,
 * however many images the dataset has (the former loader held all 96 here, decoded, for the whole run). */
static void test_training_memory_is_bounded(void **state) {
    (void)state;
    Tokenizer *tok = make_tokenizer(tmpdir);
    ClipConfig cfg;
    tiny_config(&cfg, tokenizer_vocab_size(tok));
    ClipSamples train;
    make_samples(&train, "bounded", 96, 500, 32, 8, tok);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    Clip m;
    assert_int_equal(clip_init(&m, &ps, "", &cfg, &rng), 0);
    ClipTrainOptions o;
    clip_train_default_options(&o);
    o.batch = 8, o.steps = 30, o.warmup = 2, o.quiet = true, o.prefetch = 2, o.loader_threads = 2;
    ClipTrainResult r;
    assert_int_equal(clip_train(&m, &ps, &train, NULL, &o, &r), 0);
    print_message("96 images, 30 steps of 8: at most %d batches and %d decoded images held at once\n",
                  r.loader_peak_batches, r.loader_peak_decoded);
    assert_true(r.loader_peak_batches >= 1 && r.loader_peak_batches <= o.prefetch);
    assert_true(r.loader_peak_decoded >= 1 && r.loader_peak_decoded <= o.loader_threads);
    assert_true(r.loader_peak_batches * o.batch + r.loader_peak_decoded < train.n / 4);
    clip_free(&m);
    params_free(&ps);
    clip_samples_free(&train);
    tokenizer_free(tok);
}

/* A corrupt image in the middle of the CSV: the stream reports it at its batch, naming the CSV line and the
 * file; train-clip stops with that message and a non-zero exit. A missing image is refused up front. */
static void test_bad_images_are_named(void **state) {
    (void)state;
    Tokenizer *tok = make_tokenizer(tmpdir);
    write_shapes("bad", 40, 9, 32);
    char path[600], csv[400];
    snprintf(path, sizeof path, "%s/bad/00019.png", tmpdir);   /* row 19: line 21 of the CSV */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("\x89PNG\r\n\x1a\n garbage", f);
    fclose(f);
    ClipSamples s;
    load_shapes("bad", 32, 8, tok, &s);
    ClipStreamConfig c = {8, 0, 40, false, 0, 0, 2, 3, 0};
    ClipStream *st = clip_stream_open(&s, &c);
    assert_non_null(st);
    assert_non_null(clip_stream_next(st));
    assert_non_null(clip_stream_next(st));
    assert_null(clip_stream_next(st));   /* rows 16..23 */
    print_message("%s\n", data_error());
    assert_non_null(strstr(data_error(), "bad.csv: line 21: "));
    assert_non_null(strstr(data_error(), "bad/00019.png"));
    clip_stream_close(st);
    clip_samples_free(&s);
    /* the command: trains until the batch that holds it, then stops naming it */
    snprintf(csv, sizeof csv, "%s/bad.csv", tmpdir);
    char vocab[400], out[400];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt.gz", tmpdir);
    snprintf(out, sizeof out, "%s/bad-run", tmpdir);
    if (cli_find(NULL)) fail_msg("the daclip binary is not built");
    int rc = cli_run(NULL, (const char *[]){"train-clip", "--train", csv, "--out", out, "--vocab", vocab, "--batch", "8",
                                            "--steps", "10", "--warmup", "1", NULL});
    assert_int_not_equal(rc, 0);
    print_message("train-clip: %s", cli_err);
    assert_non_null(strstr(cli_err, "bad.csv: line 21: "));
    assert_non_null(strstr(cli_err, "bad/00019.png"));
    /* a missing file: found when the CSV is read */
    snprintf(path, sizeof path, "%s/bad/00030.png", tmpdir);
    assert_int_equal(unlink(path), 0);
    char err[1024];
    assert_int_equal(clip_samples_from_csv(csv, tmpdir, tok, 32, 8, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.csv: line 32: "));
    assert_non_null(strstr(err, "bad/00030.png: No such file"));
    tokenizer_free(tok);
}

int main(void) {
    t_init();
    if (test_tmpdir_create(tmpdir, sizeof tmpdir, "test-clip")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tiny_clip_learns_shapes, arena_teardown),
        cmocka_unit_test_teardown(test_resume_is_bit_identical, arena_teardown),
        cmocka_unit_test_teardown(test_stream_batches, arena_teardown),
        cmocka_unit_test_teardown(test_training_memory_is_bounded, arena_teardown),
        cmocka_unit_test_teardown(test_bad_images_are_named, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (test_tmpdir_remove(tmpdir)) rc = rc ? rc : 1;
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
