/* Autograd end to end: a 2-layer MLP (linear - gelu - linear, mean cross-entropy) trained 10 steps with
 * plain SGD (the update is written here) matches the PyTorch run of tests/reference/gen_mlp_sgd.py:
 * losses to 1e-5 relative, final parameters to 1e-5 absolute. Also checks that shape errors name the
 * op and the shapes and make the op return NULL. */
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

#define STEPS 10
#define LR 0.1f

static Tensor *param_from(const Fixture *fx, const char *name) {
    Tensor *src = fixture_tensor(fx, name);
    Tensor *p = t_param_new(src->ndim, src->shape, true);
    memcpy(p->data, src->data, sizeof(float) * (size_t)t_numel(p));
    return p;
}

static void test_mlp_sgd_matches_torch(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "mlp_sgd.bin")) return;
    Tensor *w1 = param_from(&fx, "w1"), *b1 = param_from(&fx, "b1"), *w2 = param_from(&fx, "w2"),
           *b2 = param_from(&fx, "b2");
    Tensor *params[4] = {w1, b1, w2, b2};
    int64_t n, nl;
    const float *tf = fixture_get(&fx, "targets", &n);
    int32_t *targets = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) targets[i] = (int32_t)tf[i];
    const float *ref = fixture_get(&fx, "losses", &nl);
    assert_int_equal(nl, STEPS);
    float losses[STEPS];
    for (int step = 0; step < STEPS; step++) {
        t_arena_reset();
        Tensor *x = fixture_tensor(&fx, "x");
        Tensor *loss = t_cross_entropy(t_linear(t_gelu(t_linear(x, w1, b1)), w2, b2), targets);
        assert_non_null(loss);
        losses[step] = loss->data[0];
        for (int p = 0; p < 4; p++) t_zero_grad(params[p]);
        t_backward(loss);
        for (int p = 0; p < 4; p++) {
            Tensor *t = params[p];
            for (int64_t i = 0; i < t_numel(t); i++) t->data[i] -= LR * t->grad[i];
        }
    }
    check_close(losses, ref, STEPS, 0, 1e-5, "MLP SGD losses");
    static const char *finals[] = {"w1_final", "b1_final", "w2_final", "b2_final"};
    for (int p = 0; p < 4; p++) check_close(params[p]->data, fixture_get(&fx, finals[p], NULL), t_numel(params[p]), 1e-5, 1e-5, finals[p]);
    assert_true(losses[STEPS - 1] < losses[0]);
    free(targets);
    for (int p = 0; p < 4; p++) t_free(params[p]);
    fixture_free(&fx);
    t_arena_reset();
}

/* Two backward passes in one step (two losses sharing a parameter): the second must not replay the
 * first graph, whose outputs still hold their gradients. */
static void test_second_backward_runs_only_its_graph(void **state) {
    (void)state;
    Tensor *w = t_param_new(T_SHAPE(3), true);
    for (int i = 0; i < 3; i++) w->data[i] = 1.0f;
    Tensor *l1 = t_sum(t_mul_scalar(w, 2.0f), 0, NULL, false);
    t_backward(l1);
    for (int i = 0; i < 3; i++) assert_float_close(w->grad[i], 2.0f, 1e-6);
    Tensor *l2 = t_sum(t_mul_scalar(t_exp(t_mul_scalar(w, 0.0f)), 3.0f), 0, NULL, false);
    t_backward(l2);
    for (int i = 0; i < 3; i++) assert_float_close(w->grad[i], 2.0f, 1e-6);   /* d l2/dw = 0 */
    Tensor *l3 = t_sum(t_mul_scalar(w, 5.0f), 0, NULL, false);
    t_backward(l3);
    for (int i = 0; i < 3; i++) assert_float_close(w->grad[i], 7.0f, 1e-6);
    t_free(w);
    t_arena_reset();
}

/* ---------------------------------------------------------------- bad input */

static char seen[1024];
static int n_errors;
static void record_error(const char *msg) {
    snprintf(seen, sizeof seen, "%s", msg);
    n_errors++;
}

/* The last error names the op and every listed fragment (shapes). */
static void expect_error(const void *result, const char *op, const char *frag1, const char *frag2) {
    if (result) fail_msg("%s accepted bad input (expected an error mentioning %s)", op, frag1 ? frag1 : "");
    if (!strstr(seen, op)) fail_msg("error '%s' does not name the op %s", seen, op);
    if (frag1 && !strstr(seen, frag1)) fail_msg("error '%s' does not mention %s", seen, frag1);
    if (frag2 && !strstr(seen, frag2)) fail_msg("error '%s' does not mention %s", seen, frag2);
    seen[0] = 0;
}

