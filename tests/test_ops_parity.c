/* Forward and backward parity with PyTorch (tests/reference/gen_ops.py, computed in float64 on the same
 * float32 inputs) for every op in tensor/ops.h except the norm / conv / resampling ops. Each case checks
 * the output and the gradient of every input for the upstream gradient gy. Tolerances: float32
 * evaluation against a float64 reference, |err| <= atol + rtol |ref| with atol 1e-5, rtol 1e-4 unless a
 * case states otherwise. */
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

typedef Tensor *(*CaseFn)(Tensor **in, const Fixture *fx, const char *name);

typedef struct {
    const char *name;
    int n_in;
    CaseFn fn;
    double atol, rtol;   /* 0 = defaults */
} Case;

static void run_cases(const char *file, const Case *cases, size_t n_cases) {
    Fixture fx;
    if (!fixture_load(&fx, file)) return;
    for (size_t c = 0; c < n_cases; c++) {
        const Case *k = &cases[c];
        double atol = k->atol > 0 ? k->atol : 1e-5, rtol = k->rtol > 0 ? k->rtol : 1e-4;
        char key[128], what[160];
        Tensor *in[8];
        for (int i = 0; i < k->n_in; i++) {
            snprintf(key, sizeof key, "%s.x%d", k->name, i);
            in[i] = fixture_tensor(&fx, key);
            t_requires_grad(in[i]);
        }
        Tensor *y = k->fn(in, &fx, k->name);
        snprintf(key, sizeof key, "%s.y", k->name);
        int64_t ny;
        const float *ref = fixture_get(&fx, key, &ny);
        assert_non_null(y);
        assert_int_equal(t_numel(y), ny);
        snprintf(what, sizeof what, "%s forward", k->name);
        check_tensor_close(y, ref, atol, rtol, what);
        snprintf(key, sizeof key, "%s.gy", k->name);
        t_backward_with(y, fixture_get(&fx, key, NULL));
        for (int i = 0; i < k->n_in; i++) {
            snprintf(key, sizeof key, "%s.g%d", k->name, i);
            int64_t ng;
            const float *g = fixture_get(&fx, key, &ng);
            assert_int_equal(ng, t_numel(in[i]));
            assert_non_null(in[i]->grad);
            snprintf(what, sizeof what, "%s gradient of input %d", k->name, i);
            check_close(in[i]->grad, g, ng, atol, rtol, what);
        }
        t_arena_reset();   /* also clears the tape before the next case */
    }
    fixture_free(&fx);
}

/* Integer arguments stored as floats in the fixture. */
static int32_t *fixture_ids(const Fixture *fx, const char *name, int64_t *n) {
    char key[128];
    snprintf(key, sizeof key, "%s.ids", name);
    const float *f = fixture_get(fx, key, n);
    int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)*n);
    for (int64_t i = 0; i < *n; i++) ids[i] = (int32_t)f[i];
    return ids;
}

/* ---------------------------------------------------------------- elementwise */

#define UNARY_CASE(fname, expr) \
    static Tensor *fname(Tensor **in, const Fixture *fx, const char *n) { (void)fx; (void)n; Tensor *x = in[0]; return expr; }
UNARY_CASE(c_add, t_add(x, in[1]))
UNARY_CASE(c_sub, t_sub(x, in[1]))
UNARY_CASE(c_mul, t_mul(x, in[1]))
UNARY_CASE(c_div, t_div(x, in[1]))
UNARY_CASE(c_axpby, t_axpby(x, 0.5f, in[1], -2.0f))
UNARY_CASE(c_add_scalar, t_add_scalar(x, 1.5f))
UNARY_CASE(c_mul_scalar, t_mul_scalar(x, -3.0f))
UNARY_CASE(c_pow_scalar, t_pow_scalar(x, 3.0f))
UNARY_CASE(c_pow_half, t_pow_scalar(x, 0.5f))
UNARY_CASE(c_neg, t_neg(x))
UNARY_CASE(c_exp, t_exp(x))
UNARY_CASE(c_log, t_log(x))
UNARY_CASE(c_sqrt, t_sqrt(x))
UNARY_CASE(c_rsqrt, t_rsqrt(x))
UNARY_CASE(c_abs, t_abs(x))
UNARY_CASE(c_clamp, t_clamp(x, -0.5f, 0.5f))
UNARY_CASE(c_relu, t_relu(x))
UNARY_CASE(c_gelu, t_gelu(x))
UNARY_CASE(c_quick_gelu, t_quick_gelu(x))
UNARY_CASE(c_silu, t_silu(x))
UNARY_CASE(c_sigmoid, t_sigmoid(x))
UNARY_CASE(c_tanh, t_tanh(x))

