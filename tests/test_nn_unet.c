/* U-Net building blocks (nn/conv2d, groupnorm, channel_layernorm, time_embedding, resblock, linear_attention,
 * cross_attention, geglu, spatial_transformer, updown) against PyTorch fixtures from
 * tests/reference/gen_nn_unet.py: the torch weights are loaded into our ParamSet by their official names
 * (strict: proves every key and shape matches), then the forward output, every input gradient and every
 * parameter gradient are compared.
 * Tolerances: forward |d| <= 2e-5 + 1e-4·|ref|; gradients |d| <= 1e-4 + 1e-3·|ref| (float32 sums in a
 * different order; observed errors are ~10x below these). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nn/channel_layernorm.h"
#include "nn/conv2d.h"
#include "nn/cross_attention.h"
#include "nn/geglu.h"
#include "nn/groupnorm.h"
#include "nn/linear_attention.h"
#include "nn/module.h"
#include "nn/resblock.h"
#include "nn/spatial_transformer.h"
#include "nn/time_embedding.h"
#include "nn/updown.h"
#include "tensor/ops.h"
#include "tensor/ops_fused.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"


#define FWD_ATOL 2e-5
#define FWD_RTOL 1e-4
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-3

typedef struct {
    Fixture fx;
    ParamSet ps;
    TRng rng;
    const char *in_names[4];
    Tensor *in[4];
    int n_in;
} Harness;

static bool harness_open(Harness *h, const char *file) {
    memset(h, 0, sizeof *h);
    if (!fixture_load(&h->fx, file)) return false;
    params_init(&h->ps);
    rng_seed(&h->rng, 7);
    return true;
}

static void harness_close(Harness *h) {
    params_free(&h->ps);
    fixture_free(&h->fx);
    t_arena_reset();
}

/* Loads every "param.<key>" of the fixture into the module's ParamSet, strictly by name. */
static void harness_load_params(Harness *h) {
    NamedArray *arr = calloc((size_t)h->fx.count, sizeof *arr);
    int n = 0;
    for (int i = 0; i < h->fx.count; i++) {
        if (strncmp(h->fx.names[i], "param.", 6)) continue;
        arr[n++] = (NamedArray){h->fx.names[i] + 6, h->fx.ndim[i], h->fx.shape[i], h->fx.data[i]};
    }
    LoadReport rep;
    int rc = params_load_arrays(&h->ps, n, arr, true, &rep);
    free(arr);
    if (rc != 0) fail_msg("strict load failed: %s", t_errmsg());
    assert_int_equal(rep.loaded, h->ps.n);
    params_zero_grad(&h->ps);
}

/* The fixture input "input.<name>" as a leaf tensor (with a gradient when `grad`). */
static Tensor *harness_input(Harness *h, const char *name, bool grad) {
    char key[128];
    snprintf(key, sizeof key, "input.%s", name);
    Tensor *t = fixture_tensor(&h->fx, key);
    if (grad) {
        t_requires_grad(t);
        h->in_names[h->n_in] = name;
        h->in[h->n_in++] = t;
    }
    return t;
}

