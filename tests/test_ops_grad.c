/* Finite-difference gradient checks for every differentiable op in tensor/ops.h and the views in
 * tensor/tensor.h (except the norm/conv/resampling ops, checked in their own test file), on random
 * shapes with broadcasting and non-contiguous (permuted / sliced) inputs. L = sum(r * f(x)) with r
 * random; central differences with eps = 1e-2 in float32, so tolerances are a few 1e-3. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

#define EPS 1e-2f
#define TOL 3e-3

/* Moves every element at least `gap` away from `point` (kinks of abs/relu/clamp, finite differences). */
static Tensor *away_from(Tensor *t, float point, float gap) {
    for (int64_t i = 0; i < t_numel(t); i++) {
        float d = t->data[i] - point;
        t->data[i] = point + (d >= 0 ? d + gap : d - gap);
    }
    return t;
}

/* Distinct values spaced 0.1 apart in a scrambled order (max: no near-ties). */
static Tensor *distinct(int ndim, const int64_t *shape, uint64_t seed) {
    Tensor *t = t_new(ndim, shape);
    int64_t n = t_numel(t);
    for (int64_t i = 0; i < n; i++) t->data[i] = 0.1f * (float)((i * 7 + (int64_t)seed) % n) - 0.05f * (float)n;
    return t;
}

/* ---------------------------------------------------------------- elementwise binary */

typedef struct {
    int op, strided;
} BinCtx;

static Tensor *f_binary(Tensor **in, void *ctx) {
    BinCtx *c = ctx;
    Tensor *a = in[0], *b = in[1];
    if (c->strided) {
        a = t_slice(t_transpose(a, 0, 1), 1, 1, 4);   /* [5,6,3]^T01 -> [6,5,3] -> [6,3,3] */
        b = t_transpose(b, -1, -2);                   /* [3,1] -> [1,3] */
    }
    switch (c->op) {
    case 0: return t_add(a, b);
    case 1: return t_sub(a, b);
    case 2: return t_mul(a, b);
    case 3: return t_div(a, b);
    default: return t_axpby(a, 0.5f, b, -2.0f);
    }
}

static void test_binary_grad(void **state) {
    (void)state;
    static const char *names[] = {"add", "sub", "mul", "div", "axpby"};
    /* a few broadcasting patterns: trailing, middle singleton, leading rank, scalar-shaped */
    const int64_t sa[][3] = {{3, 4, 5}, {3, 1, 5}, {2, 3, 4}, {4, 5, 1}};
    const int64_t sb[][3] = {{5, 0, 0}, {4, 1, 0}, {1, 1, 1}, {1, 3, 0}};
    const int ra[] = {3, 3, 3, 3}, rb[] = {1, 2, 3, 2};
    for (int op = 0; op < 5; op++) {
        for (int s = 0; s < 4; s++) {
            BinCtx c = {op, 0};
            Tensor *in[2] = {rand_tensor(ra[s], sa[s], 3 + (uint64_t)s, -1, 1), rand_tensor(rb[s], sb[s], 7 + (uint64_t)s, 0.5f, 2)};
            assert_true(gradcheck(f_binary, 2, in, &c, EPS, TOL, TOL, 300, names[op]) > 0);
        }
        BinCtx c = {op, 1};
        Tensor *in[2] = {rand_tensor(T_SHAPE(5, 6, 3), 21, -1, 1), rand_tensor(T_SHAPE(3, 1), 22, 0.5f, 2)};
        assert_true(gradcheck(f_binary, 2, in, &c, EPS, TOL, TOL, 300, names[op]) > 0);
    }
}

/* ---------------------------------------------------------------- elementwise unary */

static Tensor *u_clamp(Tensor *x) { return t_clamp(x, -0.5f, 0.5f); }
static Tensor *u_clamp_lo(Tensor *x) { return t_clamp(x, -0.5f, INFINITY); }
static Tensor *u_adds(Tensor *x) { return t_add_scalar(x, 1.5f); }
static Tensor *u_muls(Tensor *x) { return t_mul_scalar(x, -3.0f); }
static Tensor *u_pow3(Tensor *x) { return t_pow_scalar(x, 3.0f); }
static Tensor *u_pow_half(Tensor *x) { return t_pow_scalar(x, 0.5f); }

