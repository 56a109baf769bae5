/* The U-Net's fused kernels against the composed ops they replace (forward and every gradient, at sizes
 * where their tiling really splits), finite-difference checks of each new differentiable op, and the
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
#include "nn/linear_attention.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

static int teardown(void **state) {
    (void)state;
    t_set_grad_enabled(true);
    t_arena_reset();
    return 0;
}

static Tensor *rand_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi) {
    Tensor *t = t_new(ndim, shape);
    fill_uniform(t, seed, lo, hi);
    return t;
}

/* A fresh leaf copy of x (own data, requires grad). */
static Tensor *leaf_copy(const Tensor *x) {
    Tensor *c = t_from(x->ndim, x->shape, x->data);
    t_requires_grad(c);
    return c;
}

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
    Tensor *ya = nn_linear_attention_core(a, heads, dh), *yb = linear_attention_composed(b, heads, dh);
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

static Tensor *f_la_core(Tensor **in, void *ctx) {
    (void)ctx;
    return nn_linear_attention_core(in[0], 2, 4);
}

static void test_linear_attention_core_gradcheck(void **state) {
    (void)state;
    Tensor *qkv = rand_tensor(T_SHAPE(2, 24, 3, 5), 5, -2, 2);
    assert_true(gradcheck(f_la_core, 1, &qkv, NULL, 1e-2f, 2e-3, 2e-3, 1000, "linear_attention core") > 0);
}

static char seen[512];
static void record_error(const char *msg) { snprintf(seen, sizeof seen, "%s", msg); }

static void test_linear_attention_core_bad_shape(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    seen[0] = 0;
    assert_null(nn_linear_attention_core(t_zeros(T_SHAPE(1, 10, 2, 2)), 2, 4));   /* not 3·2·4 channels */
    assert_non_null(strstr(seen, "linear_attention"));
    assert_null(nn_linear_attention_core(t_zeros(T_SHAPE(24, 2, 2)), 2, 4));      /* not 4-D */
    t_set_error_handler(NULL);
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
        cmocka_unit_test_teardown(test_linear_attention_core_gradcheck, teardown),
        cmocka_unit_test_teardown(test_linear_attention_core_bad_shape, teardown),
        cmocka_unit_test_teardown(test_unet_nograd_equals_taped, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
