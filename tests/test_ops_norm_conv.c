/* Normalisation, convolution and resampling ops: finite-difference gradient checks on random shapes
 * (strides, padding, 1×1, 4×4/2 down-convs, 7×7 stems, bias on/off, non-contiguous inputs), parity with
 * PyTorch on fixed inputs (tests/reference/gen_norm_conv.py -> tests/fixtures/norm_conv_*.bin), and
 * shape errors that name the op and the shapes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tensor/conv_geom.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

/* A view of a [d1, d0, ...] buffer with its first two axes swapped: same logical shape as shape,
 * non-contiguous. gradcheck perturbs the parent (inputs[]), the op sees the view. */
static Tensor *swap01(Tensor *parent) { return t_transpose(parent, 0, 1); }

/* ---------------------------------------------------------------- layer_norm */

typedef struct {
    int affine;          /* 0 none, 1 weight, 2 weight + bias */
    int noncontig;       /* input is a transposed view */
} LNCtx;

static Tensor *f_layer_norm(Tensor **in, void *ctx) {
    LNCtx *c = ctx;
    Tensor *x = c->noncontig ? swap01(in[0]) : in[0];
    return t_layer_norm(x, c->affine >= 1 ? in[1] : NULL, c->affine >= 2 ? in[2] : NULL, 1e-5f);
}

static void test_layer_norm_grad(void **state) {
    (void)state;
    const int64_t shapes[][3] = {{3, 5, 7}, {2, 4, 16}, {6, 1, 33}};
    for (int s = 0; s < 3; s++)
        for (int affine = 0; affine < 3; affine++)
            for (int nc = 0; nc < 2; nc++) {
                LNCtx c = {affine, nc};
                const int64_t *sh = shapes[s];
                int64_t psh[3] = {nc ? sh[1] : sh[0], nc ? sh[0] : sh[1], sh[2]};
                Tensor *in[3] = {rand_tensor(3, psh, 10 + s, -2, 2), rand_tensor(T_SHAPE(sh[2]), 20 + s, 0.5f, 1.5f),
                                 rand_tensor(T_SHAPE(sh[2]), 30 + s, -1, 1)};
                gradcheck(f_layer_norm, 1 + affine, in, &c, 1e-2f, 3e-3, 3e-3, 400, "layer_norm");
            }
}

/* ---------------------------------------------------------------- group_norm / channel layer norm */

typedef struct {
    int groups, affine, noncontig;
} GNCtx;

static Tensor *f_group_norm(Tensor **in, void *ctx) {
    GNCtx *c = ctx;
    Tensor *x = c->noncontig ? swap01(in[0]) : in[0];
    return t_group_norm(x, c->groups, c->affine >= 1 ? in[1] : NULL, c->affine >= 2 ? in[2] : NULL, 1e-5f);
}

static void test_group_norm_grad(void **state) {
    (void)state;
    const int64_t shapes[][4] = {{2, 6, 3, 5}, {3, 4, 7, 1}, {1, 8, 4, 4}};
    const int groups[] = {3, 2, 8};
    for (int s = 0; s < 3; s++)
        for (int affine = 0; affine < 3; affine += 2)
            for (int nc = 0; nc < 2; nc++) {
                GNCtx c = {groups[s], affine, nc};
                const int64_t *sh = shapes[s];
                int64_t psh[4] = {nc ? sh[1] : sh[0], nc ? sh[0] : sh[1], sh[2], sh[3]};
                Tensor *in[3] = {rand_tensor(4, psh, 40 + s, -2, 2), rand_tensor(T_SHAPE(sh[1]), 50 + s, 0.5f, 1.5f),
                                 rand_tensor(T_SHAPE(sh[1]), 60 + s, -1, 1)};
                gradcheck(f_group_norm, 1 + affine, in, &c, 1e-2f, 3e-3, 3e-3, 400, "group_norm");
            }
    /* a rank-3 input [N, C, L] and the weight-only form */
    GNCtx c = {2, 1, 0};
    Tensor *in[2] = {rand_tensor(T_SHAPE(2, 4, 9), 70, -1, 3), rand_tensor(T_SHAPE(4), 71, 0.5f, 1.5f)};
    gradcheck(f_group_norm, 2, in, &c, 1e-2f, 3e-3, 3e-3, 400, "group_norm rank 3");
}

