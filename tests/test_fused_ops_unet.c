/* The U-Net's fused ops of tensor/ops_fused.h called directly (t_geglu, t_scale_shift_silu, t_silu_add,
 * t_linear_attention, t_linear_attention_block): finite-difference gradient checks of every input, with the
 * optional bias absent, strided inputs and inputs that need no gradient; one node each, none without a tape;
 * shape errors; and each op's forward + backward under every arena cap, which either fails cleanly or gives
 * every gradient of the uncapped run bit for bit (a backward without memory stops before writing). */
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

#define EPS 1e-2f   /* finite-difference step, as in test_ops_grad */
#define TOL 3e-3

/* ---------------------------------------------------------------- GEGLU */

static Tensor *f_geglu(Tensor **in, void *ctx) {
    return t_geglu(*(int *)ctx ? t_transpose(in[0], 0, 1) : in[0]);   /* 1: a strided view */
}

static void test_geglu_grad(void **state) {
    (void)state;
    for (int strided = 0; strided < 2; strided++) {
        Tensor *x = rand_tensor(T_SHAPE(3, 2, 10), 1, -3, 3);
        assert_true(gradcheck(f_geglu, 1, &x, &strided, EPS, TOL, TOL, 300, "geglu") > 0);
        t_arena_reset();
    }
}

/* ---------------------------------------------------------------- the ResBlock's activations */

typedef struct {
    int which;      /* bit 0: the first input needs a gradient, bit 1: the second */
    Tensor *fixed;  /* the input that does not */
} PartCtx;

/* in[] holds the inputs that need gradients; the other comes from ctx */
static void pick2(Tensor **in, PartCtx *c, Tensor **a, Tensor **b) {
    *a = c->which & 1 ? in[0] : c->fixed;
    *b = c->which & 2 ? in[c->which & 1] : c->fixed;
}

static Tensor *f_sss(Tensor **in, void *ctx) {
    Tensor *h, *ss;
    pick2(in, ctx, &h, &ss);
    return t_scale_shift_silu(h, ss);
}

static Tensor *f_silu_add(Tensor **in, void *ctx) {
    Tensor *a, *r;
    pick2(in, ctx, &a, &r);
    return t_silu_add(a, r);
}

static void check_pair(GradFn f, Tensor *a, Tensor *b, const char *what) {
    for (int which = 1; which < 4; which++) {
        PartCtx c = {which, which == 1 ? b : a};
        Tensor *in[2];
        int n = 0;
        if (which & 1) in[n++] = a;
        if (which & 2) in[n++] = b;
        c.fixed->requires_grad = false;
        c.fixed->grad = NULL;
        assert_true(gradcheck(f, n, in, &c, EPS, TOL, TOL, 300, what) > 0);
        if (which < 3) assert_null(c.fixed->grad);   /* an input that needs none gets none */
    }
}

static void test_scale_shift_silu_grad(void **state) {
    (void)state;
    check_pair(f_sss, rand_tensor(T_SHAPE(2, 3, 4, 5), 2, -3, 3), rand_tensor(T_SHAPE(2, 6), 3, -1, 1), "scale_shift_silu");
}

static void test_silu_add_grad(void **state) {
    (void)state;
    check_pair(f_silu_add, rand_tensor(T_SHAPE(2, 3, 4, 5), 4, -4, 4), rand_tensor(T_SHAPE(2, 3, 4, 5), 5, -1, 1), "silu_add");
}

/* ---------------------------------------------------------------- linear attention */

static Tensor *f_la(Tensor **in, void *ctx) {
    (void)ctx;
    return t_linear_attention(in[0], 2, 4);
}

static void test_linear_attention_grad(void **state) {
    (void)state;
    Tensor *qkv = rand_tensor(T_SHAPE(2, 24, 3, 5), 6, -2, 2);
    assert_true(gradcheck(f_la, 1, &qkv, NULL, EPS, 2e-3, 2e-3, 1000, "linear_attention") > 0);
}

enum { LB = 2, LC = 6, LH = 3, LW = 5, LHEADS = 2, LD = 4, LHD = LHEADS * LD };

typedef struct {
    int bias;   /* the inputs: x, norm g, w_qkv, w_out, out g, then b_out when bias */
    int conv;   /* weights in the 1×1 convolutions' [.., .., 1, 1] layout */
} BlockCtx;

static Tensor *f_block(Tensor **in, void *ctx) {
    BlockCtx *c = ctx;
    LinearAttnBlockArgs a = {.x = in[0], .norm_g = in[1], .norm_eps = 1e-5f, .w_qkv = in[2], .w_out = in[3],
                             .b_out = c->bias ? in[5] : NULL, .out_g = in[4], .out_eps = 1e-5f, .heads = LHEADS,
                             .dim_head = LD};
    return t_linear_attention_block(&a);
}

