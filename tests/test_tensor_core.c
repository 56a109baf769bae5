/* Tensor core: views, broadcasting, the tape (fan-out, no-grad), the arena, errors, matmul/linear. */
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

static void test_views_share_storage(void **state) {
    (void)state;
    Tensor *x = t_new(T_SHAPE(2, 3, 4));
    for (int i = 0; i < 24; i++) x->data[i] = (float)i;
    Tensor *p = t_permute(x, (int[]){2, 0, 1});            /* [4, 2, 3] */
    assert_int_equal(p->shape[0], 4);
    assert_ptr_equal(p->data, x->data);
    assert_false(t_is_contiguous(p));
    Tensor *c = t_contiguous(p);
    /* c[k][i][j] = x[i][j][k] */
    assert_float_close(c->data[(1 * 2 + 1) * 3 + 2], x->data[(1 * 3 + 2) * 4 + 1], 0);
    Tensor *s = t_slice(x, 2, 1, 3);                        /* [2, 3, 2] */
    assert_ptr_equal(s->data, x->data + 1);
    Tensor *sel = t_select(x, 1, 2);                        /* [2, 4] */
    assert_float_close(sel->data[sel->stride[0] * 1 + 3], x->data[(1 * 3 + 2) * 4 + 3], 0);
    Tensor *r = t_reshape(x, T_SHAPE(6, -1));
    assert_int_equal(r->shape[1], 4);
    assert_ptr_equal(r->data, x->data);
}

static Tensor *f_views(Tensor **in, void *ctx) {
    (void)ctx;
    Tensor *p = t_transpose(in[0], 0, 2);                  /* [4,3,2] */
    Tensor *s = t_slice(p, 1, 1, 3);                        /* [4,2,2] */
    Tensor *u = t_unsqueeze(t_select(p, 0, 1), 0);          /* [1,3,2] */
    return t_mul(t_reshape(s, T_SHAPE(4, 2, 2)), t_reshape(t_slice(u, 1, 0, 2), T_SHAPE(2, 2)));
}

static void test_views_grad(void **state) {
    (void)state;
    Tensor *x = t_new(T_SHAPE(2, 3, 4));
    fill_uniform(x, 1, -1, 1);
    Tensor *in[1] = {x};
    gradcheck(f_views, 1, in, NULL, 1e-2f, 1e-3, 1e-3, 1000, "views");
}

static Tensor *f_bcast(Tensor **in, void *ctx) {
    int op = *(int *)ctx;
    Tensor *a = in[0], *b = in[1];
    switch (op) {
    case 0: return t_add(a, b);
    case 1: return t_sub(a, b);
    case 2: return t_mul(a, b);
    case 3: return t_div(a, b);
    default: return t_axpby(a, 0.5f, b, -2.0f);
    }
}

static void test_broadcast_grad(void **state) {
    (void)state;
    const int64_t shapes[][2][4] = {{{3, 4, 5, 0}, {5, 0, 0, 0}}, {{3, 1, 5, 0}, {4, 1, 0, 0}},
                                    {{2, 3, 0, 0}, {2, 3, 0, 0}}};
    const int ranks[][2] = {{3, 1}, {3, 2}, {2, 2}};
    for (int s = 0; s < 3; s++)
        for (int op = 0; op < 5; op++) {
            Tensor *a = t_new(ranks[s][0], shapes[s][0]), *b = t_new(ranks[s][1], shapes[s][1]);
            fill_uniform(a, 3 + s, -1, 1);
            fill_uniform(b, 7 + s, 0.5f, 2);
            Tensor *in[2] = {a, b};
            gradcheck(f_bcast, 2, in, &op, 1e-2f, 2e-3, 2e-3, 1000, "broadcast binary");
        }
}

static void test_fan_out_accumulates(void **state) {
    (void)state;
    Tensor *x = t_full(T_SHAPE(3), 2.0f);
    t_requires_grad(x);
    Tensor *y = t_add(t_mul(x, x), x);                      /* x^2 + x, x used three times */
    t_backward(t_sum(y, 0, NULL, false));
    for (int i = 0; i < 3; i++) assert_float_close(x->grad[i], 5.0f, 1e-6);
}

static void test_no_grad_records_nothing(void **state) {
    (void)state;
    Tensor *w = t_param_new(T_SHAPE(4, 4), true);
    Tensor *x = t_full(T_SHAPE(2, 4), 1.0f);
    size_t before = t_tape_len();
    bool prev = t_set_grad_enabled(false);
    Tensor *y = t_gelu(t_linear(x, w, NULL));
    t_set_grad_enabled(prev);
    assert_int_equal(t_tape_len(), before);
    assert_null(y->node);
    assert_false(y->requires_grad);
    Tensor *z = t_linear(x, w, NULL);
    assert_int_equal(t_tape_len(), before + 1);
    assert_non_null(z->node);
    t_free(w);
}