static Tensor *f_channel_ln(Tensor **in, void *ctx) {
    int nc = *(int *)ctx;
    Tensor *x = nc ? t_permute(in[0], (int[]){0, 3, 1, 2}) : in[0];   /* parent [N, H, W, C] */
    return t_channel_layer_norm(x, in[1], 1e-5f);
}

static void test_channel_layer_norm_grad(void **state) {
    (void)state;
    const int64_t shapes[][4] = {{2, 5, 3, 4}, {1, 8, 23, 31}, {2, 16, 1, 2}};
    for (int s = 0; s < 3; s++)
        for (int nc = 0; nc < 2; nc++) {
            const int64_t *sh = shapes[s];
            int64_t psh[4] = {sh[0], nc ? sh[2] : sh[1], nc ? sh[3] : sh[2], nc ? sh[1] : sh[3]};
            Tensor *in[2] = {rand_tensor(4, psh, 80 + s, -2, 2), rand_tensor(T_SHAPE(1, sh[1], 1, 1), 90 + s, 0.5f, 1.5f)};
            gradcheck(f_channel_ln, 2, in, &nc, 1e-2f, 3e-3, 3e-3, 300, "channel_layer_norm");
        }
}

/* ---------------------------------------------------------------- conv2d */

typedef struct {
    int64_t n, cin, h, w, cout, kh, kw;
    int sh, sw, ph, pw, bias, noncontig;
} ConvCase;

static Tensor *f_conv(Tensor **in, void *ctx) {
    ConvCase *c = ctx;
    Tensor *x = c->noncontig ? swap01(in[0]) : in[0];
    return t_conv2d_ex(x, in[1], c->bias ? in[2] : NULL, c->sh, c->sw, c->ph, c->pw);
}

static void test_conv2d_grad(void **state) {
    (void)state;
    const ConvCase cases[] = {
        {2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1, 1, 0},     /* 3×3 same padding, bias */
        {2, 3, 9, 8, 4, 3, 3, 2, 2, 1, 1, 0, 0},     /* stride 2, no bias */
        {2, 5, 6, 7, 3, 1, 1, 1, 1, 0, 0, 1, 0},     /* 1×1 direct path */
        {2, 4, 6, 7, 3, 1, 1, 2, 2, 0, 0, 0, 0},     /* 1×1 stride 2 (im2col) */
        {2, 3, 10, 12, 5, 4, 4, 2, 2, 1, 1, 1, 0},   /* 4×4 stride-2 down-conv */
        {1, 3, 13, 11, 4, 7, 7, 1, 1, 3, 3, 1, 0},   /* 7×7 stem */
        {2, 3, 40, 20, 2, 3, 3, 1, 1, 1, 1, 1, 0},   /* several tiles per image: parallel + two-phase col2im */
        {1, 2, 50, 16, 2, 7, 7, 2, 2, 3, 3, 0, 0},   /* several tiles, 7×7 halo with stride 2 */
        {3, 4, 6, 5, 3, 3, 2, 2, 1, 0, 1, 1, 1},     /* rectangular kernel and strides, non-contiguous input */
        {4, 3, 5, 5, 2, 1, 1, 1, 1, 0, 0, 0, 1},     /* 1×1 direct, non-contiguous input */
        {3, 2, 6, 7, 3, 3, 2, 1, 1, 0, 1, 1, 0},     /* stride 1, rectangular kernel, uneven padding */
        {2, 3, 8, 8, 2, 3, 3, 1, 1, 0, 0, 1, 1},     /* stride 1, no padding, non-contiguous input */
        {2, 3, 8, 12, 4, 4, 4, 4, 4, 0, 0, 1, 0},    /* patchify (stride = kernel, ViT patch embedding) */
        {3, 2, 6, 9, 3, 2, 3, 2, 3, 0, 0, 0, 1},     /* patchify, rectangular, non-contiguous input */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ConvCase c = cases[i];
        int64_t xs[4] = {c.noncontig ? c.cin : c.n, c.noncontig ? c.n : c.cin, c.h, c.w};
        Tensor *in[3] = {rand_tensor(4, xs, 100 + i, -1, 1), rand_tensor(T_SHAPE(c.cout, c.cin, c.kh, c.kw), 200 + i, -1, 1),
                         rand_tensor(T_SHAPE(c.cout), 300 + i, -1, 1)};
        char what[64];
        snprintf(what, sizeof what, "conv2d case %zu", i);
        gradcheck(f_conv, c.bias ? 3 : 2, in, &c, 1e-2f, 3e-3, 3e-3, 300, what);
    }
}