/* Forward output, then backward of sum(out · dout): input and parameter gradients. */
static void harness_check(Harness *h, Tensor *out, const char *what) {
    char msg[256];
    assert_non_null(out);
    int64_t n;
    const float *ref = fixture_get(&h->fx, "out", &n);
    assert_int_equal(t_numel(out), n);
    snprintf(msg, sizeof msg, "%s: output", what);
    check_tensor_close(out, ref, FWD_ATOL, FWD_RTOL, msg);
    t_backward_with(out, fixture_get(&h->fx, "dout", NULL));
    for (int i = 0; i < h->n_in; i++) {
        char key[128];
        snprintf(key, sizeof key, "grad.%s", h->in_names[i]);
        snprintf(msg, sizeof msg, "%s: d/d %s", what, h->in_names[i]);
        int64_t m = t_numel(h->in[i]);
        /* an input the output does not depend on gets no gradient buffer: compare zeros */
        float *zeros = h->in[i]->grad ? NULL : calloc((size_t)m, sizeof(float));
        check_close(zeros ? zeros : h->in[i]->grad, fixture_get(&h->fx, key, NULL), m, GRAD_ATOL, GRAD_RTOL, msg);
        free(zeros);
    }
    for (int i = 0; i < h->ps.n; i++) {
        char key[512];
        snprintf(key, sizeof key, "grad.%s", h->ps.items[i].name);
        snprintf(msg, sizeof msg, "%s: d/d %s", what, h->ps.items[i].name);
        int64_t m;
        const float *g = fixture_get(&h->fx, key, &m);
        assert_int_equal(m, t_numel(h->ps.items[i].t));
        check_close(h->ps.items[i].t->grad, g, m, GRAD_ATOL, GRAD_RTOL, msg);
    }
}

/* ---------------------------------------------------------------- layers */

typedef struct {
    const char *file, *prefix;
    int cin, cout, k, stride, pad;
    bool bias;
} ConvCase;

