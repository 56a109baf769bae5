/* Restoration (train/restore, `daclip restore`, `daclip eval-ir`) with tiny random models built here:
 *   - chunked attention equals t_attention (forward and every gradient) where the blocks really split, and
 *     inside the U-Net (all parameters random, so the self-attention matters);
 *   - the tiled sampler: tile layout and weights, the counter-based noise, bit-identical results with 1 and 2
 *     threads and in any batch composition, tiled vs untiled within a stated tolerance and no seam;
 *   - the CLI end to end: PNG and JPEG in and out, odd sizes come back at their exact size, thread count
 *     does not change the files, context_dim mismatch and missing --daclip errors, a U-Net without contexts;
 *   - eval-ir: its numbers equal data/metrics.h and `daclip metrics` on the same files, grid.png is written,
 *     a second run resumes, bad inputs (count mismatch, size mismatch, unreadable image) are skipped and
 *     reported with exit status 1. */
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

#include "data/image_io.h"
#include "data/metrics.h"
#include "irsde/unet.h"
#include "tensor/attention_chunked.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"
#include "train/clip_io.h"
#include "train/daclip_model.h"
#include "train/restore.h"

static char dir[1024], daclip_bin[PATH_MAX];
static char daclip_path[1200], unet_path[1200], plain_path[1200], wide_path[1200];
static char out_text[65536], err_text[65536];   /* of the last run_cli */
#define ONE_THREAD "DACLIP_THREADS=1"   /* see setup() */

/* the U-Net of the sampler tests: DA-CLIP width 16, both contexts, SpatialTransformers at level 3 and mid */
static const UNetConfig ctx_cfg = {3, 3, 8, 4, {1, 1, 4, 4}, 16, true, true};
static ConditionalUNet unet;
static ParamSet unet_ps;
static IrSde sde;

/* ---- fixtures ----------------------------------------------------------------------------------------------- */

/* A textured "photo": a colour gradient, stripes and pixel noise, the same statistics everywhere. */
static void synth(Image *im, int w, int h, uint64_t seed) {
    assert_int_equal(image_alloc(im, w, h, 3), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint64_t r = data_hash64(seed ^ ((uint64_t)y << 32 | (uint64_t)x));
            for (int c = 0; c < 3; c++) {
                float v = 0.3f + 0.2f * sinf(0.3f * x + 0.7f * c + (float)(seed % 7)) * cosf(0.21f * y - c) +
                          0.15f * ((float)((r >> (16 * c)) & 0xffff) / 65535.0f);
                image_at(im, x, y)[c] = v;
            }
        }
}

static void save_synth(const char *path, int w, int h, uint64_t seed) {
    Image im;
    synth(&im, w, h, seed);
    assert_int_equal(image_save(path, &im), 0);
    image_free(&im);
}

/* The zero-initialised weights (the SpatialTransformers' proj_out) made random like the others (±1/sqrt(fan
 * in)), so that no block is an identity and the self-attention reaches the output. */
static void randomize_zero_weights(ParamSet *ps, uint64_t seed) {
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i].t;
        int64_t n = t_numel(t);
        bool zero = t->ndim >= 2;
        for (int64_t j = 0; zero && j < n; j++) zero = t->data[j] == 0.0f;
        float bound = zero ? 1.0f / sqrtf((float)(n / t->shape[0])) : 0.0f;
        if (zero) fill_uniform(t, seed + (uint64_t)i, -bound, bound);
    }
}

static int save_unet(const UNetConfig *cfg, const char *path, uint64_t seed) {
    ParamSet ps;
    params_init(&ps);
    ConditionalUNet u;
    TRng rng;
    rng_seed(&rng, seed);
    int rc = unet_init(&u, &ps, "", cfg, &rng) || unet_save_file(&ps, cfg, path);
    params_free(&ps);
    return rc ? -1 : 0;
}

static int save_daclip(void) {
    ClipConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "test");
    cfg.vision = (VisionConfig){32, 8, 32, 2, 2, 16};
    cfg.context_length = 16, cfg.vocab_size = 49408, cfg.text_width = 32, cfg.text_heads = 2, cfg.text_layers = 1;
    char clip_path[1300], meta[6000], err[2048];
    snprintf(clip_path, sizeof clip_path, "%s/clip.safetensors", dir);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 4);
    Clip clip;
    const char *vocab = clip_vocab_path(NULL);
    if (clip_init(&clip, &ps, "", &cfg, &rng) || !vocab || clip_model_meta(&cfg, vocab, meta, sizeof meta) ||
        params_save_file(&ps, clip_path, meta))
        return -1;
    clip_free(&clip);
    params_free(&ps);
    DaclipModel m;
    if (daclip_model_from_clip(clip_path, NULL, false, &m, err, sizeof err)) return -1;
    int rc = daclip_model_save(&m, daclip_path);
    daclip_model_free(&m);
    return rc;
}

/* daclip lives one folder above this test binary: <build>/tests/test_restore -> <build>/daclip */
static int find_daclip(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    char *build = dirname(dirname(self));
    if (snprintf(daclip_bin, sizeof daclip_bin, "%s/daclip", build) >= (int)sizeof daclip_bin) return -1;
    return access(daclip_bin, X_OK);
}

