/* The U-Net's fused kernels against the composed ops they replace (forward and every gradient, at sizes
 * where their tiling really splits), finite-difference checks of the convolution kernels (the linear
 * attention's is in test_fused_ops_unet), and the
 * U-Net forward in no-grad mode (intermediates released block by block) against the taped forward.
 * Tolerances are stated per check: float32 sums in another order. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "irsde/unet.h"
#include "nn/channel_layernorm.h"
#include "nn/linear_attention.h"
#include "nn/resblock.h"
#include "tensor/conv_fused.h"
#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "tensor/ops_fused.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

static int teardown(void **state) {
    (void)state;
    t_set_grad_enabled(true);
    t_arena_reset();
    return 0;
}

/* A fresh leaf copy of x (own data, requires grad). */
static Tensor *leaf_copy(const Tensor *x) {
    Tensor *c = t_from(x->ndim, x->shape, x->data);
    t_requires_grad(c);
    return c;
}

static char seen[512];
static void record_error(const char *msg) { snprintf(seen, sizeof seen, "%s", msg); }

/* ---------------------------------------------------------------- linear attention core */

/* The composed ops the fused core replaced (module_util.LinearAttention between to_qkv and to_out). */
static Tensor *linear_attention_composed(Tensor *qkv, int heads, int dh) {
    int64_t B = qkv->shape[0], H = qkv->shape[2], W = qkv->shape[3], N = H * W;
    Tensor *r = t_reshape(qkv, T_SHAPE(B, 3, heads, dh, N));
    Tensor *q = t_select(r, 1, 0), *k = t_select(r, 1, 1), *v = t_select(r, 1, 2);
    q = t_mul_scalar(t_softmax(q, -2), 1.0f / sqrtf((float)dh));
    k = t_softmax(k, -1);
    v = t_mul_scalar(v, 1.0f / (float)N);
    Tensor *ctx = t_matmul(k, t_transpose(v, -1, -2));
    Tensor *out = t_matmul(t_transpose(ctx, -1, -2), q);
    return t_reshape(out, T_SHAPE(B, (int64_t)heads * dh, H, W));
}

/* fused vs composed: output and d qkv of sum(r ⊙ out) */
static void check_core_against_composed(int64_t B, int heads, int dh, int64_t H, int64_t W, float spread) {
    Tensor *qkv = rand_tensor(T_SHAPE(B, 3 * heads * dh, H, W), 11, -spread, spread);
    Tensor *a = leaf_copy(qkv), *b = leaf_copy(qkv);
    Tensor *ya = t_linear_attention(a, heads, dh), *yb = linear_attention_composed(b, heads, dh);
    assert_non_null(ya);
    assert_non_null(yb);
    check_close(ya->data, yb->data, t_numel(ya), 1e-6, 1e-4, "linear attention forward");
    Tensor *r = rand_tensor(ya->ndim, ya->shape, 12, -1, 1);
    t_backward(t_sum(t_mul(ya, r), 0, NULL, false));
    t_backward(t_sum(t_mul(yb, r), 0, NULL, false));
    double scale = 0.0;
    for (int64_t i = 0; i < t_numel(qkv); i++) scale = fmax(scale, fabs(b->grad[i]));
    check_close(a->grad, b->grad, t_numel(qkv), 1e-4 * scale, 1e-3, "linear attention d qkv");
}

static void test_linear_attention_core_matches_composed(void **state) {
    (void)state;
    check_core_against_composed(2, 4, 32, 50, 50, 3.0f);   /* 2500 pixels: two full tiles and a partial one */
    check_core_against_composed(1, 2, 8, 7, 9, 1.0f);      /* one partial tile */
    check_core_against_composed(1, 1, 4, 40, 40, 12.0f);   /* peaked softmaxes */
}

