/* The fused ops of tensor/ops_fused.h called directly: finite-difference gradient checks of every input
 * (with and without the optional bias and residual), the attention input projection's three outputs sharing
 * one node, and agreement with the same computation composed from plain ops — including two backward passes
 * in one step over two uses of the same weights, which the tape must handle through recorded edges alone
 * (each pass runs exactly the nodes that lead to its root). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tensor/ops.h"
#include "tensor/ops_fused.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

#define EPS 1e-2f   /* finite-difference step and tolerance, as in test_ops_grad */
#define TOL 3e-3

/* ---------------------------------------------------------------- res + linear(x) */

static Tensor *f_linear_add(Tensor **in, void *ctx) {
    int variant = *(int *)ctx;   /* 0: bias; 1: no bias; 2: bias, x a transposed (strided) view */
    Tensor *x = variant == 2 ? t_transpose(in[0], 0, 1) : in[0];
    return t_linear_add(x, in[1], variant == 1 ? NULL : in[3], in[2]);
}

static void test_linear_add_grad(void **state) {
    (void)state;
    for (int variant = 0; variant < 3; variant++) {
        Tensor *x = variant == 2 ? rand_tensor(T_SHAPE(3, 2, 7), 1, -1, 1) : rand_tensor(T_SHAPE(2, 3, 7), 1, -1, 1);
        Tensor *in[4] = {x, rand_tensor(T_SHAPE(5, 7), 2, -1, 1), rand_tensor(T_SHAPE(2, 3, 5), 3, -1, 1), rand_tensor(T_SHAPE(5), 4, -1, 1)};
        assert_true(gradcheck(f_linear_add, variant == 1 ? 3 : 4, in, &variant, EPS, TOL, TOL, 300, "linear_add") > 0);
    }
}

/* ---------------------------------------------------------------- attention projections */

typedef struct {
    int heads;
    int64_t nq;
    int which;   /* 0..2: only q, k or v reaches the loss; 3: all three */
    int bias;
} InProjCtx;

static Tensor *flat(Tensor *t) { return t_reshape(t, T_SHAPE(-1)); }

static Tensor *f_in_proj(Tensor **in, void *ctx) {
    InProjCtx *c = ctx;
    Tensor *o[3];
    if (t_mha_in_proj(in[0], in[1], c->bias ? in[2] : NULL, c->heads, c->nq, o) != 0) return NULL;
    if (c->which < 3) return o[c->which];
    Tensor *parts[3] = {flat(o[0]), flat(o[1]), flat(o[2])};
    return t_concat(3, parts, 0);
}

static void test_mha_in_proj_grad(void **state) {
    (void)state;
    enum { B = 2, L = 5, C = 8 };
    for (int nq = L; nq >= 2; nq -= 3)   /* every token, and queries for the first two only */
        for (int which = 0; which < 4; which++)
            for (int bias = 0; bias < 2; bias++) {
                InProjCtx c = {2, nq, which, bias};
                Tensor *in[3] = {rand_tensor(T_SHAPE(B, L, C), 10, -1, 1), rand_tensor(T_SHAPE(3 * C, C), 11, -0.5f, 0.5f),
                                 rand_tensor(T_SHAPE(3 * C), 12, -0.5f, 0.5f)};
                assert_true(gradcheck(f_in_proj, bias ? 3 : 2, in, &c, EPS, TOL, TOL, 200, "mha_in_proj") > 0);
                t_arena_reset();
            }
}