static void test_arena_steady_state(void **state) {
    (void)state;
    Tensor *w = t_param_new(T_SHAPE(64, 64), true);
    fill_uniform(w, 1, -0.1f, 0.1f);
    size_t cap = 0;
    for (int step = 0; step < 4; step++) {
        t_arena_reset();
        Tensor *x = t_full(T_SHAPE(512, 64), 0.5f);
        Tensor *h = x;
        for (int l = 0; l < 200; l++) h = t_gelu(t_linear(h, w, NULL));
        t_backward(t_mean(h, 0, NULL, false));
        if (step == 2) cap = t_arena_capacity();
        if (step >= 2) {
            assert_int_equal(t_arena_block_count(), 1);
            assert_int_equal(t_arena_capacity(), cap);   /* no growth: no malloc per op */
        }
    }
    t_free(w);
}

static char seen[512];
static void record_error(const char *msg) { snprintf(seen, sizeof seen, "%s", msg); }

static void test_shape_errors_name_op_and_shapes(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    Tensor *a = t_new(T_SHAPE(2, 3)), *b = t_new(T_SHAPE(4, 5));
    assert_null(t_matmul(a, b));
    assert_non_null(strstr(seen, "matmul"));
    assert_non_null(strstr(seen, "[2, 3]"));
    assert_non_null(strstr(seen, "[4, 5]"));
    assert_null(t_add(a, b));
    assert_non_null(strstr(seen, "add"));
    assert_null(t_gelu(t_add(a, b)));     /* NULL propagates */
    assert_null(t_linear(a, t_new(T_SHAPE(3)), NULL));
    assert_non_null(strstr(seen, "linear"));
    t_set_error_handler(NULL);
}

typedef struct { int ta, tb; } MMCtx;
static Tensor *f_matmul(Tensor **in, void *ctx) {
    MMCtx *c = ctx;
    Tensor *a = c->ta ? t_transpose(in[0], -1, -2) : in[0];
    Tensor *b = c->tb ? t_transpose(in[1], -1, -2) : in[1];
    return t_matmul(a, b);
}

static void test_matmul_grad_transposes_and_batch(void **state) {
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            MMCtx c = {ta, tb};
            Tensor *a = ta ? t_new(T_SHAPE(2, 3, 5, 4)) : t_new(T_SHAPE(2, 3, 4, 5));   /* logical [2,3,4,5] */
            Tensor *b = tb ? t_new(T_SHAPE(3, 6, 5)) : t_new(T_SHAPE(3, 5, 6));        /* logical [3,5,6], broadcast */
            fill_uniform(a, 11, -1, 1);
            fill_uniform(b, 12, -1, 1);
            Tensor *in[2] = {a, b};
            gradcheck(f_matmul, 2, in, &c, 1e-2f, 2e-3, 2e-3, 500, "matmul");
        }
    /* shared 2-D right operand (the tall-GEMM path) */
    MMCtx c = {0, 0};
    Tensor *a = t_new(T_SHAPE(2, 3, 4)), *b = t_new(T_SHAPE(4, 5));
    fill_uniform(a, 1, -1, 1);
    fill_uniform(b, 2, -1, 1);
    Tensor *in[2] = {a, b};
    gradcheck(f_matmul, 2, in, &c, 1e-2f, 2e-3, 2e-3, 500, "matmul shared");
}

static Tensor *f_linear(Tensor **in, void *ctx) {
    (void)ctx;
    return t_linear(in[0], in[1], in[2]);
}

static void test_linear_grad(void **state) {
    (void)state;
    Tensor *x = t_new(T_SHAPE(2, 3, 7)), *w = t_new(T_SHAPE(5, 7)), *b = t_new(T_SHAPE(5));
    fill_uniform(x, 1, -1, 1);
    fill_uniform(w, 2, -1, 1);
    fill_uniform(b, 3, -1, 1);
    Tensor *in[3] = {x, w, b};
    gradcheck(f_linear, 3, in, NULL, 1e-2f, 2e-3, 2e-3, 500, "linear");
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_views_share_storage, arena_teardown),
        cmocka_unit_test_teardown(test_views_grad, arena_teardown),
        cmocka_unit_test_teardown(test_broadcast_grad, arena_teardown),
        cmocka_unit_test_teardown(test_fan_out_accumulates, arena_teardown),
        cmocka_unit_test_teardown(test_no_grad_records_nothing, arena_teardown),
        cmocka_unit_test_teardown(test_arena_steady_state, arena_teardown),
        cmocka_unit_test_teardown(test_shape_errors_name_op_and_shapes, arena_teardown),
        cmocka_unit_test_teardown(test_matmul_grad_transposes_and_batch, arena_teardown),
        cmocka_unit_test_teardown(test_linear_grad, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
