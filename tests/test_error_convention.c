/* The library's error convention (tensor/tensor.h "Errors"): the default handler never exits, one message
 * channel, and out of memory reported like any other error. The out-of-memory paths are driven by capping
 * the arena (t_arena_set_limit) at every size from "nothing fits" to "everything fits": at each cap a
 * computation either fails cleanly (NULL, t_arena_failed(), a message naming the arena) or gives exactly the
 * uncapped result. Under `make san` this proves no allocation site dereferences a failed allocation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irsde/unet.h"
#include "nn/linear_attention.h"
#include "nn/module.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

static void fill(Tensor *t, uint64_t seed) {
    TRng r;
    rng_seed(&r, seed);
    t_fill_normal(t, &r, 0.0f, 0.5f);
}

static void test_default_handler_keeps_the_message(void **state) {
    (void)state;
    t_set_error_handler(NULL);
    Tensor *a = t_zeros(T_SHAPE(2, 3)), *b = t_zeros(T_SHAPE(4, 5));
    assert_null(t_matmul(a, b));   /* the default handler returned: the op gives NULL, the test goes on */
    assert_non_null(strstr(t_errmsg(), "matmul"));
    /* one channel: the readers' messages and the ops' messages are the same buffer */
    t_set_errmsg("file.bin: truncated");
    assert_string_equal(t_errmsg(), "file.bin: truncated");
    assert_null(t_add(NULL, a));
    t_arena_reset();
}

static int handler_calls;
static void count_calls(const char *msg) {
    (void)msg;
    handler_calls++;
}

static void test_out_of_memory_goes_through_the_handler(void **state) {
    (void)state;
    t_arena_shutdown();
    t_arena_set_limit((size_t)1 << 20);
    handler_calls = 0;
    TErrorHandler prev = t_set_error_handler(count_calls);
    Tensor *small = t_new(T_SHAPE(1024));          /* 4 KB: fits */
    assert_non_null(small);
    assert_false(t_arena_failed());
    Tensor *big = t_new(T_SHAPE(1024, 1024));      /* 4 MB: does not */
    assert_null(big);
    assert_true(t_arena_failed());
    assert_int_equal(handler_calls, 1);
    assert_non_null(strstr(t_errmsg(), "out of memory"));
    assert_null(t_relu(big));                      /* NULL in, NULL out */
    t_arena_reset();
    assert_false(t_arena_failed());                /* the latch is per step */
    t_set_error_handler(prev);
    t_arena_set_limit(0);
    t_arena_shutdown();
}

/* ---------------------------------------------------------------- sweeps over arena caps */

typedef Tensor *(*Forward)(void *ctx);

/* Runs f uncapped for the reference, then under `caps` caps spread from nothing to a little above what the
 * uncapped run used. Returns how many caps failed cleanly; fails the test on a result that is neither a
 * clean failure nor the reference. */
static int sweep(Forward f, void *ctx, int caps) {
    t_arena_shutdown();
    t_arena_set_limit(0);
    Tensor *ref_t = f(ctx);
    if (!ref_t) fail_msg("uncapped run failed: %s", t_errmsg());
    size_t hi = t_arena_high_water() + t_arena_high_water() / 8, step = hi / (size_t)caps;
    int64_t n = t_numel(ref_t);
    float *ref = malloc(sizeof(float) * (size_t)n);
    memcpy(ref, ref_t->data, sizeof(float) * (size_t)n);
    int failed = 0, ok = 0;
    for (size_t cap = step; cap <= hi; cap += step) {
        t_arena_shutdown();
        t_arena_set_limit(cap);
        Tensor *y = f(ctx);
        if (!y || t_arena_failed()) {
            assert_true(t_arena_failed());
            assert_non_null(strstr(t_errmsg(), "out of memory"));
            failed++;
            continue;
        }
        assert_int_equal(t_numel(y), n);
        assert_memory_equal(y->data, ref, sizeof(float) * (size_t)n);
        ok++;
    }
    free(ref);
    t_arena_set_limit(0);
    t_arena_shutdown();
    assert_true(failed > 0);   /* the sweep reached the failure paths ... */
    assert_true(ok > 0);       /* ... and the caps where everything fits */
    return failed;
}

typedef struct {
    Tensor *w, *b, *w1;
    const float *x;
    int64_t shape[4];
} ConvCtx;

/* a 3×3 convolution (implicit GEMM) then a 1×1 one, inputs copied into the arena */
static Tensor *conv_chain(void *p) {
    ConvCtx *c = p;
    Tensor *x = t_from(4, c->shape, c->x);
    return t_conv2d(t_relu(t_conv2d(x, c->w, c->b, 1, 1)), c->w1, NULL, 1, 0);
}

static void test_conv_under_every_cap(void **state) {
    (void)state;
    TErrorHandler prev = t_set_error_handler(NULL);
    ConvCtx c = {.shape = {2, 16, 24, 24}};
    c.w = t_param_new(T_SHAPE(16, 16, 3, 3), false);
    c.b = t_param_new(T_SHAPE(16), false);
    c.w1 = t_param_new(T_SHAPE(8, 16, 1, 1), false);
    fill(c.w, 1), fill(c.b, 2), fill(c.w1, 3);
    Tensor *x = t_param_new(4, c.shape, false);
    fill(x, 4);
    c.x = x->data;
    sweep(conv_chain, &c, 200);
    t_free(c.w), t_free(c.b), t_free(c.w1), t_free(x);
    t_set_error_handler(prev);
}