/* The block as one op against its composed form, x + LinearAttention(LN(x)), with every gradient. */
static void test_linear_attn_block_matches_composed(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 9);
    LinearAttnBlock blk;
    linear_attn_block_init(&blk, &ps, "attn", 48, &rng);
    for (int i = 0; i < ps.n; i++) t_fill_uniform(ps.items[i].t, &rng, -0.3f, 0.3f);   /* gains away from 1 too */
    Tensor *x = rand_tensor(T_SHAPE(2, 48, 50, 47), 31, -2, 2);   /* 2350 pixels: a full and a partial tile */
    Tensor *xa = leaf_copy(x), *xb = leaf_copy(x);
    Tensor *ya = linear_attn_block_forward(&blk, xa);
    Tensor *r = rand_tensor(4, ya->shape, 32, -1, 1);
    t_backward(t_sum(t_mul(ya, r), 0, NULL, false));
    int n = ps.n;
    float **ga = malloc(sizeof(float *) * (size_t)n);
    for (int i = 0; i < n; i++) {
        Tensor *t = ps.items[i].t;
        ga[i] = malloc(sizeof(float) * (size_t)t_numel(t));
        memcpy(ga[i], t_grad_buf(t), sizeof(float) * (size_t)t_numel(t));
    }
    params_zero_grad(&ps);
    Tensor *yb = t_add(linear_attention_forward(&blk.attn, channel_layernorm_forward(&blk.norm, xb)), xb);
    t_backward(t_sum(t_mul(yb, r), 0, NULL, false));
    check_close(ya->data, yb->data, t_numel(ya), 1e-5, 1e-4, "attention block forward");
    check_close(xa->grad, xb->grad, t_numel(x), 1e-4, 1e-3, "attention block d x");
    for (int i = 0; i < n; i++) {
        Tensor *t = ps.items[i].t;
        double scale = 0.0;
        for (int64_t j = 0; j < t_numel(t); j++) scale = fmax(scale, fabs(t->grad[j]));
        check_close(ga[i], t->grad, t_numel(t), 1e-4 * scale, 1e-3, ps.items[i].name);
        free(ga[i]);
    }
    free(ga);
    params_free(&ps);
}

static void test_linear_attention_core_bad_shape(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    seen[0] = 0;
    assert_null(t_linear_attention(t_zeros(T_SHAPE(1, 10, 2, 2)), 2, 4));   /* not 3·2·4 channels */
    assert_non_null(strstr(seen, "linear_attention"));
    assert_null(t_linear_attention(t_zeros(T_SHAPE(24, 2, 2)), 2, 4));      /* not 4-D */
    t_set_error_handler(NULL);
}

/* ---------------------------------------------------------------- fused convolution */

typedef struct {
    int64_t n, c1, c2, h, w, cout;
    int k, pad, act;
    bool up, bias;
} FusedCase;

/* The ops the fused convolution stands for: concat, nearest upsampling, conv, activation. */
static Tensor *fused_composed(const FusedCase *c, Tensor *x, Tensor *x2, Tensor *w, Tensor *b, Tensor *ss,
                              Tensor *res) {
    Tensor *in = x;
    if (x2) {
        Tensor *parts[2] = {x, x2};
        in = t_concat(2, parts, 1);
    }
    if (c->up) in = t_upsample_nearest2x(in);
    Tensor *z = t_conv2d(in, w, b, 1, c->pad);
    if (c->act == CONV_ACT_SCALE_SHIFT_SILU) return t_scale_shift_silu(z, ss);
    if (c->act == CONV_ACT_SILU_ADD) return t_silu_add(z, res);
    return z;
}

static Tensor *fused_one(const FusedCase *c, Tensor *x, Tensor *x2, Tensor *w, Tensor *b, Tensor *ss, Tensor *res) {
    ConvFusedArgs a = {.x = x, .x2 = x2, .w = w, .b = b, .stride = 1, .pad = c->pad, .upsample2x = c->up,
                       .act = c->act, .ss = ss, .res = res};
    return t_conv2d_fused(&a);
}

/* inputs: x, x2 (c2 > 0), w, b (bias), ss / res (act) */
static int fused_inputs(const FusedCase *c, uint64_t seed, Tensor **in) {
    int64_t ho = c->up ? 2 * c->h : c->h, wo = c->up ? 2 * c->w : c->w;
    ho = ho + 2 * c->pad - c->k + 1, wo = wo + 2 * c->pad - c->k + 1;
    int n = 0;
    in[n++] = rand_tensor(T_SHAPE(c->n, c->c1, c->h, c->w), seed, -1, 1);
    if (c->c2) in[n++] = rand_tensor(T_SHAPE(c->n, c->c2, c->h, c->w), seed + 1, -1, 1);
    in[n++] = rand_tensor(T_SHAPE(c->cout, c->c1 + c->c2, c->k, c->k), seed + 2, -0.5f, 0.5f);
    if (c->bias) in[n++] = rand_tensor(T_SHAPE(c->cout), seed + 3, -0.5f, 0.5f);
    if (c->act == CONV_ACT_SCALE_SHIFT_SILU) in[n++] = rand_tensor(T_SHAPE(c->n, 2 * c->cout), seed + 4, -1, 1);
    if (c->act == CONV_ACT_SILU_ADD) in[n++] = rand_tensor(T_SHAPE(c->n, c->cout, ho, wo), seed + 5, -1, 1);
    return n;
}