/* q, k and v are outputs of one node; with no grad, or nothing needing one, there is none and no gradient. */
static void test_mha_in_proj_outputs(void **state) {
    (void)state;
    enum { B = 2, L = 4, C = 6, H = 3 };
    Tensor *x = rand_tensor(T_SHAPE(B, L, C), 20, -1, 1), *w = rand_tensor(T_SHAPE(3 * C, C), 21, -1, 1);
    Tensor *o[3];
    assert_int_equal(t_mha_in_proj(x, w, NULL, H, L, o), 0);   /* nothing requires grad */
    for (int i = 0; i < 3; i++) assert_true(o[i]->node == NULL && o[i]->grad == NULL && !o[i]->requires_grad);
    t_requires_grad(w);
    bool prev = t_set_grad_enabled(false);
    assert_int_equal(t_mha_in_proj(x, w, NULL, H, L, o), 0);
    t_set_grad_enabled(prev);
    for (int i = 0; i < 3; i++) assert_true(o[i]->node == NULL && o[i]->grad == NULL);
    size_t before = t_tape_len();
    assert_int_equal(t_mha_in_proj(x, w, NULL, H, 2, o), 0);
    assert_int_equal(t_tape_len() - before, 1);
    assert_non_null(o[0]->node);
    assert_string_equal(o[0]->node->op, "mha_in_proj");
    assert_ptr_equal(o[1]->node, o[0]->node);
    assert_ptr_equal(o[2]->node, o[0]->node);
    /* q [B, H, 2, D], k and v [B, H, L, D], each reading its own columns of one [B, L, 3C] product */
    assert_int_equal(o[0]->shape[2], 2);
    assert_int_equal(o[1]->shape[2], L);
    assert_int_equal(o[2]->shape[3], C / H);
    for (int i = 0; i < 3; i++) {
        int64_t d = 1, h = 2, l = 1, b = 1;   /* element [b, h, l, d] = row (b·L + l), column i·C + h·D + d */
        float want = 0;
        for (int k = 0; k < C; k++) want += x->data[(b * L + l) * C + k] * w->data[(i * C + h * (C / H) + d) * C + k];
        const Tensor *t = o[i];
        assert_float_close(t->data[b * t->stride[0] + h * t->stride[1] + l * t->stride[2] + d * t->stride[3]], want,
                           1e-5);
    }
}

typedef struct {
    int bias, res;
} OutProjCtx;

static Tensor *f_out_proj(Tensor **in, void *ctx) {
    OutProjCtx *c = ctx;   /* in: a, w, then b when bias, then res */
    return t_mha_out_proj(in[0], in[1], c->bias ? in[2] : NULL, c->res ? in[2 + c->bias] : NULL);
}

static void test_mha_out_proj_grad(void **state) {
    (void)state;
    enum { B = 2, H = 3, L = 4, D = 2, Co = 5 };
    for (int bias = 0; bias < 2; bias++)
        for (int res = 0; res < 2; res++) {
            OutProjCtx c = {bias, res};
            Tensor *in[4];
            int n = 0;
            in[n++] = rand_tensor(T_SHAPE(B, H, L, D), 30, -1, 1);
            in[n++] = rand_tensor(T_SHAPE(Co, H * D), 31, -1, 1);
            if (bias) in[n++] = rand_tensor(T_SHAPE(Co), 32, -1, 1);
            if (res) in[n++] = rand_tensor(T_SHAPE(B, L, Co), 33, -1, 1);
            assert_true(gradcheck(f_out_proj, n, in, &c, EPS, TOL, TOL, 300, "mha_out_proj") > 0);
        }
}

/* ---------------------------------------------------------------- MLP */

typedef struct {
    int biases, res;
} MlpCtx;

static Tensor *f_mlp(Tensor **in, void *ctx) {
    MlpCtx *c = ctx;
    /* in: x, w_fc, w_proj, then b_fc, b_proj when biases, then res */
    Tensor *bf = c->biases ? in[3] : NULL, *bp = c->biases ? in[4] : NULL, *res = c->res ? in[c->biases ? 5 : 3] : NULL;
    return t_mlp_gelu_add(in[0], in[1], bf, in[2], bp, res);
}