static int setup(void **state) {
    (void)state;
    if (find_daclip() || test_tmpdir_create(dir, sizeof dir, "restore")) return -1;
    snprintf(daclip_path, sizeof daclip_path, "%s/daclip.safetensors", dir);
    snprintf(unet_path, sizeof unet_path, "%s/unet.safetensors", dir);
    snprintf(plain_path, sizeof plain_path, "%s/plain.safetensors", dir);
    snprintf(wide_path, sizeof wide_path, "%s/wide.safetensors", dir);
    const UNetConfig plain = {3, 3, 8, 2, {1, 2}, 0, false, false};
    const UNetConfig wide = {3, 3, 8, 4, {1, 1, 4, 4}, 32, true, true};
    if (save_daclip() || save_unet(&ctx_cfg, unet_path, 11) || save_unet(&plain, plain_path, 12) ||
        save_unet(&wide, wide_path, 13))
        return -1;
    params_init(&unet_ps);
    TRng rng;
    rng_seed(&rng, 21);
    if (unet_init(&unet, &unet_ps, "", &ctx_cfg, &rng)) return -1;
    randomize_zero_weights(&unet_ps, 77);
    IrSdeOptions o = irsde_options_default();
    o.sample_T = 8;   /* the official sample_T: 8 steps over the 100-step time scale */
    /* one thread except where the thread count is the point: the machine is shared, and a busy core makes
     * every OpenMP barrier of a 2-thread run wait for it */
    t_set_threads(1);
    return irsde_init(&sde, &o);
}

static int teardown(void **state) {
    (void)state;
    params_free(&unet_ps);
    irsde_free(&sde);
    t_arena_shutdown();
    return test_tmpdir_remove(dir);
}

/* ---- chunked attention ------------------------------------------------------------------------------------- */

static double max_rel(const float *a, const float *b, int64_t n, double floor) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + floor);
        worst = worst_of(worst, d);
    }
    return worst;
}

static void attention_case(int B, int H, int Lq, int Lk, int D, int Dv, int bq, int bk, bool strided) {
    size_t mark = t_arena_mark();
    Tensor *q, *k, *v;
    if (strided) {   /* [B, L, H, D] projections viewed as [B, H, L, D], as CrossAttention passes them */
        q = t_permute(t_new(T_SHAPE(B, Lq, H, D)), (int[]){0, 2, 1, 3});
        k = t_permute(t_new(T_SHAPE(B, Lk, H, D)), (int[]){0, 2, 1, 3});
        v = t_permute(t_new(T_SHAPE(B, Lk, H, Dv)), (int[]){0, 2, 1, 3});
    } else {
        q = t_new(T_SHAPE(B, H, Lq, D)), k = t_new(T_SHAPE(B, H, Lk, D)), v = t_new(T_SHAPE(B, H, Lk, Dv));
    }
    Tensor *base[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        Tensor *store = t_wrap(base[i]->data, 1, (const int64_t[]){t_numel(base[i])});   /* behind the views */
        fill_uniform(store, 100 + (uint64_t)i, -2.0f, 2.0f);
        t_requires_grad(base[i]);
    }
    Tensor *r = t_new(T_SHAPE(B, H, Lq, Dv));
    fill_uniform(r, 7, -1.0f, 1.0f);
    float scale = 1.0f / sqrtf((float)D);
    int64_t nq = (int64_t)B * H * Lq * D, nk = (int64_t)B * H * Lk * D, nv = (int64_t)B * H * Lk * Dv;
    float *grads[2][3];
    Tensor *outs[2];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 3; i++) base[i]->grad = NULL;
        Tensor *o = pass == 0 ? t_attention(q, k, v, NULL, scale) : t_attention_chunked(q, k, v, scale, bq, bk);
        assert_non_null(o);
        outs[pass] = t_contiguous(o);
        t_backward(t_sum(t_mul(o, r), 0, NULL, false));
        for (int i = 0; i < 3; i++) {
            int64_t n = i == 0 ? nq : i == 1 ? nk : nv;
            grads[pass][i] = t_arena_alloc(sizeof(float) * (size_t)n);
            memcpy(grads[pass][i], base[i]->grad, sizeof(float) * (size_t)n);
        }
    }
    int64_t no = (int64_t)B * H * Lq * Dv;
    double ef = max_rel(outs[1]->data, outs[0]->data, no, 0.1), eq = max_rel(grads[1][0], grads[0][0], nq, 0.1),
           ek = max_rel(grads[1][1], grads[0][1], nk, 0.1), ev = max_rel(grads[1][2], grads[0][2], nv, 0.1);
    print_message("chunked %dx%d Lq %d Lk %d blocks %dx%d%s: max |diff|/(0.1 + |ref|): out %.2e dq %.2e dk %.2e dv %.2e\n", B, H,
                  Lq, Lk, bq, bk, strided ? " (strided)" : "", ef, eq, ek, ev);
    check_close(outs[1]->data, outs[0]->data, no, 1e-6, 1e-5, "chunked forward");
    check_close(grads[1][0], grads[0][0], nq, 1e-6, 1e-5, "chunked dq");
    check_close(grads[1][1], grads[0][1], nk, 1e-6, 1e-5, "chunked dk");
    check_close(grads[1][2], grads[0][2], nv, 1e-6, 1e-5, "chunked dv");
    t_arena_release(mark);
}

static void test_chunked_attention_equals_unchunked(void **state) {
    (void)state;
    attention_case(2, 3, 70, 90, 16, 8, 16, 32, false);    /* 5 query blocks x 3 key blocks, ragged ends */
    attention_case(1, 2, 200, 130, 32, 32, 64, 50, true);  /* strided views, like CrossAttention's heads */
    attention_case(2, 1, 9, 300, 8, 4, 128, 256, false);   /* one query block, two key blocks */
}

/* The U-Net with every parameter random, forward at 128x160 (H/8: 320 tokens > one 128x256 block) with the
 * chunked self-attention forced on and off. */