static Tensor *fused_call(const FusedCase *c, Tensor **in, bool composed) {
    int i = 0;
    Tensor *x = in[i++], *x2 = c->c2 ? in[i++] : NULL, *w = in[i++], *b = c->bias ? in[i++] : NULL;
    Tensor *ss = c->act == CONV_ACT_SCALE_SHIFT_SILU ? in[i] : NULL, *res = c->act == CONV_ACT_SILU_ADD ? in[i] : NULL;
    return composed ? fused_composed(c, x, x2, w, b, ss, res) : fused_one(c, x, x2, w, b, ss, res);
}

static Tensor *f_fused(Tensor **in, void *ctx) { return fused_call(ctx, in, false); }

static const FusedCase fused_cases[] = {
    {2, 5, 3, 9, 7, 6, 3, 1, CONV_ACT_SCALE_SHIFT_SILU, false, false},   /* skip concat + modulation */
    {2, 6, 0, 8, 11, 5, 3, 1, CONV_ACT_SILU_ADD, false, false},          /* SiLU + residual */
    {2, 4, 0, 5, 6, 7, 3, 1, CONV_ACT_NONE, true, true},                 /* upsample + conv + bias */
    {1, 3, 0, 7, 4, 4, 3, 1, CONV_ACT_SCALE_SHIFT_SILU, true, true},     /* upsample + modulation */
    {2, 3, 4, 6, 5, 5, 1, 0, CONV_ACT_NONE, false, false},               /* 1×1 over a concat (res_conv) */
    {2, 4, 2, 6, 6, 3, 3, 1, CONV_ACT_NONE, true, true},                 /* upsample of a concat (built) */
    {1, 3, 0, 6, 6, 4, 4, 2, CONV_ACT_SILU_ADD, false, true},            /* even kernel (no phase path) */
};

static void check_fused_against_composed(const FusedCase *c, uint64_t seed, const char *what) {
    Tensor *base[6], *a[6], *b[6];
    int n = fused_inputs(c, seed, base);
    for (int i = 0; i < n; i++) a[i] = leaf_copy(base[i]), b[i] = leaf_copy(base[i]);
    Tensor *ya = fused_call(c, a, false), *yb = fused_call(c, b, true);
    assert_non_null(ya);
    assert_non_null(yb);
    check_close(ya->data, yb->data, t_numel(ya), 1e-5, 1e-4, what);
    Tensor *r = rand_tensor(ya->ndim, ya->shape, seed + 9, -1, 1);
    t_backward(t_sum(t_mul(ya, r), 0, NULL, false));
    t_backward(t_sum(t_mul(yb, r), 0, NULL, false));
    for (int i = 0; i < n; i++) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s, gradient of input %d", what, i);
        check_close(a[i]->grad, b[i]->grad, t_numel(a[i]), 1e-4, 1e-3, msg);
    }
}

static void test_conv_fused_matches_composed(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof fused_cases / sizeof fused_cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "fused conv case %zu", i);
        check_fused_against_composed(&fused_cases[i], 100 + 10 * i, what);
    }
    /* one image per chunk: the two-input and phase paths over several chunks */
    int64_t saved = conv_implicit_chunk_bytes;
    conv_implicit_chunk_bytes = 1;
    check_fused_against_composed(&fused_cases[0], 300, "fused conv, chunked concat");
    check_fused_against_composed(&fused_cases[2], 310, "fused conv, chunked upsample");
    conv_implicit_chunk_bytes = saved;
    /* U-Net-like widths: the phase GEMMs run through the AVX-512 kernel, not the small-product path */
    const FusedCase big[] = {{1, 64, 0, 16, 16, 32, 3, 1, CONV_ACT_NONE, true, true},
                             {2, 32, 32, 24, 20, 48, 3, 1, CONV_ACT_SCALE_SHIFT_SILU, false, false}};
    check_fused_against_composed(&big[0], 400, "fused conv, 64-channel upsample");
    check_fused_against_composed(&big[1], 410, "fused conv, 64-channel concat");
}