typedef struct {
    ConditionalUNet u;
    ParamSet ps;
    Tensor *in[4];   /* x_t, cond, degradation and content embeddings (persistent, copied per run) */
    const float *x, *cond, *degra, *content;
    int64_t shape[4];
    float time;
    int context;
} UNetCtx;

/* The small U-Net preset with a 16-wide context on a side×side image, random weights and inputs. */
static void unet_ctx_init(UNetCtx *c, int64_t side, float time, uint64_t seed) {
    UNetConfig cfg;
    assert_int_equal(unet_config_preset("small", &cfg), 0);
    cfg.context_dim = 16;
    *c = (UNetCtx){.shape = {1, 3, side, side}, .time = time, .context = 16};
    params_init(&c->ps);
    TRng rng;
    rng_seed(&rng, seed);
    assert_int_equal(unet_init(&c->u, &c->ps, "", &cfg, &rng), 0);
    c->in[0] = t_param_new(4, c->shape, false), c->in[1] = t_param_new(4, c->shape, false);
    c->in[2] = t_param_new(T_SHAPE(1, 16), false), c->in[3] = t_param_new(T_SHAPE(1, 16), false);
    for (int i = 0; i < 4; i++) fill(c->in[i], seed + 1 + (uint64_t)i);
    c->x = c->in[0]->data, c->cond = c->in[1]->data, c->degra = c->in[2]->data, c->content = c->in[3]->data;
}

static void unet_ctx_free(UNetCtx *c) {
    for (int i = 0; i < 4; i++) t_free(c->in[i]);
    params_free(&c->ps);
}

/* The U-Net's forward on the context's inputs, with the tape on or off. */
static Tensor *unet_run(UNetCtx *c, bool grad) {
    bool prev = t_set_grad_enabled(grad);
    Tensor *x = t_from(4, c->shape, c->x), *cond = t_from(4, c->shape, c->cond);
    Tensor *d = t_from(T_SHAPE(1, c->context), c->degra), *ct = t_from(T_SHAPE(1, c->context), c->content);
    Tensor *y = unet_forward(&c->u, x, cond, &c->time, d, ct);
    t_set_grad_enabled(prev);
    return y;
}

static Tensor *unet_call(void *p) { return unet_run(p, false); }

/* sweep() over f on a U-Net context built with unet_ctx_init(side, time, seed). */
static void sweep_unet(Forward f, int64_t side, float time, uint64_t seed, int caps) {
    TErrorHandler prev = t_set_error_handler(NULL);
    UNetCtx c;
    unet_ctx_init(&c, side, time, seed);
    sweep(f, &c, caps);
    unet_ctx_free(&c);
    t_set_error_handler(prev);
}

static void test_unet_under_every_cap(void **state) {
    (void)state;
    sweep_unet(unet_call, 24, 7.0f, 9, 400);
}

/* A training step of the same U-Net: forward with the tape, loss = mean(out²), backward. The result is every
 * parameter's gradient, concatenated: under a cap the step fails (NULL forward or t_backward -1) or every
 * gradient equals the uncapped step's. */
static Tensor *unet_train_step(void *p) {
    UNetCtx *u = p;
    ParamSet *ps = &u->ps;
    params_zero_grad(ps);
    Tensor *y = unet_run(u, true);
    /* through binary ops too: their backward allocates broadcast scratch and gradient buffers */
    bool prev = t_set_grad_enabled(true);
    Tensor *loss = y ? t_mse_loss(t_add(y, t_mul(y, y)), t_zeros(4, y->shape)) : NULL;
    t_set_grad_enabled(prev);
    if (!loss || t_backward(loss)) return NULL;
    int64_t total = 0;
    for (int i = 0; i < ps->n; i++) total += t_numel(ps->items[i].t);
    Tensor *g = t_new(T_SHAPE(total));
    if (!g) return NULL;
    int64_t at = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i].t;
        if (t->grad && !t->grad_stale) memcpy(g->data + at, t->grad, sizeof(float) * (size_t)t_numel(t));
        else memset(g->data + at, 0, sizeof(float) * (size_t)t_numel(t));
        at += t_numel(t);
    }
    return g;
}

static void test_unet_training_step_under_every_cap(void **state) {
    (void)state;
    sweep_unet(unet_train_step, 16, 3.0f, 11, 300);
}

int main(void) {
    t_init();
    t_set_threads(1);   /* hundreds of small runs: thread wake-ups would dominate; results do not depend on it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_handler_keeps_the_message),
        cmocka_unit_test(test_out_of_memory_goes_through_the_handler),
        cmocka_unit_test(test_conv_under_every_cap),
        cmocka_unit_test(test_unet_under_every_cap),
        cmocka_unit_test(test_unet_training_step_under_every_cap),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