static void block_inputs(Tensor **in, int conv) {
    in[0] = rand_tensor(T_SHAPE(LB, LC, LH, LW), 7, -2, 2);
    in[1] = rand_tensor(T_SHAPE(1, LC, 1, 1), 8, 0.5f, 1.5f);
    in[2] = conv ? rand_tensor(T_SHAPE(3 * LHD, LC, 1, 1), 9, -0.5f, 0.5f) : rand_tensor(T_SHAPE(3 * LHD, LC), 9, -0.5f, 0.5f);
    in[3] = conv ? rand_tensor(T_SHAPE(LC, LHD, 1, 1), 10, -0.5f, 0.5f) : rand_tensor(T_SHAPE(LC, LHD), 10, -0.5f, 0.5f);
    in[4] = rand_tensor(T_SHAPE(1, LC, 1, 1), 11, 0.5f, 1.5f);
    in[5] = rand_tensor(T_SHAPE(LC), 12, -0.5f, 0.5f);
}

static void test_linear_attention_block_grad(void **state) {
    (void)state;
    for (int bias = 0; bias < 2; bias++)
        for (int conv = 0; conv < 2; conv++) {
            BlockCtx c = {bias, conv};
            Tensor *in[6];
            block_inputs(in, conv);
            assert_true(gradcheck(f_block, 5 + bias, in, &c, EPS, TOL, TOL, 300, "linear_attention_block") > 0);
            t_arena_reset();
        }
}

/* x alone, or the weights alone, needing a gradient: the other side gets none and the one asked is right */
static Tensor *f_block_x_only(Tensor **in, void *ctx) {
    Tensor **w = ctx;   /* norm g, w_qkv, w_out, out g, b_out: no gradient */
    LinearAttnBlockArgs a = {.x = in[0], .norm_g = w[0], .norm_eps = 1e-5f, .w_qkv = w[1], .w_out = w[2],
                             .b_out = w[4], .out_g = w[3], .out_eps = 1e-5f, .heads = LHEADS, .dim_head = LD};
    return t_linear_attention_block(&a);
}

static void test_linear_attention_block_partial(void **state) {
    (void)state;
    Tensor *in[6];
    block_inputs(in, 1);
    for (int i = 1; i < 6; i++) in[i]->requires_grad = false;
    assert_true(gradcheck(f_block_x_only, 1, in, in + 1, EPS, TOL, TOL, 300, "linear_attention_block, x only") > 0);
    for (int i = 1; i < 6; i++) assert_null(in[i]->grad);
    /* weights only: x is a constant */
    Tensor *x = in[0];
    x->requires_grad = false;
    x->grad = NULL;
    Tensor *w[6] = {x, in[1], in[2], in[3], in[4], in[5]};
    for (int i = 1; i < 6; i++) w[i]->requires_grad = true;
    LinearAttnBlockArgs a = {.x = x, .norm_g = w[1], .norm_eps = 1e-5f, .w_qkv = w[2], .w_out = w[3], .b_out = w[5],
                             .out_g = w[4], .out_eps = 1e-5f, .heads = LHEADS, .dim_head = LD};
    Tensor *y = t_linear_attention_block(&a);
    assert_non_null(y);
    assert_int_equal(t_backward(t_sum(y, 0, NULL, false)), 0);
    assert_null(x->grad);
    for (int i = 1; i < 6; i++) assert_non_null(w[i]->grad);
}

/* ---------------------------------------------------------------- nodes */

static void test_one_node_each_none_without_tape(void **state) {
    (void)state;
    Tensor *x = rand_tensor(T_SHAPE(2, 8), 20, -1, 1), *h = rand_tensor(T_SHAPE(2, 3, 4), 21, -1, 1), *ss = rand_tensor(T_SHAPE(2, 6), 22, -1, 1);
    Tensor *qkv = rand_tensor(T_SHAPE(1, 24, 2, 3), 23, -1, 1), *in[6];
    block_inputs(in, 0);
    LinearAttnBlockArgs a = {.x = in[0], .norm_g = in[1], .norm_eps = 1e-5f, .w_qkv = in[2], .w_out = in[3],
                             .b_out = in[5], .out_g = in[4], .out_eps = 1e-5f, .heads = LHEADS, .dim_head = LD};
    for (int pass = 0; pass < 3; pass++) {   /* 0: nothing needs grad; 1: grad mode off; 2: taped */
        if (pass == 1) {
            Tensor *all[] = {x, h, ss, qkv, in[0], in[1], in[2], in[3], in[4], in[5]};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) t_requires_grad(all[i]);
        }
        bool prev = t_set_grad_enabled(pass != 1);
        size_t before = t_tape_len();
        Tensor *y[5] = {t_geglu(x), t_scale_shift_silu(h, ss), t_silu_add(h, h), t_linear_attention(qkv, 2, 4),
                        t_linear_attention_block(&a)};
        t_set_grad_enabled(prev);
        const char *ops[5] = {"geglu", "scale_shift_silu", "silu_add", "linear_attention", "linear_attention_block"};
        assert_int_equal(t_tape_len() - before, pass == 2 ? 5 : 0);
        for (int i = 0; i < 5; i++) {
            assert_non_null(y[i]);
            if (pass == 2) assert_string_equal(y[i]->node->op, ops[i]);
            else assert_null(y[i]->node);
        }
    }
}