static void test_conv_fused_gradcheck(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof fused_cases / sizeof fused_cases[0]; i++) {
        FusedCase c = fused_cases[i];
        c.h = c.h < 5 ? c.h : 5, c.w = c.w < 4 ? c.w : 4, c.cout = 3;
        Tensor *in[6];
        int n = fused_inputs(&c, 500 + 10 * i, in);
        char what[64];
        snprintf(what, sizeof what, "fused conv case %zu", i);
        assert_true(gradcheck(f_fused, n, in, &c, 1e-2f, 3e-3, 3e-3, 200, what) > 0);
    }
}

static void test_conv_fused_bad_args(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    Tensor *x = t_zeros(T_SHAPE(2, 3, 4, 4)), *w = t_zeros(T_SHAPE(5, 3, 3, 3));
    ConvFusedArgs a = {.x = x, .w = w, .stride = 1, .pad = 1, .act = CONV_ACT_SCALE_SHIFT_SILU,
                       .ss = t_zeros(T_SHAPE(2, 5))};   /* needs [2, 10] */
    seen[0] = 0;
    assert_null(t_conv2d_fused(&a));
    assert_non_null(strstr(seen, "scale_shift_silu"));
    a.act = CONV_ACT_SILU_ADD;
    a.res = t_zeros(T_SHAPE(2, 5, 4, 3));
    assert_null(t_conv2d_fused(&a));
    assert_non_null(strstr(seen, "silu_add"));
    ConvFusedArgs b = {.x = x, .x2 = t_zeros(T_SHAPE(2, 2, 4, 5)), .w = w, .stride = 1, .pad = 1};   /* sizes differ */
    assert_null(t_conv2d_fused(&b));
    assert_non_null(strstr(seen, "conv2d"));
    t_set_error_handler(NULL);
}

/* ---------------------------------------------------------------- Winograd F(2×2, 3×3) */

static ConvGeom geom3x3(int64_t N, int64_t C1, int64_t C2, int64_t Cout, int64_t H, int64_t W) {
    ConvGeom g = {.N = N, .Cin = C1 + C2, .C1 = C1, .H = H, .W = W, .Cout = Cout, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                  .ph = 1, .pw = 1, .Ho = H, .Wo = W, .K = (C1 + C2) * 9};
    return g;
}

/* The Winograd path against the implicit GEMM on the same convolution: forward with each epilogue, and
 * dX (both inputs), dW, db; odd sizes leave partial tiles. */
