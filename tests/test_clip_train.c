/* Contrastive training learns: a tiny CLIP trained from scratch on the synthetic coloured-shapes caption
 * task (16 classes "a <colour> <shape>") reaches high image->text accuracy on held-out samples (other
 * seeds, never seen in training). Also: resume from a checkpoint continues bit-identically. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "clip/bpe_train.h"
#include "clip/model.h"
#include "clip/tokenizer.h"
#include "data/clip_preprocess.h"
#include "data/shapes.h"
#include "tensor/ops.h"
#include "train/clip_train.h"
#include "tests/util_tmpdir.h"


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

static Tokenizer *make_tokenizer(const char *dir) {
    BpeTrainer *bt = bpe_trainer_new();
    char cap[64];
    for (int c = 0; c < SHAPES_N_COLOURS; c++)
        for (int k = 0; k < SHAPES_N_KINDS; k++) {
            snprintf(cap, sizeof cap, "a %s %s", shapes_colour_name(c), shapes_kind_name(k));
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

static void make_samples(ClipSamples *s, int n, uint64_t seed0, int size, int ctx, Tokenizer *tok) {
    memset(s, 0, sizeof *s);
    s->n = n, s->size = size, s->ctx = ctx;
    size_t per = (size_t)3 * size * size;
    s->images = malloc(sizeof(float) * per * (size_t)n);
    s->ids = calloc((size_t)n * ctx, sizeof(int32_t));
    s->titles = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        int cls = i % (SHAPES_N_COLOURS * SHAPES_N_KINDS);
        Image im;
        char cap[64];
        assert_int_equal(shapes_render(cls / SHAPES_N_KINDS, cls % SHAPES_N_KINDS, seed0 + (uint64_t)i, size, &im, cap,
                                       sizeof cap), 0);
        assert_int_equal(clip_preprocess(&im, size, s->images + per * (size_t)i), 0);
        image_free(&im);
        s->titles[i] = strdup(cap);
        tokenizer_tokenize_n(tok, cap, s->ids + (size_t)i * ctx, ctx);
    }
}

static void tiny_config(ClipConfig *cfg, int vocab) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "test");
    cfg->vision = (VisionConfig){32, 8, 64, 2, 2, 64};
    cfg->context_length = 8, cfg->vocab_size = vocab, cfg->text_width = 64, cfg->text_heads = 2, cfg->text_layers = 2;
}

static char tmpdir[256];

static void test_tiny_clip_learns_shapes(void **state) {
    (void)state;
    Tokenizer *tok = make_tokenizer(tmpdir);
    ClipConfig cfg;
    tiny_config(&cfg, tokenizer_vocab_size(tok));
    ClipSamples train, val;
    make_samples(&train, TRAIN_SAMPLES, 1000, 32, 8, tok);
    make_samples(&val, 128, 900000, 32, 8, tok);
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
    make_samples(&train, 64, 1, 32, 8, tok);
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

static int teardown(void **state) {
    (void)state;
    t_arena_reset();
    return 0;
}

int main(void) {
    t_init();
    if (test_tmpdir_create(tmpdir, sizeof tmpdir, "test-clip")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tiny_clip_learns_shapes, teardown),
        cmocka_unit_test_teardown(test_resume_is_bit_identical, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (test_tmpdir_remove(tmpdir)) rc = rc ? rc : 1;
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