/* ---------------------------------------------------------------- every arena cap */

enum { OP_GEGLU, OP_SSS, OP_SILU_ADD, OP_LA, OP_BLOCK, OP_N };

typedef struct {
    int op, n;          /* op, number of inputs */
    float *data[6];     /* the inputs' values, outside the arena */
    int nd[6];
    int64_t shape[6][4];
} CapCase;

static Tensor *cap_forward(const CapCase *c, Tensor **in) {
    for (int i = 0; i < c->n; i++) {
        in[i] = t_from(c->nd[i], c->shape[i], c->data[i]);
        if (!in[i]) return NULL;
        t_requires_grad(in[i]);
    }
    switch (c->op) {
    case OP_GEGLU: return t_geglu(in[0]);
    case OP_SSS: return t_scale_shift_silu(in[0], in[1]);
    case OP_SILU_ADD: return t_silu_add(in[0], in[1]);
    case OP_LA: return t_linear_attention(in[0], 2, 4);
    default: {
        LinearAttnBlockArgs a = {.x = in[0], .norm_g = in[1], .norm_eps = 1e-5f, .w_qkv = in[2], .w_out = in[3],
                                 .b_out = in[5], .out_g = in[4], .out_eps = 1e-5f, .heads = LHEADS, .dim_head = LD};
        return t_linear_attention_block(&a);
    }
    }
}

/* forward + backward, twice (the second pass adds into the gradients the first one made); 0 and every input
 * gradient concatenated into grads, or -1. The loss is seeded directly (t_backward_with): no other op takes
 * part, so every failure error_seen() is the fused op's or the tape's. */
static int cap_step(const CapCase *c, float *grads, int64_t total) {
    Tensor *in[6];
    Tensor *y = cap_forward(c, in);
    if (!y || t_backward_with(y, NULL) != 0 || t_backward_with(y, NULL) != 0) return -1;
    int64_t at = 0;
    for (int i = 0; i < c->n; i++) {
        int64_t n = t_numel(in[i]);
        assert_true(at + n <= total);
        memcpy(grads + at, in[i]->grad, sizeof(float) * (size_t)n);
        at += n;
    }
    return 0;
}

static void cap_case_init(CapCase *c, int op) {
    memset(c, 0, sizeof *c);
    c->op = op;
    static const int64_t shapes[OP_N][6][4] = {
        {{3, 4, 12}},
        {{2, 3, 4, 5}, {2, 6}},
        {{2, 3, 4, 5}, {2, 3, 4, 5}},
        {{2, 24, 3, 5}},
        {{LB, LC, LH, LW}, {1, LC, 1, 1}, {3 * LHD, LC, 1, 1}, {LC, LHD, 1, 1}, {1, LC, 1, 1}, {LC}},
    };
    static const int counts[OP_N] = {1, 2, 2, 1, 6}, dims[OP_N][6] = {{3}, {4, 2}, {4, 4}, {4}, {4, 4, 4, 4, 4, 1}};
    c->n = counts[op];
    for (int i = 0; i < c->n; i++) {
        c->nd[i] = dims[op][i];
        int64_t n = 1;
        for (int d = 0; d < c->nd[i]; d++) n *= c->shape[i][d] = shapes[op][i][d];
        c->data[i] = malloc(sizeof(float) * (size_t)n);
        assert_non_null(c->data[i]);
        for (int64_t k = 0; k < n; k++) c->data[i][k] = 0.8f * sinf(0.37f * (float)k + (float)i);
    }
}