/* The implicit-GEMM path splits a batch into chunks of images when the padded input is large; force
 * one image per chunk and check the gradients again (stride-1 cases take that path). */
static void test_conv2d_grad_chunked(void **state) {
    (void)state;
    int64_t saved = conv_implicit_chunk_bytes;
    conv_implicit_chunk_bytes = 1;
    ConvCase c = {3, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 0};
    Tensor *in[3] = {rand_tensor(T_SHAPE(c.n, c.cin, c.h, c.w), 401, -1, 1),
                     rand_tensor(T_SHAPE(c.cout, c.cin, c.kh, c.kw), 402, -1, 1), rand_tensor(T_SHAPE(c.cout), 403, -1, 1)};
    gradcheck(f_conv, 3, in, &c, 1e-2f, 3e-3, 3e-3, 300, "conv2d chunked");
    conv_implicit_chunk_bytes = saved;
}

/* ---------------------------------------------------------------- upsample / avg_pool */

typedef struct {
    int op, k, s, noncontig;
} PoolCtx;

static Tensor *f_pool(Tensor **in, void *ctx) {
    PoolCtx *c = ctx;
    Tensor *x = c->noncontig ? swap01(in[0]) : in[0];
    return c->op == 0 ? t_upsample_nearest2x(x) : t_avg_pool2d(x, c->k, c->s);
}