static void test_chunked_attention_in_unet(void **state) {
    (void)state;
    size_t mark = t_arena_mark();
    bool grad = t_set_grad_enabled(false);
    int B = 1, H = 128, W = 160, E = ctx_cfg.context_dim;
    Tensor *x = t_new(T_SHAPE(B, 3, H, W)), *mu = t_new(T_SHAPE(B, 3, H, W));
    Tensor *d = t_new(T_SHAPE(B, E)), *c = t_new(T_SHAPE(B, E));
    fill_uniform(x, 1, 0, 1), fill_uniform(mu, 2, 0, 1), fill_uniform(d, 3, -1, 1), fill_uniform(c, 4, -1, 1);
    float time = 37.0f;
    int64_t prev = t_attention_set_chunk_min(INT64_MAX);
    Tensor *a = unet_forward(&unet, x, mu, &time, d, c);
    t_attention_set_chunk_min(1);
    Tensor *b = unet_forward(&unet, x, mu, &time, d, c);
    t_attention_set_chunk_min(prev);
    assert_non_null(a);
    assert_non_null(b);
    double diff = 0, mag = 0;
    for (int64_t i = 0; i < t_numel(a); i++) {
        double e = fabs((double)a->data[i] - b->data[i]);
        diff = worst_of(diff, e), mag = worst_of(mag, fabs(a->data[i]));
    }
    print_message("U-Net 128x160, chunked vs unchunked self-attention: max |diff| %.2e (outputs up to %.2f)\n", diff, mag);
    assert_true(diff > 0 || mag > 0);
    check_close(b->data, a->data, t_numel(a), 1e-5 * mag, 1e-5, "U-Net with chunked attention");
    t_set_grad_enabled(grad);
    t_arena_release(mark);
}


/* ---- the sampler ------------------------------------------------------------------------------------------- */

static void test_tile_layout(void **state) {
    (void)state;
    int starts[64];
    assert_int_equal(restore_tile_starts(37, 64, 16, starts, 64), 1);
    assert_int_equal(starts[0], 0);
    assert_int_equal(restore_tile_starts(100, 50, 50, starts, 64), -1);
    for (int size = 65; size < 700; size += 37)
        for (int tile = 32; tile < size; tile += 48) {
            int ov = tile / 4, n = restore_tile_starts(size, tile, ov, starts, 64);
            assert_true(n >= 2 && n <= 64);
            assert_int_equal(starts[0], 0);
            assert_int_equal(starts[n - 1], size - tile);   /* the last tile ends at the border */
            for (int i = 1; i < n; i++) assert_true(starts[i - 1] + tile - starts[i] >= ov);   /* overlap kept */
            assert_true((n - 1) * (tile - ov) < size - ov);   /* and no more tiles than needed */
        }
    /* weights along one axis: tiles [0, 64) and [32, 96) overlap by 32 px; with a 16 px fade the first tile's
     * weight is 1 up to 39, falls over 40..55 and is 0 from 56 (8 px from its edge); the second's mirrors it */
    for (int x = 0; x < 96; x++) {
        float a = x < 64 ? restore_blend_weight(x, 64, 16, 0, 32) : 0.0f;
        float b = x >= 32 ? restore_blend_weight(x - 32, 64, 16, 32, 0) : 0.0f;
        assert_true(a >= 0.0f && a <= 1.0f && b >= 0.0f && b <= 1.0f);
        assert_true(fabsf(a + b - 1.0f) < 1e-6f);   /* a partition of unity */
        if (x < 40) assert_true(a == 1.0f);
        if (x >= 56) assert_true(a == 0.0f);
        if (x > 0 && x < 64) assert_true(fabsf(a - restore_blend_weight(x - 1, 64, 16, 0, 32)) < 0.11f);   /* smooth */
    }
    for (int i = 0; i < 64; i++) assert_true(restore_blend_weight(i, 64, 16, 0, 0) == 1.0f);   /* no neighbours */
}

static void test_noise_counter(void **state) {
    (void)state;
    double sum = 0, sq = 0;
    int n = 0, same = 0;
    for (int y = 0; y < 200; y++)
        for (int x = 0; x < 200; x++) {
            float z = restore_noise(5, 3, 1, y, x);
            assert_true(isfinite(z));
            assert_true(z == restore_noise(5, 3, 1, y, x));   /* a pure function of its arguments */
            same += z == restore_noise(5, 4, 1, y, x) || z == restore_noise(6, 3, 1, y, x) ||
                    z == restore_noise(5, 3, 2, y, x);
            sum += z, sq += (double)z * z, n++;
        }
    double mean = sum / n, var = sq / n - mean * mean;
    print_message("counter noise: mean %.4f variance %.4f over %d draws\n", mean, var, n);
    assert_true(fabs(mean) < 0.02 && fabs(var - 1.0) < 0.03);
    assert_true(same < 3);
}

/* An LQ image [3, h, w] from synth(), its embeddings and an output buffer. */
typedef struct {
    float *lq, *out, emb[2][16];
    int h, w;
} TestImage;

static void make_image(TestImage *t, int w, int h, uint64_t seed) {
    Image im;
    synth(&im, w, h, seed);
    t->h = h, t->w = w;
    size_t hw = (size_t)h * w;
    t->lq = malloc(sizeof(float) * hw * 3);
    t->out = malloc(sizeof(float) * hw * 3);
    assert_non_null(t->lq);
    assert_non_null(t->out);
    for (size_t p = 0; p < hw; p++)
        for (int c = 0; c < 3; c++) t->lq[c * hw + p] = im.px[p * 3 + c];
    for (int k = 0; k < 16; k++) t->emb[0][k] = sinf((float)(seed + k)), t->emb[1][k] = cosf((float)(seed * 3 + k));
    image_free(&im);
}