typedef struct {
    const char *name;
    Tensor *(*fn)(Tensor *);
    float lo, hi, kink;   /* input range; kink: keep inputs 0.05 away from it (NAN: none) */
    double tol;
} UnaryCase;

static const UnaryCase unary_cases[] = {
    {"neg", t_neg, -2, 2, NAN, TOL},          {"exp", t_exp, -2, 2, NAN, TOL},
    {"log", t_log, 0.5f, 3, NAN, TOL},        {"sqrt", t_sqrt, 0.5f, 3, NAN, TOL},
    {"rsqrt", t_rsqrt, 0.5f, 3, NAN, TOL},    {"abs", t_abs, -2, 2, 0, TOL},
    {"clamp", u_clamp, -2, 2, 0.5f, TOL},     {"clamp_lo", u_clamp_lo, -2, 2, -0.5f, TOL},
    {"relu", t_relu, -2, 2, 0, TOL},          {"gelu", t_gelu, -3, 3, NAN, TOL},
    {"quick_gelu", t_quick_gelu, -3, 3, NAN, TOL}, {"silu", t_silu, -3, 3, NAN, TOL},
    {"sigmoid", t_sigmoid, -3, 3, NAN, TOL},  {"tanh", t_tanh, -2, 2, NAN, TOL},
    {"add_scalar", u_adds, -2, 2, NAN, TOL},  {"mul_scalar", u_muls, -2, 2, NAN, TOL},
    {"pow_scalar 3", u_pow3, -2, 2, NAN, 1e-2}, {"pow_scalar 0.5", u_pow_half, 0.5f, 3, NAN, TOL},
};

typedef struct {
    const UnaryCase *u;
    int strided;
} UCtx;

static Tensor *f_unary(Tensor **in, void *ctx) {
    UCtx *c = ctx;
    Tensor *x = c->strided ? t_slice(t_permute(in[0], (int[]){2, 0, 1}), 0, 1, 4) : in[0];
    return c->u->fn(x);
}

static void test_unary_grad(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof unary_cases / sizeof unary_cases[0]; i++)
        for (int strided = 0; strided < 2; strided++) {
            const UnaryCase *u = &unary_cases[i];
            Tensor *x = rand_tensor(T_SHAPE(3, 4, 5), 40 + i, u->lo, u->hi);
            /* clamp's second kink sits at -0.5 */
            if (!isnan(u->kink)) away_from(x, u->kink, 0.05f);
            if (u->fn == u_clamp) away_from(x, -0.5f, 0.05f);
            UCtx c = {u, strided};
            Tensor *in[1] = {x};
            assert_true(gradcheck(f_unary, 1, in, &c, EPS, u->tol, u->tol, 200, u->name) > 0);
        }
}

/* ---------------------------------------------------------------- reductions */

typedef struct {
    int kind;   /* 0 sum, 1 mean, 2 var, 3 var unbiased, 4 max */
    int naxes, axes[2];
    bool keepdim, strided;
} RedCtx;

static Tensor *f_reduce(Tensor **in, void *ctx) {
    RedCtx *c = ctx;
    Tensor *x = c->strided ? t_transpose(in[0], 0, 2) : in[0];
    switch (c->kind) {
    case 0: return t_sum(x, c->naxes, c->axes, c->keepdim);
    case 1: return t_mean(x, c->naxes, c->axes, c->keepdim);
    case 2: return t_var(x, c->naxes, c->axes, c->keepdim, 0);
    case 3: return t_var(x, c->naxes, c->axes, c->keepdim, 1);
    default: return t_max(x, c->axes[0], c->keepdim);
    }
}