static void test_resample_grad(void **state) {
    (void)state;
    const PoolCtx cases[] = {{0, 0, 0, 0}, {0, 0, 0, 1}, {1, 2, 2, 0}, {1, 3, 2, 1}, {1, 3, 1, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PoolCtx c = cases[i];
        Tensor *in[1] = {rand_tensor(T_SHAPE(2, 3, 7, 6), 400 + i, -1, 1)};
        gradcheck(f_pool, 1, in, &c, 1e-2f, 2e-3, 2e-3, 300, c.op ? "avg_pool2d" : "upsample_nearest2x");
    }
}

/* ---------------------------------------------------------------- parity with PyTorch */

/* Runs op on the fixture's inputs `<prefix>.<name>`, back-propagates `<prefix>.gy` and compares the
 * output with `<prefix>.y` and each input gradient with `<prefix>.d<name>`. */
typedef Tensor *(*ParityFn)(Tensor **in, const char *prefix);

static void check_parity(const Fixture *fx, const char *prefix, int n_in, const char *const *names, ParityFn op,
                         double atol, double rtol) {
    char key[64];
    Tensor *in[3];
    for (int i = 0; i < n_in; i++) {
        snprintf(key, sizeof key, "%s.%s", prefix, names[i]);
        in[i] = fixture_tensor(fx, key);
        t_requires_grad(in[i]);
    }
    Tensor *y = op(in, prefix);
    assert_non_null(y);
    snprintf(key, sizeof key, "%s.y", prefix);
    int64_t n;
    const float *ey = fixture_get(fx, key, &n);
    assert_int_equal(n, t_numel(y));
    check_tensor_close(y, ey, atol, rtol, key);
    snprintf(key, sizeof key, "%s.gy", prefix);
    t_backward_with(y, fixture_get(fx, key, NULL));
    for (int i = 0; i < n_in; i++) {
        snprintf(key, sizeof key, "%s.d%s", prefix, names[i]);
        const float *eg = fixture_get(fx, key, &n);
        assert_int_equal(n, t_numel(in[i]));
        assert_non_null(in[i]->grad);
        check_close(in[i]->grad, eg, n, atol, rtol, key);
    }
}

static Tensor *p_norm(Tensor **in, const char *prefix) {
    if (!strcmp(prefix, "ln")) return t_layer_norm(in[0], in[1], in[2], 1e-5f);
    if (!strcmp(prefix, "ln_plain")) return t_layer_norm(in[0], NULL, NULL, 1e-6f);
    if (!strcmp(prefix, "gn")) return t_group_norm(in[0], 4, in[1], in[2], 1e-5f);
    if (!strcmp(prefix, "gn32")) return t_group_norm(in[0], 32, in[1], in[2], 1e-6f);
    return t_channel_layer_norm(in[0], in[1], 1e-5f);
}

/* Norms: float32 against a float64 reference; 1e-4 covers float rounding of the statistics. */
static void test_norms_match_torch(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "norm_conv_norms.bin")) return;
    const char *xwb[] = {"x", "w", "b"}, *xg[] = {"x", "g_"};
    check_parity(&fx, "ln", 3, xwb, p_norm, 1e-4, 1e-4);
    check_parity(&fx, "ln_plain", 1, xwb, p_norm, 1e-4, 1e-4);
    check_parity(&fx, "gn", 3, xwb, p_norm, 1e-4, 1e-4);
    check_parity(&fx, "gn32", 3, xwb, p_norm, 1e-4, 1e-4);
    check_parity(&fx, "cln", 2, xg, p_norm, 1e-4, 1e-4);
    check_parity(&fx, "cln_big", 2, xg, p_norm, 1e-4, 1e-4);
    fixture_free(&fx);
}

static Tensor *p_conv(Tensor **in, const char *prefix) {
    static const struct { const char *name; int stride, pad, bias; } cs[] = {
        {"c3", 1, 1, 1}, {"c3s2", 2, 1, 0}, {"c4s2", 2, 1, 1}, {"c1", 1, 0, 1}, {"c7", 1, 3, 1}, {"c3big", 1, 1, 1}};
    if (!strcmp(prefix, "up")) return t_upsample_nearest2x(in[0]);
    if (!strcmp(prefix, "pool2")) return t_avg_pool2d(in[0], 2, 2);
    if (!strcmp(prefix, "pool3s2")) return t_avg_pool2d(in[0], 3, 2);
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        if (!strcmp(prefix, cs[i].name)) return t_conv2d(in[0], in[1], cs[i].bias ? in[2] : NULL, cs[i].stride, cs[i].pad);
    return NULL;
}

/* Convolutions: sums of up to K = 8·3·3 products in float32; 1e-4 absolute + relative. */
static void test_convs_match_torch(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "norm_conv_convs.bin")) return;
    const char *xwb[] = {"x", "w", "b"};
    check_parity(&fx, "c3", 3, xwb, p_conv, 1e-4, 1e-4);
    check_parity(&fx, "c3s2", 2, xwb, p_conv, 1e-4, 1e-4);
    check_parity(&fx, "c4s2", 3, xwb, p_conv, 1e-4, 1e-4);
    check_parity(&fx, "c1", 3, xwb, p_conv, 1e-4, 1e-4);
    check_parity(&fx, "c7", 3, xwb, p_conv, 1e-4, 1e-4);
    check_parity(&fx, "c3big", 3, xwb, p_conv, 1e-4, 1e-4);
    check_parity(&fx, "up", 1, xwb, p_conv, 1e-6, 1e-6);
    check_parity(&fx, "pool2", 1, xwb, p_conv, 1e-6, 1e-5);
    check_parity(&fx, "pool3s2", 1, xwb, p_conv, 1e-6, 1e-5);
    fixture_free(&fx);
}