static RestoreImage as_restore(TestImage *t) {
    return (RestoreImage){.lq = t->lq, .h = t->h, .w = t->w, .degra = t->emb[0], .content = t->emb[1], .out = t->out};
}

static void run_restore_with(const IrSde *s, TestImage *ims, int n, int tile, int overlap, IrSdeSampleMode mode) {
    RestoreImage r[4];
    for (int i = 0; i < n; i++) r[i] = as_restore(&ims[i]);
    RestoreOptions o = restore_options_default();
    o.seed = 9, o.tile = tile, o.overlap = overlap, o.mode = mode;
    if (restore_images(s, &unet, r, n, &o)) fail_msg("%s", t_errmsg());
}

static void run_restore(TestImage *ims, int n, int tile, int overlap, IrSdeSampleMode mode) {
    run_restore_with(&sde, ims, n, tile, overlap, mode);
}

/* z[c, y, x] = restore_noise(seed 9, tag, c, y, x) over a whole [3, h, w] image */
static void counter_noise(float *z, int tag, int h, int w) {
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) z[((size_t)c * h + y) * w + x] = restore_noise(9, tag, c, y, x);
}

/* The untiled sampler is the official loop (reference §4.5) written out with irsde/sde.h and the counter
 * noise: x_T = μ + λz, then per step one U-Net call at time t·T/steps and one posterior (or SDE) step. */
static void test_restore_is_the_official_loop(void **state) {
    (void)state;
    TestImage a;
    make_image(&a, 37, 53, 6);
    int64_t n = 3 * 37 * 53;
    float *x = malloc(sizeof(float) * (size_t)n), *z = malloc(sizeof(float) * (size_t)n);
    for (int mode = 0; mode < 2; mode++) {
        run_restore(&a, 1, 0, 0, (IrSdeSampleMode)mode);
        counter_noise(z, 0, 53, 37);
        assert_int_equal(irsde_noise_state(&sde, x, a.lq, n, z, NULL), 0);
        for (int t = sde.steps; t >= 1; t--) {
            size_t mark = t_arena_mark();
            float time = irsde_time_input(&sde, t);
            bool g = t_set_grad_enabled(false);
            Tensor *eps = unet_forward(&unet, t_wrap(x, T_SHAPE(1, 3, 53, 37)), t_wrap(a.lq, T_SHAPE(1, 3, 53, 37)), &time,
                                       t_wrap(a.emb[0], T_SHAPE(1, 16)), t_wrap(a.emb[1], T_SHAPE(1, 16)));
            t_set_grad_enabled(g);
            assert_non_null(eps);
            counter_noise(z, t, 53, 37);
            if (mode == 0) assert_int_equal(irsde_posterior_step(&sde, x, x, a.lq, eps->data, &t, 1, n, z, NULL), 0);
            else assert_int_equal(irsde_sde_step(&sde, x, x, a.lq, eps->data, &t, 1, n, z, NULL), 0);
            t_arena_release(mark);
        }
        assert_memory_equal(a.out, x, sizeof(float) * (size_t)n);
    }
    free(x), free(z), free(a.lq), free(a.out);
}

/* Same outputs with 1 and 2 threads (3 steps of each mode), and alone or batched with another image. */
static void test_restore_deterministic(void **state) {
    (void)state;
    TestImage a, b;
    make_image(&a, 37, 53, 1);
    make_image(&b, 37, 53, 2);
    size_t n = (size_t)3 * 37 * 53;
    float *ref = malloc(sizeof(float) * n);
    IrSde short_sde;
    IrSdeOptions so = irsde_options_default();
    so.sample_T = 3;
    assert_int_equal(irsde_init(&short_sde, &so), 0);
    for (int mode = 0; mode < 2; mode++) {
        run_restore_with(&short_sde, &a, 1, 0, 0, (IrSdeSampleMode)mode);
        memcpy(ref, a.out, sizeof(float) * n);
        t_set_threads(2);
        run_restore_with(&short_sde, &a, 1, 0, 0, (IrSdeSampleMode)mode);
        t_set_threads(1);
        assert_memory_equal(a.out, ref, sizeof(float) * n);
        print_message("mode %s: 1 and 2 threads give identical images\n", mode ? "sde" : "posterior");
        double moved = 0;
        for (size_t i = 0; i < n; i++) moved = worst_of(moved, fabs((double)ref[i] - a.lq[i]));
        assert_true(moved > 1e-3);   /* the sampler changed the image */
    }
    /* one U-Net batch of two 37x53 images: the same noise, but the convolutions' GEMMs are split by batch
     * size, so the sums differ in the last bits (and the sampler amplifies them) */
    run_restore(&a, 1, 0, 0, IRSDE_SAMPLE_POSTERIOR);
    memcpy(ref, a.out, sizeof(float) * n);
    TestImage both[2] = {a, b};
    run_restore(both, 2, 0, 0, IRSDE_SAMPLE_POSTERIOR);
    double worst = 0, mag = 0;
    for (size_t i = 0; i < n; i++) worst = worst_of(worst, fabs((double)both[0].out[i] - ref[i])), mag = worst_of(mag, fabs(ref[i]));
    print_message("batched with another image: max |diff| %.2e, values up to %.1f\n", worst, mag);
    assert_true(worst <= 1e-6 * mag);
    irsde_free(&short_sde);
    free(ref);
    free(a.lq), free(a.out), free(b.lq), free(b.out);
}

/* Where a coordinate lies relative to the tiles along one axis: 2 within 3 px of an inner tile edge, 1 in the
 * cross-fade band of an overlap (its middle overlap/2 px), 0 elsewhere. */