static void test_mlp_gelu_grad(void **state) {
    (void)state;
    enum { R = 6, C = 5, M = 12, Co = 4 };
    for (int biases = 0; biases < 2; biases++)
        for (int res = 0; res < 2; res++) {
            MlpCtx c = {biases, res};
            Tensor *in[6];
            int n = 0;
            in[n++] = rand_tensor(T_SHAPE(2, R / 2, C), 40, -1.5f, 1.5f);
            in[n++] = rand_tensor(T_SHAPE(M, C), 41, -1, 1);
            in[n++] = rand_tensor(T_SHAPE(Co, M), 42, -1, 1);
            if (biases) {
                in[n++] = rand_tensor(T_SHAPE(M), 43, -1, 1);
                in[n++] = rand_tensor(T_SHAPE(Co), 44, -1, 1);
            }
            if (res) in[n++] = rand_tensor(T_SHAPE(2, R / 2, Co), 45, -1, 1);
            assert_true(gradcheck(f_mlp, n, in, &c, EPS, TOL, TOL, 300, "mlp_gelu") > 0);
        }
}

/* ---------------------------------------------------------------- fused against composed */

enum { MB = 2, ML = 6, MC = 16, MH = 4, MD = MC / MH };

/* The weights of one self-attention layer, leaves that collect gradients. */
typedef struct {
    Tensor *w_in, *b_in, *w_out, *b_out;
} Attn;

static Attn attn_new(uint64_t seed) {
    Attn a = {rand_tensor(T_SHAPE(3 * MC, MC), seed, -0.4f, 0.4f), rand_tensor(T_SHAPE(3 * MC), seed + 1, -0.2f, 0.2f),
              rand_tensor(T_SHAPE(MC, MC), seed + 2, -0.4f, 0.4f), rand_tensor(T_SHAPE(MC), seed + 3, -0.2f, 0.2f)};
    Tensor *all[4] = {a.w_in, a.b_in, a.w_out, a.b_out};
    for (int i = 0; i < 4; i++) t_requires_grad(all[i]);
    return a;
}

/* res + self-attention(x) for the first nq tokens: the fused ops, or plain ops that make every step a node */
static Tensor *attn_forward(const Attn *a, Tensor *x, Tensor *mask, Tensor *res, int64_t nq, bool fused) {
    float scale = 1.0f / sqrtf((float)MD);
    if (fused) {
        Tensor *o[3];
        if (t_mha_in_proj(x, a->w_in, a->b_in, MH, nq, o) != 0) return NULL;
        return t_mha_out_proj(t_attention(o[0], o[1], o[2], mask, scale), a->w_out, a->b_out, res);
    }
    Tensor *qkv = t_reshape(t_linear(x, a->w_in, a->b_in), T_SHAPE(MB, ML, 3, MH, MD));
    int perm[4] = {0, 2, 1, 3};   /* [B, L, H, D] -> [B, H, L, D] */
    Tensor *q = t_slice(t_permute(t_select(qkv, 2, 0), perm), 2, 0, nq);
    Tensor *k = t_permute(t_select(qkv, 2, 1), perm), *v = t_permute(t_select(qkv, 2, 2), perm);
    Tensor *o = t_reshape(t_permute(t_attention(q, k, v, mask, scale), perm), T_SHAPE(MB, nq, MC));
    return t_add(res, t_linear(o, a->w_out, a->b_out));
}

/* Every gradient a test looks at, copied out (malloc'd, in order). */
static float *grads_of(Tensor *const *ts, int n) {
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += t_numel(ts[i]);
    float *g = malloc(sizeof(float) * (size_t)total), *p = g;
    assert_non_null(g);
    for (int i = 0; i < n; i++) {
        assert_non_null(ts[i]->grad);
        memcpy(p, ts[i]->grad, sizeof(float) * (size_t)t_numel(ts[i]));
        p += t_numel(ts[i]);
    }
    return g;
}

static int64_t numel_of(Tensor *const *ts, int n) {
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += t_numel(ts[i]);
    return total;
}

/* Fused and composed attention (causal mask, and queries for the first 2 tokens only) give the same output
 * and the same gradients for x, the residual and every weight. */
