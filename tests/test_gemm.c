/* t_sgemm / t_sgemm_bias (tensor/gemm.c) against a double-precision reference: all four transpose
 * combinations, sizes that are not multiples of the 8×48 tile or the K block, leading dimensions
 * larger than the matrix, alpha/beta, bias terms, K = 0, and independence of the thread count. The
 * whole group runs once per implementation this CPU has (AVX-512, AVX2 + FMA, OpenBLAS), so the AVX2
 * kernel is proven on AVX-512 machines too. */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tensor/gemm.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

static void fill(float *p, int64_t n, unsigned *s) {
    for (int64_t i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        p[i] = (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

/* max |C - ref| / (sum over k of |a||b| + |beta c| + |bias|), the error scale of a float dot product */
static double check_case(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, bool brow,
                         bool bcol, int pad) {
    unsigned seed = (unsigned)(M * 131 + N * 7 + K + ta * 2 + tb);
    int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    int64_t arows = ta ? K : M, brows = tb ? N : K;
    float *A = malloc(sizeof(float) * (size_t)(arows * lda)), *B = malloc(sizeof(float) * (size_t)(brows * ldb));
    float *C = malloc(sizeof(float) * (size_t)(M * ldc)), *C0 = malloc(sizeof(float) * (size_t)(M * ldc));
    float *br = calloc((size_t)M, sizeof(float)), *bc = calloc((size_t)N, sizeof(float));
    fill(A, arows * lda, &seed);
    fill(B, brows * ldb, &seed);
    fill(C, M * ldc, &seed);
    fill(br, M, &seed);
    fill(bc, N, &seed);
    memcpy(C0, C, sizeof(float) * (size_t)(M * ldc));
    t_sgemm_bias(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, brow ? br : NULL, bcol ? bc : NULL);
    double worst = 0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double acc = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
                mag += fabs(a * b);
            }
            double ref = alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * C0[i * ldc + j]);
            mag = fabs(alpha) * mag + fabs((double)beta * C0[i * ldc + j]) + 1e-3;
            if (brow) ref += br[i], mag += fabs(br[i]);
            if (bcol) ref += bc[j], mag += fabs(bc[j]);
            double e = fabs(C[i * ldc + j] - ref) / mag;
            worst = worst_of(worst, e);
        }
        /* padding columns beyond N must be untouched */
        for (int64_t j = N; j < ldc; j++) assert_true(C[i * ldc + j] == C0[i * ldc + j]);
    }
    free(A), free(B), free(C), free(C0), free(br), free(bc);
    return worst;
}

static void test_transposes_and_edges(void **state) {
    (void)state;
    /* sizes around the 8-row / 48-column tile and the K blocks (at most 768 deep for dense B, K split
     * evenly: 769 and 1537 give two and three blocks); all large enough for our kernel */
    const int64_t sizes[][3] = {{64, 96, 256}, {67, 101, 300}, {9, 49, 513}, {200, 47, 700}, {33, 190, 17},
                                {1, 640, 4100}, {17, 53, 769}, {8, 100, 1537}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++) {
            double e = check_case(t & 1, t & 2, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 0.0f, false, false, 3);
            if (!(e <= 1e-6)) fail_msg("M=%lld N=%lld K=%lld ta=%d tb=%d: relative error %.3g", (long long)sizes[s][0],
                                   (long long)sizes[s][1], (long long)sizes[s][2], t & 1, (t & 2) != 0, e);
        }
}

static void test_alpha_beta_bias(void **state) {
    (void)state;
    const float betas[] = {0.0f, 1.0f, -0.5f};
    for (int bi = 0; bi < 3; bi++)
        for (int bias = 0; bias < 4; bias++) {
            double e = check_case(bias & 1, false, 70, 150, 1000, 0.75f, betas[bi], bias & 1, bias & 2, 0);
            if (!(e <= 1e-6)) fail_msg("beta=%g bias=%d: relative error %.3g", betas[bi], bias, e);
        }
    /* small products take the BLAS path: the same contract */
    assert_true(check_case(false, true, 5, 6, 7, 2.0f, 1.0f, true, true, 1) < 1e-6);
    /* K = 0: C = beta·C + bias */
    assert_true(check_case(false, false, 20, 30, 0, 1.0f, -0.5f, true, true, 0) < 1e-6);
}

