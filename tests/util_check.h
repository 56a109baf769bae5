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

/* Scalar form of the same rule, for tests that report their own message: true only when both values are
 * finite and |got-want| <= atol + rtol*|want|. Use it (not `fabs(got - want) > tol`, which is false for
 * NaN) for every value comparison. */
bool close_enough(double got, double want, double atol, double rtol);
/* max(m, x) that keeps a NaN (fmax drops it): once an error is NaN the running worst stays NaN, and a
 * final `assert_true(worst <= tol)` fails. Infinity wins as the maximum anyway. */
double worst_of(double m, double x);

/* cmocka's assert_float_equal passes when either value is NaN. This has its rule (|a-b| <= eps, or within
 * FLT_EPSILON of the larger magnitude, in float) but is false for NaN or infinity; use assert_float_close. */
bool float_equal_finite(float a, float b, float eps);
#define assert_float_close(a, b, eps)                                                                          \
    do {                                                                                                       \
        float got_ = (float)(a), want_ = (float)(b);                                                           \
        if (!float_equal_finite(got_, want_, (float)(eps)))                                                    \
            fail_msg("%s = %.9g, expected %.9g (eps %g)", #a, (double)got_, (double)want_, (double)(eps));     \
    } while (0)

/* Finite-difference gradient check of f at the given inputs (contiguous, requires_grad set by the
 * check). Compares the tape's gradient of L = sum(r * f(x)) (r random, fixed) with central differences
 * for up to max_checks elements per input. Fails the test on mismatch; returns the number of elements
 * compared (callers assert that something was). */
typedef Tensor *(*GradFn)(Tensor **inputs, void *ctx);
int gradcheck(GradFn f, int n_inputs, Tensor **inputs, void *ctx, float eps, double atol, double rtol,
               int max_checks, const char *what);

/* Fills t with U(lo, hi) from a simple fixed-seed generator (test-local, independent of tensor/rng). */
void fill_uniform(Tensor *t, uint64_t seed, float lo, float hi);
/* A new tensor of the shape, filled as fill_uniform does. */
Tensor *rand_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi);

/* cmocka teardown that frees the step's tensors (t_arena_reset). */
int arena_teardown(void **state);

/* An error handler (t_set_error_handler) that only keeps the message; error_seen() is the last one. */
void error_record(const char *msg);
const char *error_seen(void);

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