static void test_mha_fused_matches_composed(void **state) {
    (void)state;
    for (int64_t nq = ML; nq >= 2; nq -= ML - 2) {
        float *out[2], *grad[2];
        int64_t n_out = MB * nq * MC, n_grad = 0;
        for (int fused = 0; fused < 2; fused++) {
            t_arena_reset();
            Attn a = attn_new(50);
            Tensor *x = rand_tensor(T_SHAPE(MB, ML, MC), 54, -1, 1), *res = rand_tensor(T_SHAPE(MB, nq, MC), 55, -1, 1);
            Tensor *r = rand_tensor(T_SHAPE(MB, nq, MC), 56, -1, 1);
            t_requires_grad(x);
            t_requires_grad(res);
            Tensor *mask = t_new(T_SHAPE(nq, ML));
            for (int64_t i = 0; i < nq; i++)
                for (int64_t j = 0; j < ML; j++) mask->data[i * ML + j] = j > i ? -INFINITY : 0.0f;
            Tensor *y = attn_forward(&a, x, mask, res, nq, fused);
            assert_non_null(y);
            out[fused] = malloc(sizeof(float) * (size_t)n_out);
            memcpy(out[fused], y->data, sizeof(float) * (size_t)n_out);
            t_backward(t_sum(t_mul(y, r), 0, NULL, false));
            Tensor *leaves[6] = {x, res, a.w_in, a.b_in, a.w_out, a.b_out};
            n_grad = numel_of(leaves, 6);
            grad[fused] = grads_of(leaves, 6);
        }
        check_close(out[1], out[0], n_out, 1e-6, 1e-5, "fused attention output");
        check_close(grad[1], grad[0], n_grad, 1e-6, 1e-5, "fused attention gradients");
        for (int i = 0; i < 2; i++) free(out[i]), free(grad[i]);
    }
}

/* Two backward passes in one step, each from a loss over its own use of the same weights (e.g. two batches
 * before one optimizer step), sum the two losses' gradients, exactly as one pass over their sum does, fused
 * or composed. Each pass must run the whole path to its root, including the input projection that its
 * q, k and v come from, and must not replay the other pass's nodes. */
static void test_two_backwards_in_one_step(void **state) {
    (void)state;
    float *ref = NULL;
    int64_t n = 0;
    for (int run = 0; run < 4; run++) {   /* fused/composed × one pass/two passes */
        bool fused = run & 1, two = run & 2;
        t_arena_reset();
        Attn a = attn_new(60);
        Tensor *x1 = rand_tensor(T_SHAPE(MB, ML, MC), 64, -1, 1), *x2 = rand_tensor(T_SHAPE(MB, ML, MC), 65, -1, 1);
        Tensor *r1 = rand_tensor(T_SHAPE(MB, ML, MC), 66, -1, 1), *r2 = rand_tensor(T_SHAPE(MB, ML, MC), 67, -1, 1);
        Tensor *res = t_zeros(T_SHAPE(MB, ML, MC));
        t_requires_grad(x1);
        t_requires_grad(x2);
        Tensor *l1 = t_sum(t_mul(attn_forward(&a, x1, NULL, res, ML, fused), r1), 0, NULL, false);
        Tensor *l2 = t_sum(t_mul(attn_forward(&a, x2, NULL, res, ML, fused), r2), 0, NULL, false);
        if (two) {
            t_backward(l1);
            t_backward(l2);
        } else {
            t_backward(t_add(l1, l2));
        }
        Tensor *leaves[6] = {x1, x2, a.w_in, a.b_in, a.w_out, a.b_out};
        float *g = grads_of(leaves, 6);
        if (!ref) {
            ref = g;
            n = numel_of(leaves, 6);
            continue;
        }
        check_close(g, ref, n, 1e-6, 1e-5, fused ? (two ? "fused, two passes" : "fused, one pass")
                                                 : "composed, two passes");
        free(g);
    }
    free(ref);
}

/* A backward that reaches the input projection through k and v only (the queries' path is cut by a
 * detach) and one that reaches it through q alone both give the composed ops' gradients. */
static Tensor *partial_paths(const Attn *a, Tensor *x, bool fused, bool queries) {
    Tensor *o[3];
    if (fused) {
        assert_int_equal(t_mha_in_proj(x, a->w_in, a->b_in, MH, ML, o), 0);
    } else {
        Tensor *qkv = t_reshape(t_linear(x, a->w_in, a->b_in), T_SHAPE(MB, ML, 3, MH, MD));
        for (int i = 0; i < 3; i++) o[i] = t_permute(t_select(qkv, 2, i), (int[]){0, 2, 1, 3});
    }
    Tensor *q = queries ? o[0] : t_detach(o[0]), *k = queries ? t_detach(o[1]) : o[1];
    Tensor *v = queries ? t_detach(o[2]) : o[2];
    return t_attention(q, k, v, NULL, 0.5f);
}