static void test_bad_input_errors(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    Tensor *a = t_zeros(T_SHAPE(2, 3)), *b = t_zeros(T_SHAPE(4, 5)), *c3 = t_zeros(T_SHAPE(2, 3, 4));
    expect_error(t_sub(a, b), "sub", "[2, 3]", "[4, 5]");
    expect_error(t_mul(a, b), "mul", "[2, 3]", "[4, 5]");
    expect_error(t_div(a, b), "div", "[2, 3]", "[4, 5]");
    expect_error(t_axpby(a, 1, b, 1), "axpby", "[2, 3]", "[4, 5]");
    expect_error(t_matmul(a, t_zeros(T_SHAPE(2, 4, 3))), "matmul", "[2, 3]", "[2, 4, 3]");
    expect_error(t_matmul(t_zeros(T_SHAPE(3)), a), "matmul", "[3]", "[2, 3]");
    expect_error(t_linear(c3, a, NULL), "linear", "[2, 3, 4]", "[2, 3]");
    expect_error(t_sum(a, 1, (int[]){2}, false), "sum", "[2, 3]", NULL);
    expect_error(t_var(a, 1, (int[]){-3}, false, 0), "var", "[2, 3]", NULL);
    expect_error(t_max(a, 5, false), "max", "[2, 3]", NULL);
    expect_error(t_softmax(a, 2), "softmax", "[2, 3]", NULL);
    expect_error(t_log_softmax(a, -3), "log_softmax", "[2, 3]", NULL);
    expect_error(t_concat(2, (Tensor *[]){a, c3}, 0), "concat", "[2, 3]", "[2, 3, 4]");
    expect_error(t_concat(2, (Tensor *[]){a, b}, 0), "concat", "[4, 5]", "[2, 3]");
    Tensor *parts[2];
    t_split(a, 1, 2, (const int64_t[]){1, 1}, parts);
    expect_error(parts[0], "split", "[2, 3]", NULL);
    expect_error(t_pad2d(t_zeros(T_SHAPE(1, 2, 3)), 3, 0, 0, 0, T_PAD_REFLECT), "pad2d", "[1, 2, 3]", NULL);
    expect_error(t_pad2d(t_zeros(T_SHAPE(3)), 1, 1, 1, 1, T_PAD_ZERO), "pad2d", "[3]", NULL);
    expect_error(t_embedding(a, (const int32_t[]){0, 2}, 2), "embedding", "[2, 3]", NULL);
    expect_error(t_embedding(c3, (const int32_t[]){0}, 1), "embedding", "[2, 3, 4]", NULL);
    expect_error(t_masked_fill(a, b, 0), "masked_fill", "[4, 5]", "[2, 3]");
    expect_error(t_expand(a, T_SHAPE(4, 4)), "expand", "[2, 3]", "[4, 4]");
    expect_error(t_l1_loss(a, b), "l1_loss", "[2, 3]", "[4, 5]");
    expect_error(t_mse_loss(a, c3), "mse_loss", "[2, 3]", "[2, 3, 4]");
    expect_error(t_cross_entropy(a, (const int32_t[]){0, 3}), "cross_entropy", "[2, 3]", "outside [0, 3)");
    expect_error(t_cross_entropy(c3, (const int32_t[]){0, 1}), "cross_entropy", "[2, 3, 4]", NULL);
    Tensor *q = t_zeros(T_SHAPE(1, 2, 4, 8)), *k = t_zeros(T_SHAPE(1, 2, 5, 8)), *v = t_zeros(T_SHAPE(1, 2, 5, 3));
    expect_error(t_attention(q, k, t_zeros(T_SHAPE(1, 2, 6, 3)), NULL, 1), "attention", "[1, 2, 4, 8]", "[1, 2, 6, 3]");
    expect_error(t_attention(q, t_zeros(T_SHAPE(1, 2, 5, 7)), v, NULL, 1), "attention", "[1, 2, 5, 7]", NULL);
    expect_error(t_attention(a, k, v, NULL, 1), "attention", "[2, 3]", NULL);
    expect_error(t_attention(q, k, v, t_zeros(T_SHAPE(5, 4)), 1), "attention", "[5, 4]", "[1, 2, 4, 8]");
    expect_error(t_reshape(a, T_SHAPE(4, 2)), "reshape", "[2, 3]", NULL);
    expect_error(t_slice(a, 1, 2, 1), "slice", "[2, 3]", NULL);
    /* NULL propagates through a chain: one error, NULL at the end */
    n_errors = 0;
    assert_null(t_softmax(t_gelu(t_concat(2, (Tensor *[]){a, b}, 0)), -1));
    assert_int_equal(n_errors, 1);
    assert_null(t_attention(NULL, k, v, NULL, 1));
    assert_null(t_cross_entropy(NULL, NULL));
    t_set_error_handler(NULL);
    t_arena_reset();
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_sgd_matches_torch),
        cmocka_unit_test(test_second_backward_runs_only_its_graph),
        cmocka_unit_test(test_bad_input_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