static void test_elementwise_parity(void **state) {
    (void)state;
    static const Case cases[] = {
        {"add", 2, c_add, 0, 0},   {"sub", 2, c_sub, 0, 0},     {"mul", 2, c_mul, 0, 0},
        {"div", 2, c_div, 0, 0},   {"axpby", 2, c_axpby, 0, 0}, {"add_scalar", 1, c_add_scalar, 0, 0},
        {"mul_scalar", 1, c_mul_scalar, 0, 0}, {"pow_scalar", 1, c_pow_scalar, 0, 0},
        {"pow_half", 1, c_pow_half, 0, 0},     {"neg", 1, c_neg, 0, 0},
        {"exp", 1, c_exp, 0, 0},   {"log", 1, c_log, 0, 0},     {"sqrt", 1, c_sqrt, 0, 0},
        {"rsqrt", 1, c_rsqrt, 0, 0}, {"abs", 1, c_abs, 0, 0},   {"clamp", 1, c_clamp, 0, 0},
        {"relu", 1, c_relu, 0, 0}, {"gelu", 1, c_gelu, 0, 0},   {"quick_gelu", 1, c_quick_gelu, 0, 0},
        {"silu", 1, c_silu, 0, 0}, {"sigmoid", 1, c_sigmoid, 0, 0}, {"tanh", 1, c_tanh, 0, 0},
    };
    run_cases("ops_elementwise.bin", cases, sizeof cases / sizeof cases[0]);
}

/* ---------------------------------------------------------------- reductions, matmul, views */

UNARY_CASE(c_sum, t_sum(x, 2, (int[]){0, 2}, true))
UNARY_CASE(c_sum_all, t_sum(x, 0, NULL, false))
UNARY_CASE(c_mean, t_mean(x, 1, (int[]){1}, false))
UNARY_CASE(c_var, t_var(x, 1, (int[]){-1}, true, 1))
UNARY_CASE(c_var_pop, t_var(x, 0, NULL, false, 0))
UNARY_CASE(c_max, t_max(x, 1, false))
UNARY_CASE(c_matmul, t_matmul(x, in[1]))
UNARY_CASE(c_matmul_bt, t_matmul(x, t_transpose(in[1], -1, -2)))
UNARY_CASE(c_linear, t_linear(x, in[1], in[2]))
UNARY_CASE(c_views, t_mul(t_squeeze(t_unsqueeze(t_reshape(t_slice(t_permute(x, (int[]){2, 0, 1}), 0, 1, 3), T_SHAPE(2, 6)), 0), 0),
                          t_slice(t_reshape(t_select(t_transpose(x, 1, 2), 0, 1), T_SHAPE(12)), 0, 0, 6)))

static void test_reduce_matmul_parity(void **state) {
    (void)state;
    static const Case cases[] = {
        {"sum", 1, c_sum, 0, 0},           {"sum_all", 1, c_sum_all, 0, 0},
        {"mean", 1, c_mean, 0, 0},         {"var", 1, c_var, 0, 0},
        {"var_pop", 1, c_var_pop, 0, 0},   {"max", 1, c_max, 0, 0},
        {"matmul", 2, c_matmul, 0, 0},     {"matmul_bt", 2, c_matmul_bt, 0, 0},
        {"linear", 3, c_linear, 0, 0},     {"views", 1, c_views, 0, 0},
    };
    run_cases("ops_reduce_matmul.bin", cases, sizeof cases / sizeof cases[0]);
}

/* ---------------------------------------------------------------- softmax, attention, shape ops, losses */

UNARY_CASE(c_softmax_last, t_softmax(x, -1))
UNARY_CASE(c_softmax_mid, t_softmax(x, 1))
UNARY_CASE(c_log_softmax_last, t_log_softmax(x, -1))
UNARY_CASE(c_log_softmax_first, t_log_softmax(x, 0))