static void test_conv2d(void **state) {
    (void)state;
    const ConvCase cases[] = {
        {"nn_unet_conv3x3.bin", "m", 5, 6, 3, 1, 1, false},        /* default_conv */
        {"nn_unet_conv4x4s2.bin", "m", 4, 6, 4, 2, 1, true},       /* Downsample */
        {"nn_unet_conv7x7.bin", "init_conv", 6, 4, 7, 1, 3, false},
        {"nn_unet_conv1x1.bin", "m", 8, 5, 1, 1, 0, true},
        {"nn_unet_conv3x3s2p0.bin", "m", 3, 4, 3, 2, 0, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ConvCase *c = &cases[i];
        Harness h;
        if (!harness_open(&h, c->file)) return;
        Conv2d conv;
        conv2d_init(&conv, &h.ps, c->prefix, c->cin, c->cout, c->k, c->stride, c->pad, c->bias, &h.rng);
        harness_load_params(&h);
        harness_check(&h, conv2d_forward(&conv, harness_input(&h, "x", true)), c->file);
        harness_close(&h);
    }
}

static void test_groupnorm(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_groupnorm.bin")) return;
    GroupNorm g;
    groupnorm_init(&g, &h.ps, "norm", 32, 64, 1e-6f);
    harness_load_params(&h);
    harness_check(&h, groupnorm_forward(&g, harness_input(&h, "x", true)), "groupnorm");
    harness_close(&h);
}

static void test_channel_layernorm(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_chan_ln.bin")) return;
    ChannelLayerNorm n;
    channel_layernorm_init(&n, &h.ps, "fn.norm", 12);
    harness_load_params(&h);
    harness_check(&h, channel_layernorm_forward(&n, harness_input(&h, "x", true)), "channel layernorm");
    harness_close(&h);
}

static void test_time_mlp(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_time_mlp.bin")) return;
    TimeMLP m;
    time_mlp_init(&m, &h.ps, "time_mlp", 16, 64, &h.rng);
    harness_load_params(&h);
    int64_t n;
    const float *t = fixture_get(&h.fx, "input.time", &n);
    harness_check(&h, time_mlp_forward(&m, t, n), "time_mlp");
    harness_close(&h);
}

static void test_sinusoidal_values(void **state) {
    (void)state;
    /* dim 64 as in the U-Net (nf): f_k = exp(-k ln(1e4)/31); t = 100 */
    Tensor *e = sinusoidal_embedding((const float[]){0.0f, 100.0f}, 2, 64);
    assert_non_null(e);
    for (int k = 0; k < 32; k++) {
        assert_float_close(e->data[k], 0.0f, 0);            /* sin(0) */
        assert_float_close(e->data[32 + k], 1.0f, 0);       /* cos(0) */
        double f = exp(-k * log(10000.0) / 31.0);
        assert_float_close(e->data[64 + k], sin(100.0 * f), 2e-5);
        assert_float_close(e->data[96 + k], cos(100.0 * f), 2e-5);
    }
}

static void test_resblock(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_resblock.bin")) return;
    ResBlock b;
    resblock_init(&b, &h.ps, "downs.0.0", 8, 12, 16, &h.rng);
    assert_int_equal(h.ps.n, 5);
    harness_load_params(&h);
    Tensor *x = harness_input(&h, "x", true), *t = harness_input(&h, "temb", true);
    harness_check(&h, resblock_forward(&b, x, t), "resblock 8->12");
    harness_close(&h);

    if (!harness_open(&h, "nn_unet_resblock_same.bin")) return;
    resblock_init(&b, &h.ps, "mid_block1", 8, 8, 16, &h.rng);
    assert_int_equal(h.ps.n, 4);   /* identity res_conv: no parameter */
    harness_load_params(&h);
    x = harness_input(&h, "x", true), t = harness_input(&h, "temb", true);
    harness_check(&h, resblock_forward(&b, x, t), "resblock 8->8");
    harness_close(&h);
}

static void test_linear_attention(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_linattn.bin")) return;
    LinearAttnBlock b;
    linear_attn_block_init(&b, &h.ps, "downs.0.2", 16, &h.rng);
    harness_load_params(&h);
    harness_check(&h, linear_attn_block_forward(&b, harness_input(&h, "x", true)), "Residual(PreNorm(LinearAttention))");
    harness_close(&h);
}

static void test_cross_attention(void **state) {
    (void)state;
    const char *files[] = {"nn_unet_crossattn.bin", "nn_unet_crossattn_one.bin"};
    for (int i = 0; i < 2; i++) {
        Harness h;
        if (!harness_open(&h, files[i])) return;
        CrossAttention a;
        cross_attention_init(&a, &h.ps, "attn2", 24, 20, 3, 8, &h.rng);
        harness_load_params(&h);
        Tensor *x = harness_input(&h, "x", true), *c = harness_input(&h, "context", true);
        harness_check(&h, cross_attention_forward(&a, x, c), files[i]);
        harness_close(&h);
    }
    Harness h;
    if (!harness_open(&h, "nn_unet_selfattn.bin")) return;
    CrossAttention a;
    cross_attention_init(&a, &h.ps, "attn1", 24, 0, 2, 12, &h.rng);
    harness_load_params(&h);
    harness_check(&h, cross_attention_forward(&a, harness_input(&h, "x", true), NULL), "self-attention");
    harness_close(&h);
}

static void test_geglu(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_geglu.bin")) return;
    FeedForwardGEGLU f;
    geglu_ff_init(&f, &h.ps, "ff", 16, 4, &h.rng);
    harness_load_params(&h);
    harness_check(&h, geglu_ff_forward(&f, harness_input(&h, "x", true)), "GEGLU feed-forward");
    harness_close(&h);
}

static void test_spatial_transformer(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_spatial.bin")) return;
    SpatialTransformerBlock b;
    spatial_transformer_block_init(&b, &h.ps, "mid_attn", 32, 2, 16, 24, &h.rng);
    harness_load_params(&h);
    Tensor *x = harness_input(&h, "x", true), *c = harness_input(&h, "context", true);
    harness_check(&h, spatial_transformer_block_forward(&b, x, c), "Residual(PreNorm(SpatialTransformer))");
    harness_close(&h);
}

static void test_updown(void **state) {
    (void)state;
    Harness h;
    if (!harness_open(&h, "nn_unet_down.bin")) return;
    Downsample d;
    downsample_init(&d, &h.ps, "downs.1.3", 6, 8, &h.rng);
    harness_load_params(&h);
    harness_check(&h, downsample_forward(&d, harness_input(&h, "x", true)), "Downsample");
    harness_close(&h);

    if (!harness_open(&h, "nn_unet_up.bin")) return;
    Upsample u;
    upsample_init(&u, &h.ps, "ups.1.3", 8, 6, &h.rng);
    harness_load_params(&h);
    harness_check(&h, upsample_forward(&u, harness_input(&h, "x", true)), "Upsample");
    harness_close(&h);
}

/* ---------------------------------------------------------------- fused ops: finite differences */

static Tensor *f_scale_shift_silu(Tensor **in, void *ctx) { (void)ctx; return t_scale_shift_silu(in[0], in[1]); }
static Tensor *f_silu_add(Tensor **in, void *ctx) { (void)ctx; return t_silu_add(in[0], in[1]); }
static Tensor *f_geglu(Tensor **in, void *ctx) { (void)ctx; return t_geglu(in[0]); }

static void test_fused_ops_gradcheck(void **state) {
    (void)state;
    Tensor *h = t_new(T_SHAPE(2, 3, 4, 5)), *ss = t_new(T_SHAPE(2, 6)), *r = t_new(T_SHAPE(2, 3, 4, 5));
    fill_uniform(h, 1, -6, 6);
    fill_uniform(ss, 2, -1, 1);
    fill_uniform(r, 3, -1, 1);
    gradcheck(f_scale_shift_silu, 2, (Tensor *[]){h, ss}, NULL, 1e-2f, 2e-3, 2e-3, 1000, "scale_shift_silu");
    gradcheck(f_silu_add, 2, (Tensor *[]){h, r}, NULL, 1e-2f, 2e-3, 2e-3, 1000, "silu_add");
    Tensor *g = t_new(T_SHAPE(3, 4, 8));
    fill_uniform(g, 4, -4, 4);
    gradcheck(f_geglu, 1, (Tensor *[]){g}, NULL, 1e-2f, 2e-3, 2e-3, 1000, "geglu");
}

static void test_fused_ops_extremes(void **state) {
    (void)state;
    /* the clamped exp must keep silu/gelu exact in the tails: silu(-200) = -0, silu(200) = 200 */
    Tensor *a = t_from(T_SHAPE(1, 4), (const float[]){-200.0f, -90.0f, 90.0f, 200.0f});
    Tensor *y = t_silu_add(a, t_zeros(T_SHAPE(1, 4)));
    assert_non_null(y);
    assert_float_close(y->data[0], 0.0f, 1e-30);
    assert_float_close(y->data[1], 0.0f, 1e-30);
    assert_float_close(y->data[2], 90.0f, 1e-5);
    assert_float_close(y->data[3], 200.0f, 1e-5);
    Tensor *x = t_from(T_SHAPE(1, 4), (const float[]){3.0f, 5.0f, -30.0f, 30.0f});   /* a = 3, 5; g = -30, 30 */
    Tensor *z = t_geglu(x);
    assert_float_close(z->data[0], 0.0f, 1e-30);
    assert_float_close(z->data[1], 150.0f, 1e-4);
}

/* ---------------------------------------------------------------- init and sizes */

static bool all_equal(const Tensor *t, float v) {
    for (int64_t i = 0; i < t_numel(t); i++)
        if (t->data[i] != v) return false;
    return true;
}

static void test_init_matches_pytorch_defaults(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 1);
    /* the benchmark configurations; counts from instantiating the torch modules in gen_nn_unet.py */
    SpatialTransformerBlock st;
    spatial_transformer_block_init(&st, &ps, "downs.3.2", 256, 8, 32, 512, &r);
    assert_int_equal(ps.n, 27);
    assert_int_equal(params_count(&ps, "", false), 1578496);
    assert_true(all_equal(st.st.proj_out.weight, 0.0f) && all_equal(st.st.proj_out.bias, 0.0f));  /* zero_module */
    assert_true(all_equal(st.st.norm.weight, 1.0f) && all_equal(st.st.norm.bias, 0.0f));
    assert_true(all_equal(st.norm.g, 1.0f));
    assert_non_null(params_find(&ps, "downs.3.2.fn.fn.transformer_blocks.0.attn2.to_k.weight"));
    assert_int_equal(params_find(&ps, "downs.3.2.fn.fn.transformer_blocks.0.attn2.to_k.weight")->t->shape[1], 512);
    params_free(&ps);

    params_init(&ps);
    ResBlock rb;
    resblock_init(&rb, &ps, "downs.2.0", 128, 128, 256, &r);
    assert_int_equal(ps.n, 4);
    assert_int_equal(params_count(&ps, "", false), 360704);
    /* kaiming-uniform bound 1/sqrt(fan_in), fan_in = 128·3·3: inside the bound and spread over it */
    float bound = 1.0f / sqrtf(128 * 9), mx = 0;
    for (int64_t i = 0; i < t_numel(rb.block1.weight); i++) mx = fmaxf(mx, fabsf(rb.block1.weight->data[i]));
    assert_true(mx <= bound && mx > 0.95f * bound);
    params_free(&ps);
    resblock_init(&rb, &ps, "downs.0.0", 64, 128, 256, &r);
    assert_int_equal(ps.n, 5);
    assert_int_equal(params_count(&ps, "", false), 295168);
    params_free(&ps);
    LinearAttnBlock la;
    linear_attn_block_init(&la, &ps, "downs.0.2", 64, &r);
    assert_int_equal(ps.n, 5);
    assert_int_equal(params_count(&ps, "", false), 32960);
    params_free(&ps);
}