static int zone_of(int v, const int *starts, int n, int tile, int overlap) {
    int z = 0;
    for (int i = 0; i < n; i++) {
        if ((i > 0 && abs(v - starts[i]) <= 3) || (i < n - 1 && abs(v - (starts[i] + tile - 1)) <= 3)) return 2;
        if (i < n - 1) {
            int V = starts[i] + tile - starts[i + 1], f = overlap / 2 < V ? overlap / 2 : V, lo = starts[i + 1] + (V - f) / 2;
            if (v >= lo && v < lo + f) z = 1;
        }
    }
    return z;
}

/* Tiled (64 px tiles, overlap 32: 3x2 tiles) against untiled restoration of a 128x96 image. */
static void test_tiled_equals_untiled(void **state) {
    (void)state;
    TestImage t;
    int w = 128, h = 96, tile = 64, ov = 32;
    make_image(&t, w, h, 5);
    size_t hw = (size_t)h * w;
    float *whole = malloc(sizeof(float) * hw * 3);
    run_restore(&t, 1, 0, 0, IRSDE_SAMPLE_POSTERIOR);
    memcpy(whole, t.out, sizeof(float) * hw * 3);
    run_restore(&t, 1, tile, ov, IRSDE_SAMPLE_POSTERIOR);
    int ys[16], xs[16], ny = restore_tile_starts(h, tile, ov, ys, 16), nx = restore_tile_starts(w, tile, ov, xs, 16);
    assert_int_equal(nx, 3);
    assert_int_equal(ny, 2);
    /* per zone: mean |tiled - untiled| and mean |horizontal step of tiled - that of untiled| (a seam is a step) */
    double diff[3] = {0}, step[3] = {0}, change = 0, worst = 0;
    int64_t nd[3] = {0}, ns[3] = {0};
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = (size_t)c * hw + (size_t)y * w + x;
                int zy = zone_of(y, ys, ny, tile, ov), zx = zone_of(x, xs, nx, tile, ov), z = zy > zx ? zy : zx;
                double d = fabs((double)t.out[i] - whole[i]);
                worst = worst_of(worst, d);
                change += fabs((double)whole[i] - t.lq[i]);
                diff[z] += d, nd[z]++;
                if (x + 1 < w) {
                    int zs = zone_of(x + 1, xs, nx, tile, ov) > zx ? zone_of(x + 1, xs, nx, tile, ov) : zx;
                    zs = zs > zy ? zs : zy;
                    step[zs] += fabs((double)(t.out[i + 1] - t.out[i]) - (whole[i + 1] - whole[i])), ns[zs]++;
                }
            }
    change /= (double)hw * 3;
    for (int z = 0; z < 3; z++) diff[z] /= (double)nd[z], step[z] /= (double)ns[z];
    print_message("tiled (%dx%d tiles of %d, overlap %d) vs untiled %dx%d: max |diff| %.5f, mean |diff| at tile edges "
                  "%.6f, in the cross-fade bands %.6f, elsewhere %.6f; step differences %.6f / %.6f / %.6f; the "
                  "sampler moved pixels by %.3f on average\n", nx, ny, tile, ov, w, h, worst, diff[2], diff[1], diff[0],
                  step[2], step[1], step[0], change);
    /* tolerance: 1e-3 of the sampler's mean change at every pixel (measured: 2.4e-4 at the worst pixel, 2.8e-5 on
     * average); tile edges no worse than elsewhere (measured 0.91x, steps 0.84x); the cross-fade bands within 3x
     * (measured 1.25x, steps 1.9x) */
    assert_true(worst <= 1e-3 * change);
    assert_true(diff[2] <= 1.5 * diff[0]);   /* no seam where tiles end */
    assert_true(step[2] <= 1.5 * step[0]);
    assert_true(diff[1] <= 3.0 * diff[0]);   /* the cross-fade bands stay close too */
    assert_true(step[1] <= 3.0 * step[0]);
    free(whole), free(t.lq), free(t.out);
}

/* ---- the CLI --------------------------------------------------------------------------------------------- */

/* Runs `<env> daclip <args>` (args: printf format; paths in the test folder have no spaces) with stdout and
 * stderr captured into out_text / err_text. Returns the exit status. */