static void test_partial_paths_to_in_proj(void **state) {
    (void)state;
    for (int queries = 0; queries < 2; queries++) {
        float *g[2];
        int64_t n = 0;
        for (int fused = 0; fused < 2; fused++) {
            t_arena_reset();
            Attn a = attn_new(70);
            Tensor *x = rand_tensor(T_SHAPE(MB, ML, MC), 74, -1, 1), *r = rand_tensor(T_SHAPE(MB, MH, ML, MD), 75, -1, 1);
            t_requires_grad(x);
            t_backward(t_sum(t_mul(partial_paths(&a, x, fused, queries), r), 0, NULL, false));
            Tensor *leaves[3] = {x, a.w_in, a.b_in};
            n = numel_of(leaves, 3);
            g[fused] = grads_of(leaves, 3);
        }
        check_close(g[1], g[0], n, 1e-6, 1e-5, queries ? "through q only" : "through k and v only");
        free(g[0]);
        free(g[1]);
    }
}

/* ---------------------------------------------------------------- out of memory */

typedef struct {
    Tensor *w_in, *b_in, *w_out, *b_out, *w_fc, *b_fc, *w_proj, *b_proj;   /* parameters: outlive the arena */
    const float *x;
} BlockCtx;

/* A transformer block's residual branches from the fused ops, recording its tape (the weights need grad). */
static Tensor *block_forward(const BlockCtx *c) {
    Tensor *x = t_from(T_SHAPE(MB, ML, MC), c->x), *o[3];
    if (!x || t_mha_in_proj(x, c->w_in, c->b_in, MH, ML, o) != 0) return NULL;
    Tensor *h = t_mha_out_proj(t_attention(o[0], o[1], o[2], NULL, 0.5f), c->w_out, c->b_out, x);
    return t_mlp_gelu_add(h, c->w_fc, c->b_fc, c->w_proj, c->b_proj, h);
}

/* Under every cap on the arena, from nothing fits to everything fits, the block either fails cleanly (NULL,
 * t_arena_failed, the arena's message) or gives the uncapped output bit for bit. */