static char seen[512];
static void record_error(const char *msg) { snprintf(seen, sizeof seen, "%s", msg); }

static void test_shape_errors(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    Tensor *h = t_zeros(T_SHAPE(2, 4, 3, 3));
    assert_null(t_scale_shift_silu(h, t_zeros(T_SHAPE(2, 4))));     /* needs [2, 8] */
    assert_non_null(strstr(seen, "scale_shift_silu"));
    assert_null(t_geglu(t_zeros(T_SHAPE(3, 5))));                  /* odd last axis */
    assert_non_null(strstr(seen, "geglu"));
    assert_null(t_silu_add(h, t_zeros(T_SHAPE(2, 4, 3, 2))));
    assert_non_null(strstr(seen, "silu_add"));
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 3);
    CrossAttention a;
    cross_attention_init(&a, &ps, "attn2", 8, 6, 2, 4, &r);
    assert_null(cross_attention_forward(&a, t_zeros(T_SHAPE(2, 5, 7)), t_zeros(T_SHAPE(2, 1, 6))));  /* width 7 != 8 */
    assert_non_null(strstr(seen, "cross_attention"));
    params_free(&ps);
    assert_null(sinusoidal_embedding((const float[]){1.0f}, 1, 7));
    assert_non_null(strstr(seen, "sinusoidal"));
    t_set_error_handler(NULL);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_conv2d, arena_teardown),
        cmocka_unit_test_teardown(test_groupnorm, arena_teardown),
        cmocka_unit_test_teardown(test_channel_layernorm, arena_teardown),
        cmocka_unit_test_teardown(test_time_mlp, arena_teardown),
        cmocka_unit_test_teardown(test_sinusoidal_values, arena_teardown),
        cmocka_unit_test_teardown(test_resblock, arena_teardown),
        cmocka_unit_test_teardown(test_linear_attention, arena_teardown),
        cmocka_unit_test_teardown(test_cross_attention, arena_teardown),
        cmocka_unit_test_teardown(test_geglu, arena_teardown),
        cmocka_unit_test_teardown(test_spatial_transformer, arena_teardown),
        cmocka_unit_test_teardown(test_updown, arena_teardown),
        cmocka_unit_test_teardown(test_fused_ops_gradcheck, arena_teardown),
        cmocka_unit_test_teardown(test_fused_ops_extremes, arena_teardown),
        cmocka_unit_test_teardown(test_init_matches_pytorch_defaults, arena_teardown),
        cmocka_unit_test_teardown(test_shape_errors, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