static void check_wino(int64_t N, int64_t C1, int64_t C2, int64_t Cout, int64_t H, int64_t W, uint64_t seed) {
    ConvGeom g = geom3x3(N, C1, C2, Cout, H, W);
    assert_true(conv_wino_ok(&g));
    if (!conv_implicit_ok(&g)) skip();   /* no AVX-512 kernel: nothing to compare with */
    const int64_t Cin = C1 + C2, HW = H * W, ny = N * Cout * HW;
    Tensor *x1 = rand_tensor(T_SHAPE(N, C1, H, W), seed, -1, 1), *x2 = rand_tensor(T_SHAPE(N, C2 ? C2 : 1, H, W), seed + 1, -1, 1);
    Tensor *w = rand_tensor(T_SHAPE(Cout, Cin, 3, 3), seed + 2, -0.05f, 0.05f), *b = rand_tensor(T_SHAPE(Cout), seed + 3, -1, 1);
    Tensor *ss = rand_tensor(T_SHAPE(N, 2 * Cout), seed + 4, -1, 1), *res = rand_tensor(T_SHAPE(N, Cout, H, W), seed + 5, -1, 1);
    Tensor *dy = rand_tensor(T_SHAPE(N, Cout, H, W), seed + 6, -1, 1);
    const float *p2 = C2 ? x2->data : NULL;
    for (int act = CONV_ACT_NONE; act <= CONV_ACT_SILU_ADD; act++) {
        Tensor *ya = t_new(T_SHAPE(N, Cout, H, W)), *yb = t_new(T_SHAPE(N, Cout, H, W));
        Tensor *pa = t_new(T_SHAPE(N, Cout, H, W)), *pb = t_new(T_SHAPE(N, Cout, H, W));
        ConvEpi ea = {.act = act, .ss = ss->data, .res = res->data, .pre = pa->data}, eb = ea;
        eb.pre = pb->data;
        conv_wino_forward(&g, x1->data, p2, w->data, b->data, ya->data, &ea);
        conv_implicit_forward(&g, x1->data, p2, w->data, b->data, yb->data, &eb);
        check_close(pa->data, pb->data, ny, 1e-5, 1e-4, "winograd z");
        check_close(ya->data, yb->data, ny, 1e-5, 1e-4, "winograd output");
    }
    Tensor *ga[4], *gb[4];
    const int64_t sizes[4] = {N * C1 * HW, N * (C2 ? C2 : 1) * HW, Cout * Cin * 9, Cout};
    for (int i = 0; i < 4; i++) {   /* gradients accumulate: start both from the same values */
        ga[i] = rand_tensor(T_SHAPE(sizes[i]), seed + 10 + i, -1, 1);
        gb[i] = t_from(T_SHAPE(sizes[i]), ga[i]->data);
    }
    conv_wino_backward(&g, x1->data, p2, w->data, dy->data, ga[0]->data, C2 ? ga[1]->data : NULL, ga[2]->data,
                       ga[3]->data);
    conv_implicit_backward(&g, x1->data, p2, w->data, dy->data, gb[0]->data, C2 ? gb[1]->data : NULL, gb[2]->data,
                           gb[3]->data);
    const char *names[4] = {"winograd dx1", "winograd dx2", "winograd dw", "winograd db"};
    for (int i = 0; i < 4; i++) check_close(ga[i]->data, gb[i]->data, sizes[i], 1e-4, 1e-4, names[i]);
}

static void test_winograd_matches_implicit(void **state) {
    (void)state;
    check_wino(2, 512, 0, 512, 7, 9, 700);     /* odd: partial tiles on both edges */
    check_wino(1, 512, 256, 512, 6, 4, 710);   /* two inputs (a skip concatenation) */
    check_wino(3, 520, 0, 528, 1, 2, 720);     /* one row: every tile partial */
}

/* The blocked Winograd forward (conv_wino_blocked_forward) against the implicit GEMM, with each epilogue,
 * and bit for bit the same with 1 and 3 threads. */
static void check_wino_blocked(int64_t N, int64_t C1, int64_t C2, int64_t Cout, int64_t H, int64_t W, uint64_t seed) {
    ConvGeom g = geom3x3(N, C1, C2, Cout, H, W);
    assert_true(conv_wino_blocked_ok(&g) && conv_implicit_ok(&g));
    const int64_t Cin = C1 + C2, ny = N * Cout * H * W;
    Tensor *x1 = rand_tensor(T_SHAPE(N, C1, H, W), seed, -1, 1), *x2 = rand_tensor(T_SHAPE(N, C2 ? C2 : 1, H, W), seed + 1, -1, 1);
    Tensor *w = rand_tensor(T_SHAPE(Cout, Cin, 3, 3), seed + 2, -0.05f, 0.05f), *b = rand_tensor(T_SHAPE(Cout), seed + 3, -1, 1);
    Tensor *ss = rand_tensor(T_SHAPE(N, 2 * Cout), seed + 4, -1, 1), *res = rand_tensor(T_SHAPE(N, Cout, H, W), seed + 5, -1, 1);
    const float *p2 = C2 ? x2->data : NULL;
    const int threads = t_threads();
    for (int act = CONV_ACT_NONE; act <= CONV_ACT_SILU_ADD; act++) {
        Tensor *ya = t_new(T_SHAPE(N, Cout, H, W)), *yb = t_new(T_SHAPE(N, Cout, H, W)), *y3 = t_new(T_SHAPE(N, Cout, H, W));
        Tensor *pa = t_new(T_SHAPE(N, Cout, H, W)), *pb = t_new(T_SHAPE(N, Cout, H, W));
        ConvEpi ea = {.act = act, .ss = ss->data, .res = res->data, .pre = pa->data}, eb = ea, e3 = ea;
        eb.pre = pb->data;
        e3.pre = NULL;
        t_set_threads(1);
        conv_wino_blocked_forward(&g, x1->data, p2, w->data, b->data, ya->data, &ea);
        t_set_threads(3);
        conv_wino_blocked_forward(&g, x1->data, p2, w->data, b->data, y3->data, &e3);
        t_set_threads(threads);
        conv_implicit_forward(&g, x1->data, p2, w->data, b->data, yb->data, &eb);
        check_close(pa->data, pb->data, ny, 1e-5, 1e-4, "blocked winograd z");
        check_close(ya->data, yb->data, ny, 1e-5, 1e-4, "blocked winograd output");
        assert_memory_equal(ya->data, y3->data, sizeof(float) * (size_t)ny);
    }
}

