/* Loader: the prefetch ring (order, bounded slots, a failed batch's message on the consumer's thread, finite
 * runs); LQ/GT alignment, CLIP view, balanced types, determinism across thread counts and the cache,
 * on-the-fly degradation, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/clip_preprocess.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"

static char root[64];

/* ROOT/train/{hazy,noisy}/{LQ,GT}: GT a smooth random-ish picture, LQ = 1 − GT (so alignment is checkable). */
static int setup(void **state) {
    (void)state;
    if (test_tmpdir_create(root, sizeof root, "test-loader")) return -1;
    const char *types[2] = { "hazy", "noisy" };
    char p[512];
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 3; i++) {
            int w = 90 + 13 * i + 7 * t, h = 80 + 9 * i;
            if (t == 1 && i == 2) { w = 40; h = 50; }   /* smaller than the patch: enlarged */
            Image gt, lq;
            if (image_alloc(&gt, w, h, 3) || image_alloc(&lq, w, h, 3)) return -1;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int k = 0; k < 3; k++) {
                        int v = (x * (3 + k) + y * (5 + i) + t * 40 + ((x * y) % 23)) % 256;
                        image_at(&gt, x, y)[k] = v / 255.f;
                        image_at(&lq, x, y)[k] = (255 - v) / 255.f;
                    }
            for (int g = 0; g < 2; g++) {
                snprintf(p, sizeof p, "mkdir -p %s/train/%s/%s", root, types[t], g ? "GT" : "LQ");
                if (system(p)) return -1;
                snprintf(p, sizeof p, "%s/train/%s/%s/%04d.png", root, types[t], g ? "GT" : "LQ", i + 1);
                if (image_save(p, g ? &gt : &lq)) return -1;
            }
            image_free(&gt);
            image_free(&lq);
        }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(root);
}

static LoaderConfig small_config(void) {
    LoaderConfig c;
    loader_default_config(&c);
    c.batch = 4;
    c.patch = 64;
    c.clip_size = 32;
    c.threads = 2;
    c.prefetch = 3;
    c.seed = 42;
    c.epoch_len = 8;
    return c;
}

/* A fill that writes g into its slot, fails on batch `bad` with a message, and is slow enough that the
 * workers run ahead of the consumer. */
typedef struct { int64_t bad; } RingCtx;

static int ring_fill(void *ctx, int worker, int64_t g, void *slot) {
    (void)worker;
    usleep(200);
    if (g == ((RingCtx *)ctx)->bad) {
        data_set_error("batch %lld: broken.png: truncated", (long long)g);
        return -1;
    }
    *(int64_t *)slot = g;
    return 0;
}

static void test_prefetch_ring(void **state) {
    (void)state;
    int64_t store[3];
    void *slots[3] = {&store[0], &store[1], &store[2]};
    RingCtx ctx = {-1};
    /* endless, from batch 5: batches come in order; never more than `depth` slots taken */
    PrefetchConfig c = {3, 3, 5, -1, slots, ring_fill, &ctx, 0};
    Prefetch *p = prefetch_create(&c);
    assert_non_null(p);
    for (int64_t g = 5; g < 40; g++) {
        int64_t *b = prefetch_next(p);
        assert_non_null(b);
        assert_int_equal(*b, g);
        usleep(300);   /* the consumer is slower: the workers fill the ring and wait */
    }
    assert_true(prefetch_peak_slots(p) >= 1 && prefetch_peak_slots(p) <= 3);
    prefetch_destroy(p);
    /* finite: batches [0, 4), then NULL; a failed batch is reported when the consumer reaches it */
    ctx.bad = 2;
    c = (PrefetchConfig){2, 2, 0, 4, slots, ring_fill, &ctx, 0};
    p = prefetch_create(&c);
    assert_non_null(p);
    for (int64_t g = 0; g < 2; g++) {
        int64_t *b = prefetch_next(p);
        assert_non_null(b);
        assert_int_equal(*b, g);
    }
    data_set_error("stale");
    assert_null(prefetch_next(p));
    assert_string_equal(data_error(), "batch 2: broken.png: truncated");
    prefetch_destroy(p);
    ctx.bad = -1;
    p = prefetch_create(&c);
    for (int64_t g = 0; g < 4; g++) assert_non_null(prefetch_next(p));
    assert_null(prefetch_next(p));
    prefetch_destroy(p);
    c.depth = 0;
    assert_null(prefetch_create(&c));
}

static void test_alignment_clip_and_balance(void **state) {
    (void)state;
    Dataset ds;
    if (dataset_open(root, "train", &ds)) fail_msg("%s", data_error());
    LoaderConfig c = small_config();
    Loader *l = loader_create(&ds, &c);
    assert_non_null(l);
    int count[DEGRADE_N] = { 0 };
    size_t np = 3 * 64 * 64, nc = 3 * 32 * 32;
    float *clip = malloc(nc * sizeof(float));
    Image patch;
    assert_int_equal(image_alloc(&patch, 64, 64, 3), 0);
    for (int bi = 0; bi < 4; bi++) {   /* two epochs */
        const Batch *b = loader_next(l);
        if (!b) fail_msg("%s", data_error());
        assert_int_equal(b->epoch, bi / 2);
        for (int i = 0; i < b->n; i++) {
            count[b->type[i]]++;
            const float *lq = b->lq + i * np, *gt = b->gt + i * np;
            /* LQ = 1 − GT pixelwise; the enlarged (bicubic, clamped) small image keeps it only approximately */
            for (size_t j = 0; j < np; j++)
                if (!close_enough(lq[j] + gt[j], 1.0, 2e-2, 0)) fail_msg("sample %d px %zu: LQ/GT not aligned", i, j);
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                    for (int k = 0; k < 3; k++) image_at(&patch, x, y)[k] = lq[(size_t)k * 4096 + y * 64 + x];
            assert_int_equal(clip_preprocess(&patch, 32, clip), 0);
            for (size_t j = 0; j < nc; j++) assert_float_close(clip[j], b->clip[i * nc + j], 1e-6);
        }
    }
    assert_int_equal(count[1], 8);   /* hazy */
    assert_int_equal(count[4], 8);   /* noisy */
    loader_destroy(l);
    free(clip);
    image_free(&patch);
    dataset_free(&ds);
}