static int run_cli(const char *env, const char *fmt, ...) {
    char args[4096], cmd[12000], out_path[1100], err_path[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "%s %s %s <%s >%s 2>%s", env ? env : "", daclip_bin, args, "/dev/null", out_path, err_path);
    int status = system(cmd);
    const char *paths[2] = {out_path, err_path};
    char *bufs[2] = {out_text, err_text};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(paths[k], "r");
        size_t n = f ? fread(bufs[k], 1, sizeof out_text - 1, f) : 0;
        bufs[k][n] = 0;
        if (f) fclose(f);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void expect_size(const char *path, int w, int h) {
    Image im;
    if (image_load(path, &im)) fail_msg("%s", data_error());
    assert_int_equal(im.w, w);
    assert_int_equal(im.h, h);
    image_free(&im);
}

/* The whole file, malloc'd, or NULL. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *n = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void mkdirs(const char *fmt, ...) {
    char path[1300], cmd[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", path);
    assert_int_equal(system(cmd), 0);
}

/* PNG and JPEG in, PNG and JPEG out, odd sizes, a folder and a file argument, tiles, 1 vs 2 threads. */
static void test_cli_restore(void **state) {
    (void)state;
    char p[1300], q[1300];
    mkdirs("%s/in", dir);
    snprintf(p, sizeof p, "%s/in/a.png", dir), save_synth(p, 37, 53, 1);
    snprintf(p, sizeof p, "%s/in/b.jpg", dir), save_synth(p, 40, 30, 2);
    snprintf(p, sizeof p, "%s/c.png", dir), save_synth(p, 70, 50, 3);
    int rc = run_cli(ONE_THREAD, "restore --daclip %s --model %s %s/in %s/c.png --out %s/o1 --steps 4", daclip_path,
                     unet_path, dir, dir, dir);
    print_message("%s%s", out_text, err_text);
    assert_int_equal(rc, 0);
    /* DA-CLIP's verdict: a header and one line per image with a name and a probability */
    assert_non_null(strstr(out_text, "degradation"));
    assert_non_null(strstr(out_text, "in/a.png"));
    assert_non_null(strstr(out_text, "in/b.jpg"));
    assert_non_null(strstr(err_text, "restored 3 of 3 images"));
    snprintf(p, sizeof p, "%s/o1/a.png", dir), expect_size(p, 37, 53);
    snprintf(p, sizeof p, "%s/o1/b.png", dir), expect_size(p, 40, 30);
    snprintf(p, sizeof p, "%s/o1/c.png", dir), expect_size(p, 70, 50);
    /* 2 threads: the same files, byte for byte */
    assert_int_equal(run_cli("DACLIP_THREADS=2", "restore --daclip %s --model %s %s/in %s/c.png --out %s/o2 --steps 4",
                             daclip_path, unet_path, dir, dir, dir), 0);
    const char *names[3] = {"a.png", "b.png", "c.png"};
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/o1/%s", dir, names[k]), snprintf(q, sizeof q, "%s/o2/%s", dir, names[k]);
        assert_true(same_file(p, q));
    }
    /* JPEG out; the 70x50 image in 32 px tiles (3x2 tiles) still comes back 70x50 */
    assert_int_equal(run_cli(ONE_THREAD, "restore --daclip %s --model %s %s/c.png %s/in/a.png --out %s/o3 --steps 2 --ext jpg "
                                   "--tile 32 --overlap 8 --mode sde --seed 3", daclip_path, unet_path, dir, dir, dir), 0);
    snprintf(p, sizeof p, "%s/o3/c.jpg", dir);
    size_t n = 0;
    unsigned char *bytes = slurp(p, &n);
    assert_non_null(bytes);
    assert_true(n > 3 && bytes[0] == 0xFF && bytes[1] == 0xD8);
    free(bytes);
    expect_size(p, 70, 50);
    snprintf(p, sizeof p, "%s/o3/a.jpg", dir), expect_size(p, 37, 53);
}

static void test_cli_restore_models(void **state) {
    (void)state;
    char p[1300];
    snprintf(p, sizeof p, "%s/d.png", dir), save_synth(p, 37, 53, 4);
    /* a U-Net made for 32-wide embeddings with a 16-wide DA-CLIP */
    assert_int_equal(run_cli(ONE_THREAD, "restore --daclip %s --model %s %s --out %s/o4", daclip_path, wide_path, p, dir), 1);
    print_message("%s", err_text);
    assert_non_null(strstr(err_text, "context_dim 32"));
    assert_non_null(strstr(err_text, "16-wide"));
    /* a DA-CLIP-conditioned U-Net without --daclip */
    assert_int_equal(run_cli(ONE_THREAD, "restore --model %s %s --out %s/o4", unet_path, p, dir), 1);
    assert_non_null(strstr(err_text, "--daclip"));
    /* a U-Net without contexts (train-ir --no-daclip) needs none: the default 100 steps */
    assert_int_equal(run_cli(ONE_THREAD, "restore --model %s %s --out %s/o5", plain_path, p, dir), 0);
    assert_non_null(strstr(err_text, "100 steps"));
    snprintf(p, sizeof p, "%s/o5/d.png", dir), expect_size(p, 37, 53);
    /* an unreadable image among good ones: reported, the others written, exit status 1 */
    char bad[1300];
    snprintf(bad, sizeof bad, "%s/broken.png", dir);
    write_text(bad, "not a png");
    snprintf(p, sizeof p, "%s/d.png", dir);
    assert_int_equal(run_cli(ONE_THREAD, "restore --model %s %s %s --out %s/o6 --steps 2", plain_path, bad, p, dir), 1);
    assert_non_null(strstr(err_text, "broken.png"));
    snprintf(p, sizeof p, "%s/o6/d.png", dir), expect_size(p, 37, 53);
    /* restoring a folder into itself would replace its images: refused, the input untouched */
    char copy[1400];
    mkdirs("%s/self", dir);
    snprintf(copy, sizeof copy, "%s/self/d.png", dir);
    save_synth(copy, 37, 53, 4);
    assert_int_equal(run_cli(ONE_THREAD, "restore --model %s %s/self --out %s/self", plain_path, dir, dir), 1);
    assert_non_null(strstr(err_text, "would overwrite the input"));
    snprintf(p, sizeof p, "%s/d.png", dir);   /* the same picture, written before */
    assert_true(same_file(copy, p));
    /* bad options */
    assert_int_equal(run_cli(ONE_THREAD, "restore --model %s %s --out %s/o7 --mode fast", plain_path, p, dir), 2);
    assert_int_equal(run_cli(ONE_THREAD, "restore --model %s %s --out %s/o7 --ext gif", plain_path, p, dir), 2);
}

/* ---- eval-ir --------------------------------------------------------------------------------------------- */

