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

static int teardown(void **state) {
    (void)state;
    t_arena_reset();
    return 0;
}

static Tensor *rnd(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi) {
    Tensor *t = t_new(ndim, shape);
    fill_uniform(t, seed, lo, hi);
    return t;
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
                Tensor *in[1] = {rnd(T_SHAPE(3, 4, 5), 10 + (uint64_t)axis, -2, 2)};
                gradcheck(f_softmax, 1, in, &c, EPS, TOL, TOL, 200, log_mode ? "log_softmax" : "softmax");
            }
    /* wide inner extent: more than one 64-column block */
    SmCtx c = {0, 0, 0};
    Tensor *in[1] = {rnd(T_SHAPE(3, 70), 3, -2, 2)};
    gradcheck(f_softmax, 1, in, &c, EPS, TOL, TOL, 200, "softmax wide");
    c.log_mode = 1;
    in[0] = rnd(T_SHAPE(3, 70), 4, -2, 2);   /* fresh input: the tape still holds the first graph */
    gradcheck(f_softmax, 1, in, &c, EPS, TOL, TOL, 200, "log_softmax wide");
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
        Tensor *in[5] = {rnd(T_SHAPE(2, 3, 4, 6), 1, -1, 1), rnd(T_SHAPE(2, 3, 5, 6), 2, -1, 1),
                         rnd(T_SHAPE(2, 3, 7, 5), 3, -1, 1), causal_mask(4, 5), rnd(T_SHAPE(4, 5), 4, -1, 1)};
        /* the -inf entries get no gradient and finite differences see none (-inf + eps = -inf) */
        gradcheck(f_attention, use_mask ? 5 : 3, in, &c, EPS, TOL, TOL, 150, "attention");
    }
    AttnCtx c = {1, 1, 2, 2, 5, 5, 4, 4};
    Tensor *in[3] = {rnd(T_SHAPE(2, 5, 3, 2, 4), 5, -1, 1), causal_mask(5, 5), rnd(T_SHAPE(5, 5), 6, -1, 1)};
    gradcheck(f_attention, 3, in, &c, EPS, TOL, TOL, 150, "attention fused layout");
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_softmax_grad, teardown),
        cmocka_unit_test_teardown(test_attention_grad, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    extern void t_tape_free(void);
    t_tape_free();
    return rc;
}