/* Checksums of the first n batches. */
static void run_loader(const Dataset *ds, LoaderConfig c, int n, double *sums) {
    Loader *l = loader_create(ds, &c);
    assert_non_null(l);
    size_t np = (size_t)3 * c.patch * c.patch;
    for (int bi = 0; bi < n; bi++) {
        const Batch *b = loader_next(l);
        if (!b) fail_msg("%s", data_error());
        double s = 0;
        for (size_t j = 0; j < np * b->n; j++) s += b->lq[j] * (double)(j % 97 + 1) + 3 * b->gt[j];
        for (int i = 0; i < b->n; i++) s += 1000.0 * b->type[i] * (i + 1);
        sums[bi] = s;
    }
    loader_destroy(l);
}

static void test_determinism_threads_and_cache(void **state) {
    (void)state;
    Dataset ds;
    assert_int_equal(dataset_open(root, "train", &ds), 0);
    LoaderConfig c = small_config();
    double a[6], b[6], d[6], e[6];
    c.threads = 1;
    run_loader(&ds, c, 6, a);
    c.threads = 3;
    c.prefetch = 2;
    run_loader(&ds, c, 6, b);
    c.cache = 1;
    run_loader(&ds, c, 6, d);
    for (int i = 0; i < 6; i++) {
        assert_true(a[i] == b[i]);
        assert_true(a[i] == d[i]);
    }
    c.seed = 43;
    run_loader(&ds, c, 6, e);
    int differ = 0;
    for (int i = 0; i < 6; i++) differ += a[i] != e[i];
    assert_true(differ >= 5);
    /* the synchronous sample matches the loader's */
    c.seed = 42;
    size_t np = 3 * 64 * 64;
    float *lq = malloc(np * 4), *gt = malloc(np * 4);
    int type;
    assert_int_equal(loader_make_sample(&ds, &c, 0, 1, lq, gt, NULL, &type), 0);
    Loader *l = loader_create(&ds, &c);
    const Batch *bt = loader_next(l);
    assert_non_null(bt);
    assert_int_equal(bt->type[1], type);
    assert_memory_equal(bt->lq + np, lq, np * 4);
    assert_memory_equal(bt->gt + np, gt, np * 4);
    loader_destroy(l);
    free(lq); free(gt);
    dataset_free(&ds);
}

static void test_on_the_fly(void **state) {
    (void)state;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/train/hazy/GT", root);
    Dataset ds;
    assert_int_equal(dataset_open_clean(dir, &ds), 0);
    assert_int_equal(ds.n, 3);
    LoaderConfig c = small_config();
    c.epoch_len = 20;
    c.batch = 10;
    Loader *l = loader_create(&ds, &c);
    assert_non_null(l);
    const Batch *b = loader_next(l);
    if (!b) fail_msg("%s", data_error());
    int seen[DEGRADE_N] = { 0 };
    size_t np = 3 * 64 * 64;
    for (int i = 0; i < b->n; i++) {
        seen[b->type[i]]++;
        double d = 0;
        for (size_t j = 0; j < np; j++) d += fabs(b->lq[i * np + j] - b->gt[i * np + j]);
        assert_true(d > 0);   /* every degradation changes something */
    }
    loader_destroy(l);
    int total = 0;
    for (int t = 0; t < DEGRADE_N; t++) total += seen[t];
    assert_int_equal(total, 10);
    double s1[2], s2[2];
    c.threads = 1;
    run_loader(&ds, c, 2, s1);
    c.threads = 2;
    run_loader(&ds, c, 2, s2);
    assert_true(s1[0] == s2[0] && s1[1] == s2[1]);
    dataset_free(&ds);
}

static void test_errors(void **state) {
    (void)state;
    char p[96];
    snprintf(p, sizeof p, "%s/bad", root);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/train/snowy/LQ %s/train/snowy/GT && printf 'garbage' > %s/train/snowy/LQ/0001.png"
             " && cp %s/train/hazy/GT/0001.png %s/train/snowy/GT/0001.png", p, p, p, root, p);
    assert_int_equal(system(cmd), 0);
    Dataset ds;
    assert_int_equal(dataset_open(p, "train", &ds), 0);
    LoaderConfig c = small_config();
    c.epoch_len = 4;
    Loader *l = loader_create(&ds, &c);
    assert_non_null(l);
    assert_null(loader_next(l));
    assert_non_null(strstr(data_error(), "snowy/LQ/0001.png"));
    loader_destroy(l);
    c.batch = 0;
    assert_null(loader_create(&ds, &c));
    dataset_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefetch_ring),
        cmocka_unit_test(test_alignment_clip_and_balance),
        cmocka_unit_test(test_determinism_threads_and_cache),
        cmocka_unit_test(test_on_the_fly),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