static Tensor *c_attention_causal(Tensor **in, const Fixture *fx, const char *n) {
    (void)fx, (void)n;
    int64_t L = in[0]->shape[2];
    Tensor *m = t_new(T_SHAPE(L, L));
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) m->data[i * L + j] = j > i ? -INFINITY : 0.0f;
    return t_attention(in[0], in[1], in[2], m, 1.0f / sqrtf(8.0f));
}
UNARY_CASE(c_attention_cross, t_attention(x, in[1], in[2], NULL, 0.3f))
UNARY_CASE(c_attention_bias, t_attention(x, in[1], in[2], in[3], 0.25f))
static Tensor *c_attention_fused(Tensor **in, const Fixture *fx, const char *n) {
    (void)fx, (void)n;
    int perm[4] = {0, 2, 1, 3};
    Tensor *q = t_permute(t_select(in[0], 2, 0), perm), *k = t_permute(t_select(in[0], 2, 1), perm),
           *v = t_permute(t_select(in[0], 2, 2), perm);
    return t_attention(q, k, v, NULL, 0.5f);
}
UNARY_CASE(c_concat, t_concat(3, (Tensor *[]){x, in[1], in[2]}, 1))

static Tensor *weighted_cat(Tensor **p) {
    return t_concat(3, (Tensor *[]){p[0], t_mul_scalar(p[1], 2.0f), t_mul_scalar(p[2], 3.0f)}, 1);
}
static Tensor *c_split(Tensor **in, const Fixture *fx, const char *n) {
    (void)fx, (void)n;
    Tensor *p[3];
    t_split(in[0], 1, 3, (const int64_t[]){2, 4, 1}, p);
    return weighted_cat(p);
}
static Tensor *c_chunk(Tensor **in, const Fixture *fx, const char *n) {
    (void)fx, (void)n;
    Tensor *p[3];
    t_chunk(in[0], 1, 3, p);
    return weighted_cat(p);
}
UNARY_CASE(c_pad_zero, t_pad2d(x, 1, 2, 0, 3, T_PAD_ZERO))
UNARY_CASE(c_pad_reflect, t_pad2d(x, 2, 1, 3, 2, T_PAD_REFLECT))
static Tensor *c_embedding(Tensor **in, const Fixture *fx, const char *n) {
    int64_t k;
    int32_t *ids = fixture_ids(fx, n, &k);
    return t_embedding(in[0], ids, k);
}
static Tensor *c_masked_fill(Tensor **in, const Fixture *fx, const char *n) {
    (void)n;
    Tensor *m = t_unsqueeze(fixture_tensor(fx, "masked_fill.mask"), 1);   /* [3, 1, 4] */
    return t_masked_fill(in[0], m, -5.0f);
}
UNARY_CASE(c_expand, t_expand(x, T_SHAPE(2, 4, 3, 5)))
UNARY_CASE(c_l1_loss, t_l1_loss(x, in[1]))
UNARY_CASE(c_mse_loss, t_mse_loss(x, in[1]))
static Tensor *c_cross_entropy(Tensor **in, const Fixture *fx, const char *n) {
    int64_t k;
    int32_t *targets = fixture_ids(fx, n, &k);
    assert_int_equal(k, in[0]->shape[0]);
    return t_cross_entropy(in[0], targets);
}

static void test_nn_ops_parity(void **state) {
    (void)state;
    static const Case cases[] = {
        {"softmax_last", 1, c_softmax_last, 0, 0},
        {"softmax_mid", 1, c_softmax_mid, 0, 0},
        {"log_softmax_last", 1, c_log_softmax_last, 0, 0},
        {"log_softmax_first", 1, c_log_softmax_first, 0, 0},
        {"attention_causal", 3, c_attention_causal, 0, 0},
        {"attention_cross", 3, c_attention_cross, 0, 0},
        {"attention_bias", 4, c_attention_bias, 0, 0},
        {"attention_fused", 1, c_attention_fused, 0, 0},
        {"concat", 3, c_concat, 0, 0},
        {"split", 1, c_split, 0, 0},
        {"chunk", 1, c_chunk, 0, 0},
        {"pad_zero", 1, c_pad_zero, 0, 0},
        {"pad_reflect", 1, c_pad_reflect, 0, 0},
        {"embedding", 1, c_embedding, 0, 0},
        {"masked_fill", 1, c_masked_fill, 0, 0},
        {"expand", 1, c_expand, 0, 0},
        {"l1_loss", 2, c_l1_loss, 0, 0},
        {"mse_loss", 2, c_mse_loss, 0, 0},
        {"cross_entropy", 1, c_cross_entropy, 0, 0},
    };
    run_cases("ops_nn.bin", cases, sizeof cases / sizeof cases[0]);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise_parity),
        cmocka_unit_test(test_reduce_matmul_parity),
        cmocka_unit_test(test_nn_ops_parity),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