static void test_winograd_blocked_matches_implicit(void **state) {
    (void)state;
    const char *isas[2] = {"avx512", "avx2"}, *was = t_sgemm_backend();
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        if (!t_sgemm_use(isas[i])) continue;   /* this CPU lacks it */
        ran++;
        check_wino_blocked(2, 64, 0, 64, 7, 9, 900);      /* odd: partial tiles on both edges */
        check_wino_blocked(2, 64, 0, 70, 15, 17, 910);    /* blocks span tile rows and images; Cout % 8 != 0 */
        check_wino_blocked(1, 64, 72, 136, 6, 4, 920);    /* two inputs; two chunks of output channels */
        check_wino_blocked(3, 80, 0, 64, 1, 2, 930);      /* one row: every tile partial */
        check_wino_blocked(1, 520, 200, 64, 9, 13, 940);  /* 720 input channels: two K-blocks */
    }
    assert_true(t_sgemm_use(was));
    if (!ran) skip();   /* OpenBLAS only: the blocked path needs our kernels */
}

static Tensor *f_conv3(Tensor **in, void *ctx) {
    (void)ctx;
    ConvFusedArgs a = {.x = in[0], .w = in[1], .b = in[2], .stride = 1, .pad = 1, .act = CONV_ACT_SCALE_SHIFT_SILU,
                       .ss = in[3]};
    return t_conv2d_fused(&a);
}

static void test_winograd_gradcheck(void **state) {
    (void)state;
    ConvGeom g = geom3x3(1, 512, 0, 512, 3, 3);
    assert_true(conv_wino_ok(&g));
    Tensor *in[4] = {rand_tensor(T_SHAPE(1, 512, 3, 3), 800, -1, 1), rand_tensor(T_SHAPE(512, 512, 3, 3), 801, -0.05f, 0.05f),
                     rand_tensor(T_SHAPE(512), 802, -0.5f, 0.5f), rand_tensor(T_SHAPE(1, 1024), 803, -0.5f, 0.5f)};
    assert_true(gradcheck(f_conv3, 4, in, NULL, 1e-2f, 3e-3, 3e-3, 40, "winograd conv") > 0);
}

/* ---------------------------------------------------------------- shifted windows, packed */

/* From SHIFTED_PACK_M rows on, t_sgemm_shifted packs the windows and reads A in place (alpha 1): against
 * the product on a materialised B, and bit-identical at 1 and 3 threads. */