/* ---------------------------------------------------------------- errors */

static char seen[512];
static void record_error(const char *msg) { snprintf(seen, sizeof seen, "%s", msg); }

static void expect_error(Tensor *result, const char *op, const char *shape) {
    assert_null(result);
    if (!strstr(seen, op) || !strstr(seen, shape)) fail_msg("error '%s' should name %s and %s", seen, op, shape);
}

static void test_bad_shapes_name_op_and_shapes(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    Tensor *x = t_new(T_SHAPE(2, 6, 5, 5)), *x3 = t_new(T_SHAPE(2, 6, 5));
    expect_error(t_layer_norm(x, t_new(T_SHAPE(4)), NULL, 1e-5f), "layer_norm", "[2, 6, 5, 5]");
    assert_non_null(strstr(seen, "[4]"));
    expect_error(t_group_norm(x, 4, NULL, NULL, 1e-5f), "group_norm", "[2, 6, 5, 5]");
    expect_error(t_group_norm(x, 3, t_new(T_SHAPE(5)), NULL, 1e-5f), "group_norm", "[5]");
    expect_error(t_channel_layer_norm(x3, NULL, 1e-5f), "channel_layer_norm", "[2, 6, 5]");
    expect_error(t_channel_layer_norm(x, t_new(T_SHAPE(1, 5, 1, 1)), 1e-5f), "channel_layer_norm", "[1, 5, 1, 1]");
    expect_error(t_conv2d(x, t_new(T_SHAPE(4, 5, 3, 3)), NULL, 1, 1), "conv2d", "[4, 5, 3, 3]");
    assert_non_null(strstr(seen, "[2, 6, 5, 5]"));
    expect_error(t_conv2d(x3, t_new(T_SHAPE(4, 6, 3, 3)), NULL, 1, 1), "conv2d", "[2, 6, 5]");
    expect_error(t_conv2d(x, t_new(T_SHAPE(4, 6, 7, 7)), NULL, 1, 0), "conv2d", "[4, 6, 7, 7]");
    expect_error(t_conv2d(x, t_new(T_SHAPE(4, 6, 3, 3)), t_new(T_SHAPE(3)), 1, 1), "conv2d", "[3]");
    expect_error(t_conv2d(x, t_new(T_SHAPE(4, 6, 3, 3)), NULL, 0, 1), "conv2d", "stride 0");
    expect_error(t_upsample_nearest2x(x3), "upsample_nearest2x", "[2, 6, 5]");
    expect_error(t_avg_pool2d(x, 6, 1), "avg_pool2d", "[2, 6, 5, 5]");
    expect_error(t_avg_pool2d(x3, 2, 2), "avg_pool2d", "[2, 6, 5]");
    t_set_error_handler(NULL);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_layer_norm_grad, arena_teardown),
        cmocka_unit_test_teardown(test_group_norm_grad, arena_teardown),
        cmocka_unit_test_teardown(test_channel_layer_norm_grad, arena_teardown),
        cmocka_unit_test_teardown(test_conv2d_grad, arena_teardown),
        cmocka_unit_test_teardown(test_conv2d_grad_chunked, arena_teardown),
        cmocka_unit_test_teardown(test_resample_grad, arena_teardown),
        cmocka_unit_test_teardown(test_norms_match_torch, arena_teardown),
        cmocka_unit_test_teardown(test_convs_match_torch, arena_teardown),
        cmocka_unit_test_teardown(test_bad_shapes_name_op_and_shapes, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