/* ROOT/<type>/{LQ,GT}/NNNN.png: GT a synthetic photo, LQ the same with a brightness shift and noise. */
static void write_pair(const char *root, const char *type, const char *name, int w, int h, int gt_w, uint64_t seed) {
    char p[1400];
    mkdirs("%s/%s/LQ", root, type);
    mkdirs("%s/%s/GT", root, type);
    Image im;
    synth(&im, w, h, seed);
    Image gt;
    synth(&gt, gt_w, h, seed);
    snprintf(p, sizeof p, "%s/%s/GT/%s.png", root, type, name);
    assert_int_equal(image_save(p, &gt), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        im.px[i] = 0.8f * im.px[i] + 0.05f * (float)(data_hash64(seed * 977 + i) % 1000) / 1000.0f;
    snprintf(p, sizeof p, "%s/%s/LQ/%s.png", root, type, name);
    assert_int_equal(image_save(p, &im), 0);
    image_free(&im), image_free(&gt);
}

typedef struct {
    char type[64], image[1300], restored[1300];
    double v[8];   /* lq psnr ssim psnr_y ssim_y, then the restored image's */
    int count;
} CsvRow;

/* Reads metrics.csv of eval-ir (fields without commas; the paths are quoted). Returns the row count. */
static int read_eval_csv(const char *path, CsvRow *rows, int max) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    assert_non_null(fgets(line, sizeof line, f));   /* header */
    while (n < max && fgets(line, sizeof line, f)) {
        char *field[16];
        int k = 0;
        for (char *c = line; k < 16 && *c && *c != '\n';) {
            if (*c == '"') {
                field[k++] = ++c;
                c = strchr(c, '"');
                *c++ = 0;
            } else {
                field[k++] = c;
                c += strcspn(c, ",\n");
                if (*c == '\n') *c = 0;
            }
            if (*c == ',') *c++ = 0;
        }
        assert_int_equal(k, 14);
        CsvRow *r = &rows[n++];
        snprintf(r->type, sizeof r->type, "%s", field[0]);
        snprintf(r->image, sizeof r->image, "%s", field[1]);
        snprintf(r->restored, sizeof r->restored, "%s", field[2]);
        for (int j = 0; j < 8; j++) r->v[j] = strtod(field[5 + j], NULL);
        r->count = atoi(field[13]);
    }
    fclose(f);
    return n;
}

static void gt_path_of(const char *lq, char *gt, size_t n) {
    snprintf(gt, n, "%s", lq);
    char *at = strstr(gt, "/LQ/");
    assert_non_null(at);
    memcpy(at, "/GT/", 4);
}

/* Every image row of metrics.csv equals metrics_compute on the files; the mean rows equal the means. */
static void check_csv_against_files(const CsvRow *rows, int n) {
    double sum[8] = {0};
    int images = 0;
    for (int i = 0; i < n; i++) {
        const CsvRow *r = &rows[i];
        if (!strcmp(r->image, "mean")) {
            if (strcmp(r->type, "all")) continue;
            assert_int_equal(r->count, images);
            for (int j = 0; j < 8; j++) assert_true(fabs(r->v[j] - sum[j] / images) < 2e-6);
            continue;
        }
        char gt_path[1300];
        gt_path_of(r->image, gt_path, sizeof gt_path);
        Image gt, lq, out;
        Metrics a, b;
        assert_int_equal(image_load(gt_path, &gt), 0);
        assert_int_equal(image_load(r->image, &lq), 0);
        assert_int_equal(image_load(r->restored, &out), 0);
        assert_int_equal(metrics_compute(&gt, &lq, METRICS_DEFAULT_CROP, &a), 0);
        assert_int_equal(metrics_compute(&gt, &out, METRICS_DEFAULT_CROP, &b), 0);
        const double want[8] = {a.psnr, a.ssim, a.psnr_y, a.ssim_y, b.psnr, b.ssim, b.psnr_y, b.ssim_y};
        for (int j = 0; j < 8; j++) {
            assert_true(fabs(r->v[j] - want[j]) <= 1e-6);   /* printed with 6 decimals */
            sum[j] += want[j];
        }
        images++;
        image_free(&gt), image_free(&lq), image_free(&out);
    }
}

