/* Philox4x32-10: Random123 known answers, determinism, savable state, uniform/normal moments. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tensor/rng.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

/* Random123 kat_vectors, "philox4x32 10": counter[4], key[2] -> out[4]. */
static void test_known_answers(void **state) {
    (void)state;
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        philox4x32_10(kat[k], kat[k] + 4, out);
        for (int i = 0; i < 4; i++) assert_int_equal(out[i], kat[k][6 + i]);
    }
    /* the stream of seed 0 starts with block 0 */
    TRng r;
    rng_seed(&r, 0);
    assert_int_equal(rng_u32(&r), 0x6627e8d5);
    assert_int_equal(rng_u32(&r), 0xe169c58d);
}

static void test_same_seed_same_tensor(void **state) {
    (void)state;
    TRng a, b, c;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    Tensor *x = t_new(T_SHAPE(7, 13)), *y = t_new(T_SHAPE(7, 13)), *z = t_new(T_SHAPE(7, 13));
    t_fill_normal(x, &a, 0, 1);
    t_fill_normal(y, &b, 0, 1);
    t_fill_normal(z, &c, 0, 1);
    assert_memory_equal(x->data, y->data, sizeof(float) * 91);
    assert_memory_not_equal(x->data, z->data, sizeof(float) * 91);
    t_fill_uniform(x, &a, -1, 1);
    t_fill_uniform(y, &b, -1, 1);
    assert_memory_equal(x->data, y->data, sizeof(float) * 91);
}

static void test_state_roundtrip(void **state) {
    (void)state;
    TRng r;
    rng_seed(&r, 0x1234567890abcdefull);
    for (int skip = 0; skip < 9; skip++) {
        rng_u32(&r); /* leave the buffer at every possible position */
        uint64_t words[4];
        rng_state_save(&r, words);
        TRng s;
        rng_seed(&s, 999);
        rng_state_load(&s, words);
        for (int i = 0; i < 11; i++) assert_int_equal(rng_u32(&r), rng_u32(&s));
    }
}

static void test_moments(void **state) {
    (void)state;
    TRng r;
    rng_seed(&r, 7);
    const int64_t n = 200000;
    Tensor *u = t_new(T_SHAPE(n)), *g = t_new(T_SHAPE(n));
    t_fill_uniform(u, &r, 2, 5);
    t_fill_normal(g, &r, 1.5f, 2);
    double su = 0, su2 = 0, sg = 0, sg2 = 0, sg4 = 0, lo = 1e9, hi = -1e9;
    for (int64_t i = 0; i < n; i++) {
        double x = u->data[i], y = (g->data[i] - 1.5) / 2;
        su += x, su2 += x * x, sg += y, sg2 += y * y, sg4 += y * y * y * y;
        lo = fmin(lo, x), hi = fmax(hi, x);
    }
    double mu = su / n, vu = su2 / n - mu * mu, mg = sg / n, vg = sg2 / n - mg * mg;
    /* standard errors at n = 2e5: mean ~0.002 (uniform), ~0.0022 (normal); 5 sigma bounds */
    assert_true(fabs(mu - 3.5) < 0.01);
    assert_true(fabs(vu - 0.75) < 0.01);
    assert_true(lo >= 2 && hi < 5);
    assert_true(fabs(mg) < 0.012);
    assert_true(fabs(vg - 1) < 0.02);
    assert_true(fabs(sg4 / n - 3) < 0.1); /* kurtosis of a Gaussian */
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_known_answers, arena_teardown),
        cmocka_unit_test_teardown(test_same_seed_same_tensor, arena_teardown),
        cmocka_unit_test_teardown(test_state_roundtrip, arena_teardown),
        cmocka_unit_test_teardown(test_moments, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
