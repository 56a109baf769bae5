#ifndef DACLIP_TESTS_UTIL_CHECK_H
#define DACLIP_TESTS_UTIL_CHECK_H
/* Test helpers shared by every test binary: closeness checks, finite-difference gradient checks,
 * and the fixture format written by tests/reference/fixture.py. Include after <cmocka.h>. */
#include <stdbool.h>
#include <stdint.h>

#include "tensor/tensor.h"

/* Fails the current cmocka test when |a-b| > atol + rtol*|b| anywhere; the message names `what`,
 * the worst index and the values. */
void check_close(const float *a, const float *b, int64_t n, double atol, double rtol, const char *what);
void check_tensor_close(const Tensor *a, const float *expect, double atol, double rtol, const char *what);

/* Finite-difference gradient check of f at the given inputs (contiguous, requires_grad set by the
 * check). Compares the tape's gradient of L = sum(r * f(x)) (r random, fixed) with central differences
 * for up to max_checks elements per input. Fails the test on mismatch; returns the number of elements
 * compared (callers assert that something was). */
typedef Tensor *(*GradFn)(Tensor **inputs, void *ctx);
int gradcheck(GradFn f, int n_inputs, Tensor **inputs, void *ctx, float eps, double atol, double rtol,
               int max_checks, const char *what);

/* Fills t with U(lo, hi) from a simple fixed-seed generator (test-local, independent of tensor/rng). */
void fill_uniform(Tensor *t, uint64_t seed, float lo, float hi);

/* Fixtures: "DCFX" magic, u32 version 1, u32 count, then per tensor: u32 name length, name bytes,
 * u32 ndim, i64 shape[ndim], f32 data (little-endian). */
typedef struct {
    int count;
    char **names;
    int *ndim;
    int64_t (*shape)[T_MAX_DIMS];
    float **data;
} Fixture;
/* Loads tests/fixtures/<file>; returns false (and skips the test if `skip_if_missing`) when absent. */
bool fixture_load(Fixture *fx, const char *file);
void fixture_free(Fixture *fx);
/* The named array (fails the test if missing); *n gets its element count when n != NULL. */
float *fixture_get(const Fixture *fx, const char *name, int64_t *n);
/* An arena tensor holding a copy of the named array, with its stored shape. */
Tensor *fixture_tensor(const Fixture *fx, const char *name);

#endif