static void test_cli_eval_ir(void **state) {
    (void)state;
    char root[1100], out[1100], p[1400];
    snprintf(root, sizeof root, "%s/ev", dir);
    snprintf(out, sizeof out, "%s/evout", dir);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "%04d", i + 1);
        write_pair(root, "noisy", name, 48, 40, 48, 10 + (uint64_t)i);
        if (i < 2) write_pair(root, "hazy", name, 52, 44, 52, 20 + (uint64_t)i);
    }
    int rc = run_cli(ONE_THREAD, "eval-ir --daclip %s --model %s --data %s --out %s --steps 3 --limit 3", daclip_path,
                     unet_path, root, out);
    print_message("%s%s", out_text, err_text);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out_text, "noisy"));
    assert_non_null(strstr(out_text, "hazy"));
    assert_non_null(strstr(err_text, "5 to restore, 0 already restored"));   /* --limit 3: 3 noisy + 2 hazy */
    CsvRow rows[32];
    snprintf(p, sizeof p, "%s/metrics.csv", out);
    int n = read_eval_csv(p, rows, 32);
    assert_int_equal(n, 5 + 2 + 1);   /* five images, two type means, the overall mean */
    check_csv_against_files(rows, n);
    /* the same numbers from `daclip metrics` on the restored folder */
    char mcsv[1300];
    snprintf(mcsv, sizeof mcsv, "%s/noisy-metrics.csv", dir);
    snprintf(p, sizeof p, "%s/noisy/GT", root);
    mkdirs("%s/gt3", dir);
    for (int i = 1; i <= 3; i++) {   /* the first three GT images, as --limit 3 took */
        char cmd[4000];
        snprintf(cmd, sizeof cmd, "cp %s/%04d.png %s/gt3/", p, i, dir);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(run_cli(ONE_THREAD, "metrics --gt %s/gt3 --pred %s/noisy --csv %s", dir, out, mcsv), 0);
    FILE *f = fopen(mcsv, "r");
    assert_non_null(f);
    char line[4096];
    int matched = 0;
    assert_non_null(fgets(line, sizeof line, f));
    while (fgets(line, sizeof line, f)) {
        char gt[1300], pred[1300];
        double m[4];
        if (sscanf(line, "%1299[^,],%1299[^,],%lf,%lf,%lf,%lf", gt, pred, &m[0], &m[1], &m[2], &m[3]) != 6) continue;
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].restored, pred)) {
                for (int j = 0; j < 4; j++) assert_true(fabs(rows[i].v[4 + j] - m[j]) <= 1e-6);
                matched++;
            }
    }
    fclose(f);
    assert_int_equal(matched, 3);
    /* the comparison grid: a title and column header, then one row per image (3 noisy, 2 hazy) */
    snprintf(p, sizeof p, "%s/grid.png", out);
    Image grid;
    assert_int_equal(image_load(p, &grid), 0);
    assert_true(grid.w >= 3 * 192 && grid.h >= 5 * 192);
    image_free(&grid);
    /* a second run resumes: nothing restored again, the files untouched; a deleted one is restored again */
    char keep[1400];
    snprintf(p, sizeof p, "%s/noisy/0001.png", out);
    snprintf(keep, sizeof keep, "%s/kept.png", dir);
    char cmd[4000];
    snprintf(cmd, sizeof cmd, "cp %s %s && rm %s/hazy/0002.png", p, keep, out);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_cli(ONE_THREAD, "eval-ir --daclip %s --model %s --data %s --out %s --steps 3 --limit 3",
                             daclip_path, unet_path, root, out), 0);
    assert_non_null(strstr(err_text, "1 to restore, 4 already restored"));
    assert_true(same_file(p, keep));
    snprintf(p, sizeof p, "%s/hazy/0002.png", out), expect_size(p, 52, 44);
}

/* A GT/LQ count mismatch, a GT of another size, an unreadable LQ in the middle: reported, skipped, the rest
 * evaluated, exit status 1. */
static void test_cli_eval_ir_bad_input(void **state) {
    (void)state;
    char root[1100], out[1100], p[1400];
    snprintf(root, sizeof root, "%s/bad", dir);
    snprintf(out, sizeof out, "%s/badout", dir);
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "%04d", i);
        write_pair(root, "noisy", name, 40, 32, 40, 30 + (uint64_t)i);                 /* count: GT 0003 removed */
        write_pair(root, "hazy", name, 40, 32, i == 2 ? 36 : 40, 40 + (uint64_t)i);   /* size: GT 0002 36x32 */
        write_pair(root, "rainy", name, 40, 32, 40, 50 + (uint64_t)i);                 /* LQ 0002 unreadable */
    }
    snprintf(p, sizeof p, "%s/noisy/GT/0003.png", root);
    assert_int_equal(remove(p), 0);
    snprintf(p, sizeof p, "%s/rainy/LQ/0002.png", root);
    write_text(p, "\x89PNG\r\n\x1a\n truncated");
    int rc = run_cli(ONE_THREAD, "eval-ir --daclip %s --model %s --data %s --out %s --steps 2", daclip_path, unet_path,
                     root, out);
    print_message("%s%s", out_text, err_text);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err_text, "noisy: 3 LQ but 2 GT images"));
    assert_non_null(strstr(err_text, "no GT image named 0003"));
    assert_non_null(strstr(err_text, "hazy/LQ/0002.png is 40x32 but its GT"));
    assert_non_null(strstr(err_text, "rainy/LQ/0002.png"));
    CsvRow rows[32];
    snprintf(p, sizeof p, "%s/metrics.csv", out);
    int n = read_eval_csv(p, rows, 32), per[3] = {0};
    const char *types[3] = {"hazy", "noisy", "rainy"};
    for (int i = 0; i < n; i++)
        for (int t = 0; t < 3; t++)
            if (!strcmp(rows[i].type, types[t]) && strcmp(rows[i].image, "mean")) per[t]++;
    assert_int_equal(per[0], 2);   /* hazy 0001, 0003 */
    assert_int_equal(per[1], 2);   /* noisy 0001, 0002 */
    assert_int_equal(per[2], 2);   /* rainy 0001, 0003 */
    check_csv_against_files(rows, n);
    /* no type folders at all */
    assert_int_equal(run_cli(ONE_THREAD, "eval-ir --daclip %s --model %s --data %s --out %s", daclip_path, unet_path,
                             dir, out), 1);
    assert_non_null(strstr(err_text, "no <degradation>/LQ folders"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_attention_equals_unchunked),
        cmocka_unit_test(test_chunked_attention_in_unet),
        cmocka_unit_test(test_tile_layout),
        cmocka_unit_test(test_noise_counter),
        cmocka_unit_test(test_restore_is_the_official_loop),
        cmocka_unit_test(test_restore_deterministic),
        cmocka_unit_test(test_tiled_equals_untiled),
        cmocka_unit_test(test_cli_restore),
        cmocka_unit_test(test_cli_restore_models),
        cmocka_unit_test(test_cli_eval_ir),
        cmocka_unit_test(test_cli_eval_ir_bad_input),
    };
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));   /* one test while developing */
    return cmocka_run_group_tests(tests, setup, teardown);
}