static void test_reduce_grad(void **state) {
    (void)state;
    static const char *names[] = {"sum", "mean", "var", "var unbiased", "max"};
    const int axes_sets[][3] = {{0, 0, 0}, {1, 1, 0}, {1, -1, 0}, {2, 0, 2}};   /* naxes, axes... */
    for (int kind = 0; kind < 5; kind++)
        for (int a = 0; a < 4; a++)
            for (int keep = 0; keep < 2; keep++)
                for (int strided = 0; strided < 2; strided++) {
                    RedCtx c = {kind, axes_sets[a][0], {axes_sets[a][1], axes_sets[a][2]}, keep, strided};
                    if (kind == 4 && c.naxes != 1) continue;
                    Tensor *x = kind == 4 ? distinct(T_SHAPE(3, 4, 5), (uint64_t)a + 1) : rand_tensor(T_SHAPE(3, 4, 5), 60, -1, 1);
                    Tensor *in[1] = {x};
                    assert_true(gradcheck(f_reduce, 1, in, &c, EPS, TOL, TOL, 200, names[kind]) > 0);
                }
}

/* ---------------------------------------------------------------- matmul, linear */

typedef struct {
    int ta, tb;
} MMCtx;

static Tensor *f_matmul(Tensor **in, void *ctx) {
    MMCtx *c = ctx;
    Tensor *a = c->ta ? t_transpose(in[0], -1, -2) : in[0];
    Tensor *b = c->tb ? t_transpose(in[1], -1, -2) : in[1];
    return t_matmul(a, b);
}

static void test_matmul_grad(void **state) {
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            MMCtx c = {ta, tb};
            /* a [2,1,4,5] broadcast against b [3,5,6] on the batch axis, both directions */
            Tensor *a = ta ? rand_tensor(T_SHAPE(2, 1, 5, 4), 70, -1, 1) : rand_tensor(T_SHAPE(2, 1, 4, 5), 70, -1, 1);
            Tensor *b = tb ? rand_tensor(T_SHAPE(3, 6, 5), 71, -1, 1) : rand_tensor(T_SHAPE(3, 5, 6), 71, -1, 1);
            Tensor *in[2] = {a, b};
            assert_true(gradcheck(f_matmul, 2, in, &c, EPS, TOL, TOL, 300, "matmul") > 0);
            Tensor *in2[2] = {rand_tensor(T_SHAPE(4, 3), 72, -1, 1), rand_tensor(T_SHAPE(3, 2), 73, -1, 1)};
            MMCtx c2 = {0, 0};
            assert_true(gradcheck(f_matmul, 2, in2, &c2, EPS, TOL, TOL, 300, "matmul 2-D") > 0);
        }
}

static Tensor *f_linear(Tensor **in, void *ctx) {
    int strided = *(int *)ctx;
    Tensor *x = strided ? t_transpose(in[0], 0, 1) : in[0];
    return t_linear(x, in[1], strided ? NULL : in[2]);
}

static void test_linear_grad(void **state) {
    (void)state;
    for (int strided = 0; strided < 2; strided++) {
        Tensor *in[3] = {rand_tensor(T_SHAPE(3, 2, 7), 80, -1, 1), rand_tensor(T_SHAPE(5, 7), 81, -1, 1), rand_tensor(T_SHAPE(5), 82, -1, 1)};
        assert_true(gradcheck(f_linear, strided ? 2 : 3, in, &strided, EPS, TOL, TOL, 300, "linear") > 0);
    }
}

/* ---------------------------------------------------------------- views */

static Tensor *f_view(Tensor **in, void *ctx) {
    int k = *(int *)ctx;
    Tensor *x = in[0];   /* [2, 3, 4] */
    switch (k) {
    case 0: return t_reshape(t_transpose(x, 0, 2), T_SHAPE(4, 6));   /* copy then view */
    case 1: return t_permute(x, (int[]){1, 2, 0});
    case 2: return t_slice(t_slice(x, 2, 1, 3), 1, -2, 3);
    case 3: return t_select(t_transpose(x, 1, 2), 1, 2);
    case 4: return t_contiguous(t_permute(x, (int[]){2, 0, 1}));
    case 5: return t_squeeze(t_unsqueeze(t_slice(x, 0, 1, 2), 1), 0);
    default: return t_mul(t_slice(x, 1, 0, 2), t_slice(x, 1, 1, 3));   /* overlapping views: fan-out */
    }
}

static void test_views_grad(void **state) {
    (void)state;
    static const char *names[] = {"reshape", "permute", "slice", "select", "contiguous", "squeeze", "views fan-out"};
    for (int k = 0; k < 7; k++) {
        Tensor *in[1] = {rand_tensor(T_SHAPE(2, 3, 4), 90 + (uint64_t)k, -1, 1)};
        assert_true(gradcheck(f_view, 1, in, &k, EPS, TOL, TOL, 200, names[k]) > 0);
    }
}