static void test_beta_zero_ignores_nan(void **state) {
    (void)state;
    int64_t M = 40, N = 100, K = 300;
    float *A = calloc((size_t)(M * K), sizeof(float)), *B = calloc((size_t)(K * N), sizeof(float));
    float *C = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * N; i++) C[i] = NAN;
    t_sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    for (int64_t i = 0; i < M * N; i++) assert_true(C[i] == 0.0f);
    free(A), free(B), free(C);
}

static void test_thread_count_independent(void **state) {
    (void)state;
    if (strcmp(t_sgemm_backend(), "blas") == 0) skip(); /* a promise of our kernels, not of BLAS */
    int64_t M = 100, N = 300, K = 777;
    unsigned seed = 9;
    float *A = malloc(sizeof(float) * (size_t)(M * K)), *B = malloc(sizeof(float) * (size_t)(N * K));
    float *C1 = malloc(sizeof(float) * (size_t)(M * N)), *C2 = malloc(sizeof(float) * (size_t)(M * N));
    fill(A, M * K, &seed);
    fill(B, N * K, &seed);
    int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    t_sgemm(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    omp_set_num_threads(3);
    t_sgemm(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    omp_set_num_threads(prev);
    assert_memory_equal(C1, C2, sizeof(float) * (size_t)(M * N));
    free(A), free(B), free(C1), free(C2);
}

/* n window offsets in [0, 3000) */
static void random_offsets(int64_t *off, int64_t n, unsigned *s) {
    for (int64_t w = 0; w < n; w++) {
        *s = *s * 1664525u + 1013904223u;
        off[w] = (*s >> 8) % 3000;
    }
}

/* Shifted-window B (implicit im2col), both forms, against the product with B materialised. */
static void test_shifted_windows(void **state) {
    (void)state;
    const int64_t dims[][3] = {{64, 130 * 7 + 5, 27}, {20, 300, 576}, {8, 50, 1000}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int cols = 0; cols < 2; cols++) {
            int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2], nw = cols ? N : K, len = cols ? K : N;
            int64_t span = 3000 + len + 64;
            unsigned seed = (unsigned)(d * 2 + cols + 1);
            float *A = malloc(sizeof(float) * (size_t)(M * K)), *src = malloc(sizeof(float) * (size_t)span);
            float *B = malloc(sizeof(float) * (size_t)(K * N));
            float *C = malloc(sizeof(float) * (size_t)(M * N)), *R = malloc(sizeof(float) * (size_t)(M * N));
            float *bias = malloc(sizeof(float) * (size_t)M);
            int64_t *off = malloc(sizeof(int64_t) * (size_t)nw);
            fill(A, M * K, &seed);
            fill(src, span, &seed);
            fill(bias, M, &seed);
            random_offsets(off, nw, &seed);
            for (int64_t k = 0; k < K; k++)
                for (int64_t j = 0; j < N; j++) B[k * N + j] = cols ? src[off[j] + k] : src[off[k] + j];
            fill(C, M * N, &seed);
            memcpy(R, C, sizeof(float) * (size_t)(M * N));
            assert_true(t_sgemm_shifted(cols, M, N, K, 0.5f, A, K, src, off, 1.0f, C, N, bias));
            t_sgemm_bias(false, false, M, N, K, 0.5f, A, K, B, N, 1.0f, R, N, bias, NULL);
            for (int64_t i = 0; i < M * N; i++)
                if (!close_enough(C[i], R[i], 1e-4, 1e-4))
                    fail_msg("dims %zu cols %d: element %lld %g vs %g", d, cols, (long long)i, C[i], R[i]);
            free(A), free(src), free(B), free(C), free(R), free(bias), free(off);
        }
}

/* The settle form hands every column of C over exactly once, in whole-column chunks, bit-identical to
 * t_sgemm_shifted with beta 0: few rows (windows read in place) and many (windows packed), threaded and
 * from inside a parallel region (one thread). */
typedef struct {
    float *C;
    int64_t M, N;
    int *seen;   /* per column: how many times settled */
} Settled;

static void settle_into(void *ctx, int64_t j0, int64_t ncols, const float *c, int64_t ldc) {
    Settled *s = ctx;
    for (int64_t j = 0; j < ncols; j++) {
        __atomic_add_fetch(&s->seen[j0 + j], 1, __ATOMIC_RELAXED);
        for (int64_t i = 0; i < s->M; i++) s->C[i * s->N + j0 + j] = c[i * ldc + j];
    }
}

static void test_shifted_settle(void **state) {
    (void)state;
    if (strcmp(t_sgemm_backend(), "blas") == 0) skip(); /* bit identity is a promise of our kernels */
    const int64_t dims[][3] = {{64, 130 * 7 + 5, 576}, {200, 2000, 300}, {3, 47, 9}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int how = 0; how < 2; how++) {   /* threaded, inside a parallel region */
            int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2], span = 3000 + N + 64;
            unsigned seed = (unsigned)(d * 3 + how + 11);
            float *A = malloc(sizeof(float) * (size_t)(M * K)), *src = malloc(sizeof(float) * (size_t)span);
            float *C = malloc(sizeof(float) * (size_t)(M * N)), *R = malloc(sizeof(float) * (size_t)(M * N));
            float *bias = malloc(sizeof(float) * (size_t)M);
            int64_t *off = malloc(sizeof(int64_t) * (size_t)K);
            int *seen = calloc((size_t)N, sizeof(int));
            fill(A, M * K, &seed);
            fill(src, span, &seed);
            fill(bias, M, &seed);
            random_offsets(off, K, &seed);
            fill(C, M * N, &seed);
            assert_true(t_sgemm_shifted(false, M, N, K, 1.0f, A, K, src, off, 0.0f, R, N, bias));
            Settled s = {C, M, N, seen};
            if (how == 1) {
                bool ok = false;
#pragma omp parallel num_threads(2)
#pragma omp single
                ok = t_sgemm_shifted_settle(M, N, K, A, K, src, off, bias, settle_into, &s);
                assert_true(ok);
            } else {
                assert_true(t_sgemm_shifted_settle(M, N, K, A, K, src, off, bias, settle_into, &s));
            }
            for (int64_t j = 0; j < N; j++)
                if (seen[j] != 1) fail_msg("dims %zu how %d: column %lld settled %d times", d, how, (long long)j, seen[j]);
            assert_memory_equal(C, R, sizeof(float) * (size_t)(M * N));
            free(A), free(src), free(C), free(R), free(bias), free(off), free(seen);
        }
}