static void test_block_under_every_cap(void **state) {
    (void)state;
    TErrorHandler prev = t_set_error_handler(NULL);   /* the default handler keeps the message and returns */
    BlockCtx c;
    Tensor **ps[8] = {&c.w_in, &c.b_in, &c.w_out, &c.b_out, &c.w_fc, &c.b_fc, &c.w_proj, &c.b_proj};
    const int64_t shapes[8][2] = {{3 * MC, MC}, {3 * MC, 0}, {MC, MC}, {MC, 0}, {4 * MC, MC}, {4 * MC, 0},
                                  {MC, 4 * MC}, {MC, 0}};
    for (int i = 0; i < 8; i++) {
        *ps[i] = shapes[i][1] ? t_param_new(T_SHAPE(shapes[i][0], shapes[i][1]), true)
                              : t_param_new(T_SHAPE(shapes[i][0]), true);
        fill_uniform(*ps[i], 80 + (uint64_t)i, -0.3f, 0.3f);
    }
    float *x = malloc(sizeof(float) * MB * ML * MC);
    assert_non_null(x);
    for (int i = 0; i < MB * ML * MC; i++) x[i] = sinf(0.37f * (float)i);
    c.x = x;
    t_arena_shutdown();
    Tensor *ref_t = block_forward(&c);
    assert_non_null(ref_t);
    float *ref = malloc(sizeof(float) * MB * ML * MC);
    memcpy(ref, ref_t->data, sizeof(float) * MB * ML * MC);
    size_t hi = t_arena_high_water() + t_arena_high_water() / 8, step = hi / 150;
    int failed = 0, ok = 0;
    for (size_t cap = step; cap <= hi; cap += step) {
        t_arena_shutdown();
        t_arena_set_limit(cap);
        Tensor *y = block_forward(&c);
        if (!y || t_arena_failed()) {
            assert_true(t_arena_failed());
            assert_non_null(strstr(t_errmsg(), "out of memory"));
            failed++;
            continue;
        }
        assert_memory_equal(y->data, ref, sizeof(float) * MB * ML * MC);
        ok++;
    }
    t_arena_set_limit(0);
    t_arena_shutdown();
    assert_true(failed > 0 && ok > 0);
    free(ref);
    free(x);
    for (int i = 0; i < 8; i++) t_free(*ps[i]);
    t_set_error_handler(prev);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void **state) {
    (void)state;
    t_set_error_handler(error_record);
    Tensor *x = t_new(T_SHAPE(2, 3, 8)), *w = t_new(T_SHAPE(24, 8)), *o[3];
    assert_int_equal(t_mha_in_proj(x, w, NULL, 3, 3, o), -1);   /* 8 is not divisible into 3 heads */
    assert_non_null(strstr(error_seen(), "3 heads"));
    assert_null(o[0]);
    assert_int_equal(t_mha_in_proj(x, w, NULL, 2, 4, o), -1);   /* 4 queries of 3 tokens */
    assert_non_null(strstr(error_seen(), "4 queries"));
    assert_int_equal(t_mha_in_proj(x, w, t_new(T_SHAPE(8)), 2, 3, o), -1);
    assert_non_null(strstr(error_seen(), "bias [8]"));
    assert_int_equal(t_mha_in_proj(NULL, w, NULL, 2, 3, o), -1);
    assert_null(o[1]);
    assert_null(t_mha_out_proj(t_new(T_SHAPE(2, 2, 3, 4)), t_new(T_SHAPE(8, 6)), NULL, NULL));
    assert_non_null(strstr(error_seen(), "weight [8, 6]"));
    assert_null(t_mha_out_proj(t_new(T_SHAPE(2, 2, 3, 4)), t_new(T_SHAPE(8, 8)), NULL, t_new(T_SHAPE(2, 4, 8))));
    assert_non_null(strstr(error_seen(), "residual [2, 4, 8]"));
    assert_null(t_linear_add(t_new(T_SHAPE(2, 8)), t_new(T_SHAPE(3, 8)), NULL, t_new(T_SHAPE(2, 4))));
    assert_non_null(strstr(error_seen(), "linear_add"));
    assert_null(t_linear_add(t_new(T_SHAPE(2, 8)), t_new(T_SHAPE(0, 8)), NULL, t_new(T_SHAPE(2, 0))));
    assert_null(t_mlp_gelu_add(t_new(T_SHAPE(2, 8)), t_new(T_SHAPE(3, 8)), NULL, t_new(T_SHAPE(8, 4)), NULL, NULL));
    assert_non_null(strstr(error_seen(), "mlp_gelu"));
    assert_null(t_mlp_gelu_add(NULL, t_new(T_SHAPE(3, 8)), NULL, t_new(T_SHAPE(8, 3)), NULL, NULL));
    t_set_error_handler(NULL);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_linear_add_grad, arena_teardown),
        cmocka_unit_test_teardown(test_mha_in_proj_grad, arena_teardown),
        cmocka_unit_test_teardown(test_mha_in_proj_outputs, arena_teardown),
        cmocka_unit_test_teardown(test_mha_out_proj_grad, arena_teardown),
        cmocka_unit_test_teardown(test_mlp_gelu_grad, arena_teardown),
        cmocka_unit_test_teardown(test_mha_fused_matches_composed, arena_teardown),
        cmocka_unit_test_teardown(test_two_backwards_in_one_step, arena_teardown),
        cmocka_unit_test_teardown(test_partial_paths_to_in_proj, arena_teardown),
        cmocka_unit_test_teardown(test_block_under_every_cap, arena_teardown),
        cmocka_unit_test_teardown(test_errors, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_tape_free();
    t_arena_shutdown();
    return rc;
}