static void test_shifted_windows_packed(void **state) {
    (void)state;
    const int64_t M = 136, N = 3 * 48 * 5 + 17, K = 600, span = 4000 + N + 64;
    float *A = malloc(sizeof(float) * (size_t)(M * K)), *src = malloc(sizeof(float) * (size_t)span);
    float *B = malloc(sizeof(float) * (size_t)(K * N)), *bias = malloc(sizeof(float) * (size_t)M);
    float *C1 = malloc(sizeof(float) * (size_t)(M * N)), *C3 = malloc(sizeof(float) * (size_t)(M * N));
    float *R = malloc(sizeof(float) * (size_t)(M * N));
    int64_t *off = malloc(sizeof(int64_t) * (size_t)K);
    Tensor *ta = t_wrap(A, T_SHAPE(M * K)), *ts = t_wrap(src, T_SHAPE(span)), *tb = t_wrap(bias, T_SHAPE(M));
    fill_uniform(ta, 1, -1, 1);
    fill_uniform(ts, 2, -1, 1);
    fill_uniform(tb, 3, -1, 1);
    for (int64_t k = 0; k < K; k++) off[k] = (k * 2654435761u) % 4000;
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) B[k * N + j] = src[off[k] + j];
    for (int alpha1 = 0; alpha1 < 2; alpha1++) {
        float alpha = alpha1 ? 1.0f : 0.5f;
        t_sgemm_bias(false, false, M, N, K, alpha, A, K, B, N, 0.0f, R, N, bias, NULL);
        int prev = t_threads();
        t_set_threads(1);
        assert_true(t_sgemm_shifted(false, M, N, K, alpha, A, K, src, off, 0.0f, C1, N, bias));
        t_set_threads(3);
        assert_true(t_sgemm_shifted(false, M, N, K, alpha, A, K, src, off, 0.0f, C3, N, bias));
        t_set_threads(prev);
        check_close(C1, R, M * N, 1e-4, 1e-4, "packed shifted windows vs dense");
        assert_memory_equal(C1, C3, sizeof(float) * (size_t)(M * N));
    }
    free(A), free(src), free(B), free(bias), free(C1), free(C3), free(R), free(off);
}

/* ---------------------------------------------------------------- the U-Net without a tape */

static void test_unet_nograd_equals_taped(void **state) {
    (void)state;
    UNetConfig cfg;
    assert_int_equal(unet_config_preset("small", &cfg), 0);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 3);
    ConditionalUNet u;
    assert_int_equal(unet_init(&u, &ps, "", &cfg, &rng), 0);
    /* proj_out starts at zero: give the SpatialTransformers a real contribution */
    for (int i = 0; i < ps.n; i++)
        if (strstr(ps.items[i].name, "proj_out")) t_fill_uniform(ps.items[i].t, &rng, -0.1f, 0.1f);
    const int64_t B = 2, H = 37, W = 53;   /* odd sizes: reflect padding and the crop */
    Tensor *xt = rand_tensor(T_SHAPE(B, 3, H, W), 21, -1, 1), *lq = rand_tensor(T_SHAPE(B, 3, H, W), 22, 0, 1);
    Tensor *d = rand_tensor(T_SHAPE(B, 512), 23, -0.2f, 0.2f), *c = rand_tensor(T_SHAPE(B, 512), 24, -0.2f, 0.2f);
    float time[2] = {17.0f, 80.0f};
    Tensor *taped = unet_forward(&u, xt, lq, time, d, c);
    assert_non_null(taped);
    size_t before = t_arena_used();
    t_set_grad_enabled(false);
    size_t mark = t_arena_mark();
    Tensor *free_run = unet_forward(&u, xt, lq, time, d, c);
    assert_non_null(free_run);
    assert_int_equal(free_run->shape[2], H);
    assert_int_equal(free_run->shape[3], W);
    /* the same kernels in the same order: equal, not just close */
    check_close(free_run->data, taped->data, t_numel(taped), 0.0, 0.0, "no-grad U-Net vs taped");
    /* what stays after the call is the result (plus headers), not the intermediates */
    assert_true(t_arena_used() - mark < (size_t)t_numel(free_run) * sizeof(float) + 4096);
    (void)before;
    t_set_grad_enabled(true);
    params_free(&ps);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_linear_attention_core_matches_composed, teardown),
        cmocka_unit_test_teardown(test_linear_attention_core_bad_shape, teardown),
        cmocka_unit_test_teardown(test_linear_attn_block_matches_composed, teardown),
        cmocka_unit_test_teardown(test_conv_fused_matches_composed, teardown),
        cmocka_unit_test_teardown(test_conv_fused_gradcheck, teardown),
        cmocka_unit_test_teardown(test_conv_fused_bad_args, teardown),
        cmocka_unit_test_teardown(test_winograd_matches_implicit, teardown),
        cmocka_unit_test_teardown(test_winograd_gradcheck, teardown),
        cmocka_unit_test_teardown(test_winograd_blocked_matches_implicit, teardown),
        cmocka_unit_test_teardown(test_shifted_windows_packed, teardown),
        cmocka_unit_test_teardown(test_unet_nograd_equals_taped, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