/* Products issued from inside a parallel region run on the calling thread with its own scratch. */
static void test_inside_parallel_region(void **state) {
    (void)state;
    if (strcmp(t_sgemm_backend(), "blas") == 0) skip(); /* bit identity is a promise of our kernels */
    enum { T = 4 };
    int64_t M = 64, N = 200, K = 300;
    unsigned seed = 5;
    float *A = malloc(sizeof(float) * (size_t)(T * M * K)), *B = malloc(sizeof(float) * (size_t)(K * N));
    float *C = malloc(sizeof(float) * (size_t)(T * M * N)), *R = malloc(sizeof(float) * (size_t)(M * N));
    fill(A, T * M * K, &seed);
    fill(B, K * N, &seed);
#pragma omp parallel for num_threads(T)
    for (int t = 0; t < T; t++)
        t_sgemm(false, false, M, N, K, 1.0f, A + t * M * K, K, B, N, 0.0f, C + t * M * N, N);
    for (int t = 0; t < T; t++) {
        t_sgemm(false, false, M, N, K, 1.0f, A + t * M * K, K, B, N, 0.0f, R, N);   /* threaded path */
        assert_memory_equal(C + t * M * N, R, sizeof(float) * (size_t)(M * N));
    }
    free(A), free(B), free(C), free(R);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transposes_and_edges),
        cmocka_unit_test(test_alpha_beta_bias),
        cmocka_unit_test(test_beta_zero_ignores_nan),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_inside_parallel_region),
        cmocka_unit_test(test_shifted_windows),
        cmocka_unit_test(test_shifted_settle),
    };
    const char *impls[] = {"avx512", "avx2", "blas"};
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
        if (!t_sgemm_use(impls[i])) continue;   /* this CPU lacks it */
        if (strcmp(t_sgemm_backend(), impls[i]) != 0) return 1;
        failed += cmocka_run_group_tests_name(impls[i], tests, NULL, NULL);
        ran++;
    }
    return failed || ran < 2;   /* at least one of ours and BLAS */
}