static void test_every_cap(void **state) {
    (void)state;
    TErrorHandler prev = t_set_error_handler(NULL);   /* the default handler keeps the message and returns */
    enum { MAXG = 4096 };
    float *ref = malloc(sizeof(float) * MAXG), *got = malloc(sizeof(float) * MAXG);
    assert_non_null(ref);
    assert_non_null(got);
    for (int op = 0; op < OP_N; op++) {
        CapCase c;
        cap_case_init(&c, op);
        t_arena_shutdown();
        memset(ref, 0, sizeof(float) * MAXG);
        assert_int_equal(cap_step(&c, ref, MAXG), 0);
        size_t hi = t_arena_high_water() + t_arena_high_water() / 8, step = hi / 200 ? hi / 200 : 1;
        int failed = 0, ok = 0;
        for (size_t cap = step; cap <= hi; cap += step) {
            t_arena_shutdown();
            t_arena_set_limit(cap);
            memset(got, 0, sizeof(float) * MAXG);
            if (cap_step(&c, got, MAXG) != 0) {
                assert_true(t_arena_failed());
                assert_non_null(strstr(t_errmsg(), "out of memory"));
                failed++;
                continue;
            }
            assert_memory_equal(got, ref, sizeof(float) * MAXG);
            ok++;
        }
        t_arena_set_limit(0);
        t_arena_shutdown();
        assert_true(failed > 0 && ok > 0);
        for (int i = 0; i < c.n; i++) free(c.data[i]);
    }
    free(ref);
    free(got);
    t_set_error_handler(prev);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void **state) {
    (void)state;
    t_set_error_handler(error_record);
    assert_null(t_geglu(t_new(T_SHAPE(3, 5))));   /* odd last axis */
    assert_non_null(strstr(error_seen(), "geglu"));
    assert_null(t_geglu(NULL));
    assert_null(t_scale_shift_silu(t_new(T_SHAPE(2, 4, 3)), t_new(T_SHAPE(2, 4))));   /* needs [2, 8] */
    assert_non_null(strstr(error_seen(), "scale_shift_silu"));
    assert_null(t_silu_add(t_new(T_SHAPE(2, 4)), t_new(T_SHAPE(4, 2))));
    assert_non_null(strstr(error_seen(), "silu_add"));
    assert_null(t_silu_add(t_new(T_SHAPE(2, 4)), NULL));
    assert_null(t_linear_attention(t_new(T_SHAPE(1, 10, 2, 2)), 2, 4));   /* not 3·2·4 channels */
    assert_non_null(strstr(error_seen(), "linear_attention"));
    assert_null(t_linear_attention(t_new(T_SHAPE(24, 2, 2)), 2, 4));      /* not 4-D */
    Tensor *in[6];
    block_inputs(in, 1);
    LinearAttnBlockArgs a = {.x = in[0], .norm_g = in[1], .norm_eps = 1e-5f, .w_qkv = in[2], .w_out = in[3],
                             .b_out = in[5], .out_g = in[4], .out_eps = 1e-5f, .heads = LHEADS, .dim_head = LD};
    assert_non_null(t_linear_attention_block(&a));
    a.heads = 3;   /* to_qkv has 2·4·3 rows */
    error_record("");
    assert_null(t_linear_attention_block(&a));
    assert_non_null(strstr(error_seen(), "linear_attention: input [2, 6, 3, 5]"));
    a.heads = LHEADS;
    a.w_out = in[2];
    assert_null(t_linear_attention_block(&a));
    assert_non_null(strstr(error_seen(), "to_out [24, 6, 1, 1]"));
    a.w_out = in[3];
    a.b_out = in[1];   /* 6 elements: fine */
    assert_non_null(t_linear_attention_block(&a));
    a.b_out = in[2];
    assert_null(t_linear_attention_block(&a));
    a.b_out = NULL;
    a.out_g = in[5];   /* [6]: a gain of the right size in any layout */
    assert_non_null(t_linear_attention_block(&a));
    a.x = NULL;
    assert_null(t_linear_attention_block(&a));
    t_set_error_handler(NULL);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_geglu_grad, arena_teardown),
        cmocka_unit_test_teardown(test_scale_shift_silu_grad, arena_teardown),
        cmocka_unit_test_teardown(test_silu_add_grad, arena_teardown),
        cmocka_unit_test_teardown(test_linear_attention_grad, arena_teardown),
        cmocka_unit_test_teardown(test_linear_attention_block_grad, arena_teardown),
        cmocka_unit_test_teardown(test_linear_attention_block_partial, arena_teardown),
        cmocka_unit_test_teardown(test_one_node_each_none_without_tape, arena_teardown),
        cmocka_unit_test_teardown(test_every_cap, arena_teardown),
        cmocka_unit_test_teardown(test_errors, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_tape_free();
    t_arena_shutdown();
    return rc;
}