/* ---------------------------------------------------------------- softmax family */

typedef struct {
    int axis, log_mode, permuted;
} SmCtx;

static Tensor *f_softmax(Tensor **in, void *ctx) {
    SmCtx *c = ctx;
    Tensor *x = c->permuted ? t_permute(in[0], (int[]){2, 0, 1}) : in[0];
    return c->log_mode ? t_log_softmax(x, c->axis) : t_softmax(x, c->axis);
}

static void test_softmax_grad(void **state) {
    (void)state;
    for (int log_mode = 0; log_mode < 2; log_mode++)
        for (int axis = -3; axis < 3; axis++)
            for (int permuted = 0; permuted < 2; permuted++) {
                SmCtx c = {axis, log_mode, permuted};
                Tensor *in[1] = {rand_tensor(T_SHAPE(3, 4, 5), 10 + (uint64_t)axis, -2, 2)};
                assert_true(gradcheck(f_softmax, 1, in, &c, EPS, TOL, TOL, 200, log_mode ? "log_softmax" : "softmax") > 0);
            }
    /* wide inner extent: more than one 64-column block */
    SmCtx c = {0, 0, 0};
    Tensor *in[1] = {rand_tensor(T_SHAPE(3, 70), 3, -2, 2)};
    assert_true(gradcheck(f_softmax, 1, in, &c, EPS, TOL, TOL, 200, "softmax wide") > 0);
    c.log_mode = 1;
    in[0] = rand_tensor(T_SHAPE(3, 70), 4, -2, 2);   /* fresh input: the tape still holds the first graph */
    assert_true(gradcheck(f_softmax, 1, in, &c, EPS, TOL, TOL, 200, "log_softmax wide") > 0);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    int fused_layout;   /* q, k, v are permuted slices of one [B, L, 3, H, D] projection */
    int use_mask;       /* causal additive mask with -inf, itself differentiable */
    int64_t B, H, Lq, Lk, D, Dv;
} AttnCtx;

static Tensor *f_attention(Tensor **in, void *ctx) {
    AttnCtx *c = ctx;
    Tensor *q, *k, *v;
    if (c->fused_layout) {
        /* in[0] = [B, L, 3, H, D] -> each [B, H, L, D] (strided: no copies) */
        int perm[4] = {0, 2, 1, 3};
        q = t_permute(t_select(in[0], 2, 0), perm);
        k = t_permute(t_select(in[0], 2, 1), perm);
        v = t_permute(t_select(in[0], 2, 2), perm);
    } else {
        q = in[0], k = in[1];
        /* v given as [B, H, Dv, Lk] and transposed: a column-major head matrix */
        v = t_transpose(in[2], 2, 3);
    }
    Tensor *mask = c->use_mask ? t_add(in[c->fused_layout ? 1 : 3], in[c->fused_layout ? 2 : 4]) : NULL;
    return t_attention(q, k, v, mask, 1.0f / sqrtf((float)c->D));
}

static Tensor *causal_mask(int64_t Lq, int64_t Lk) {
    Tensor *m = t_new(T_SHAPE(Lq, Lk));
    for (int64_t i = 0; i < Lq; i++)
        for (int64_t j = 0; j < Lk; j++) m->data[i * Lk + j] = j > i + (Lk - Lq) ? -INFINITY : 0.0f;
    return m;
}

static void test_attention_grad(void **state) {
    (void)state;
    for (int use_mask = 0; use_mask < 2; use_mask++) {
        AttnCtx c = {0, use_mask, 2, 3, 4, 5, 6, 7};
        Tensor *in[5] = {rand_tensor(T_SHAPE(2, 3, 4, 6), 1, -1, 1), rand_tensor(T_SHAPE(2, 3, 5, 6), 2, -1, 1),
                         rand_tensor(T_SHAPE(2, 3, 7, 5), 3, -1, 1), causal_mask(4, 5), rand_tensor(T_SHAPE(4, 5), 4, -1, 1)};
        /* the -inf entries get no gradient and finite differences see none (-inf + eps = -inf) */
        assert_true(gradcheck(f_attention, use_mask ? 5 : 3, in, &c, EPS, TOL, TOL, 150, "attention") > 0);
    }
    AttnCtx c = {1, 1, 2, 2, 5, 5, 4, 4};
    Tensor *in[3] = {rand_tensor(T_SHAPE(2, 5, 3, 2, 4), 5, -1, 1), causal_mask(5, 5), rand_tensor(T_SHAPE(5, 5), 6, -1, 1)};
    assert_true(gradcheck(f_attention, 3, in, &c, EPS, TOL, TOL, 150, "attention fused layout") > 0);
}

/* ---------------------------------------------------------------- shape ops */

static Tensor *f_concat(Tensor **in, void *ctx) {
    int axis = *(int *)ctx;
    /* a strided input among contiguous ones */
    Tensor *xs[3] = {in[0], t_transpose(in[1], 0, 1), in[2]};
    return t_concat(3, xs, axis);
}

static void test_concat_grad(void **state) {
    (void)state;
    int axis = 1;
    Tensor *in[3] = {rand_tensor(T_SHAPE(2, 3, 4), 100, -1, 1), rand_tensor(T_SHAPE(5, 2, 4), 101, -1, 1),
                     rand_tensor(T_SHAPE(2, 1, 4), 102, -1, 1)};
    assert_true(gradcheck(f_concat, 3, in, &axis, EPS, TOL, TOL, 200, "concat axis 1") > 0);
    axis = -1;
    Tensor *in2[3] = {rand_tensor(T_SHAPE(2, 3, 2), 103, -1, 1), rand_tensor(T_SHAPE(3, 2, 3), 104, -1, 1),
                      rand_tensor(T_SHAPE(2, 3, 1), 105, -1, 1)};
    assert_true(gradcheck(f_concat, 3, in2, &axis, EPS, TOL, TOL, 200, "concat last axis") > 0);
}

static Tensor *f_split(Tensor **in, void *ctx) {
    int chunk = *(int *)ctx;
    Tensor *p[3];
    if (chunk)
        t_chunk(in[0], 1, 3, p);   /* 7 -> 3, 3, 1 */
    else
        t_split(in[0], 1, 3, (const int64_t[]){2, 4, 1}, p);
    /* weight the pieces differently so a mixed-up piece shows */
    Tensor *a = t_mul_scalar(p[0], 2.0f), *b = t_sum(p[1], 1, (int[]){1}, true), *c = t_exp(p[2]);
    return t_concat(3, (Tensor *[]){a, b, c}, 1);
}

static void test_split_chunk_grad(void **state) {
    (void)state;
    for (int chunk = 0; chunk < 2; chunk++) {
        Tensor *in[1] = {rand_tensor(T_SHAPE(2, 7, 3), 110 + (uint64_t)chunk, -1, 1)};
        assert_true(gradcheck(f_split, 1, in, &chunk, EPS, TOL, TOL, 200, chunk ? "chunk" : "split") > 0);
    }
}

typedef struct {
    int l, r, t, b, mode;
} PadCtx;

static Tensor *f_pad(Tensor **in, void *ctx) {
    PadCtx *c = ctx;
    return t_pad2d(t_transpose(in[0], 2, 3), c->l, c->r, c->t, c->b, c->mode);
}

static void test_pad2d_grad(void **state) {
    (void)state;
    PadCtx cases[] = {{1, 2, 0, 1, T_PAD_ZERO}, {2, 1, 3, 2, T_PAD_REFLECT}, {1, 1, 1, 1, T_PAD_REFLECT}};
    for (int i = 0; i < 3; i++) {
        Tensor *in[1] = {rand_tensor(T_SHAPE(2, 2, 5, 4), 120 + (uint64_t)i, -1, 1)};   /* used as [2, 2, 4, 5] */
        assert_true(gradcheck(f_pad, 1, in, &cases[i], EPS, TOL, TOL, 200, cases[i].mode ? "pad2d reflect" : "pad2d zero") > 0);
    }
}

static const int32_t emb_ids[] = {3, 0, 3, 4, 1, 3};

static Tensor *f_embedding(Tensor **in, void *ctx) {
    (void)ctx;
    return t_reshape(t_embedding(in[0], emb_ids, 6), T_SHAPE(2, 3, 4));
}

static void test_embedding_grad(void **state) {
    (void)state;
    Tensor *in[1] = {rand_tensor(T_SHAPE(5, 4), 130, -1, 1)};
    assert_true(gradcheck(f_embedding, 1, in, NULL, EPS, TOL, TOL, 200, "embedding") > 0);
}

static Tensor *f_masked_fill(Tensor **in, void *ctx) {
    Tensor *mask = ctx;
    return t_masked_fill(t_permute(in[0], (int[]){1, 0, 2}), mask, -7.0f);
}

static Tensor *f_expand(Tensor **in, void *ctx) {
    (void)ctx;
    return t_expand(t_transpose(in[0], 1, 2), T_SHAPE(2, 4, -1, 3));   /* [1,3,1] -> [1,1,3] -> [2,4,1,3] */
}

static void test_masked_fill_expand_grad(void **state) {
    (void)state;
    Tensor *mask = t_new(T_SHAPE(4, 1));
    for (int i = 0; i < 4; i++) mask->data[i] = (float)(i % 2);
    Tensor *in[1] = {rand_tensor(T_SHAPE(4, 3, 1), 140, -1, 1)};
    assert_true(gradcheck(f_masked_fill, 1, in, mask, EPS, TOL, TOL, 200, "masked_fill") > 0);
    Tensor *in2[1] = {rand_tensor(T_SHAPE(1, 3, 1), 141, -1, 1)};
    assert_true(gradcheck(f_expand, 1, in2, NULL, EPS, TOL, TOL, 200, "expand") > 0);
}

/* ---------------------------------------------------------------- losses */

static const int32_t ce_targets[] = {2, 0, 4, 4};

static Tensor *f_loss(Tensor **in, void *ctx) {
    int kind = *(int *)ctx;
    Tensor *p = t_transpose(in[0], 0, 1);
    switch (kind) {
    case 0: return t_l1_loss(p, in[1]);
    case 1: return t_mse_loss(p, in[1]);
    default: return t_cross_entropy(p, ce_targets);
    }
}

static void test_loss_grad(void **state) {
    (void)state;
    static const char *names[] = {"l1_loss", "mse_loss", "cross_entropy"};
    for (int kind = 0; kind < 3; kind++) {
        Tensor *p = rand_tensor(T_SHAPE(5, 4), 150 + (uint64_t)kind, -2, 2), *t = rand_tensor(T_SHAPE(4, 5), 160, -2, 2);
        if (kind == 0)   /* keep |p - t| away from the kink at 0 */
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 4; j++) {
                    float d = p->data[i * 4 + j] - t->data[j * 5 + i];
                    if (fabsf(d) < 0.05f) p->data[i * 4 + j] += 0.1f;
                }
        Tensor *in[2] = {p, t};
        assert_true(gradcheck(f_loss, kind == 2 ? 1 : 2, in, &kind, EPS, TOL, TOL, 200, names[kind]) > 0);
    }
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_binary_grad, arena_teardown),
        cmocka_unit_test_teardown(test_unary_grad, arena_teardown),
        cmocka_unit_test_teardown(test_reduce_grad, arena_teardown),
        cmocka_unit_test_teardown(test_matmul_grad, arena_teardown),
        cmocka_unit_test_teardown(test_linear_grad, arena_teardown),
        cmocka_unit_test_teardown(test_views_grad, arena_teardown),
        cmocka_unit_test_teardown(test_softmax_grad, arena_teardown),
        cmocka_unit_test_teardown(test_attention_grad, arena_teardown),
        cmocka_unit_test_teardown(test_concat_grad, arena_teardown),
        cmocka_unit_test_teardown(test_split_chunk_grad, arena_teardown),
        cmocka_unit_test_teardown(test_pad2d_grad, arena_teardown),
        cmocka_unit_test_teardown(test_embedding_grad, arena_teardown),
        cmocka_unit_test_teardown(test_masked_fill_expand_grad, arena_teardown),
        cmocka_unit_test_teardown(test_loss_grad, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
