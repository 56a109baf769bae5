/* Weights packed in place for the GEMM kernels (t_sgemm_prepack, tensor/gemm_prepacked.c): a product with a
 * packed W equals, bit for bit, the same product with the plain W, in every role the buffer can play: as Wᵀ
 * (the fast path, also for a block of W's rows and inside a parallel region), untransposed, as A, in a
 * product small enough for OpenBLAS, under another ISA than the one that packed it, and written as C.
 * Unpacking restores the exact bytes; t_free forgets the packing; unsuitable shapes are refused. */
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

static void fill(float *p, int64_t n, unsigned seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

static float *filled(int64_t n, unsigned seed) {
    float *p = NULL;
    assert_int_equal(posix_memalign((void **)&p, 64, sizeof(float) * (size_t)n), 0);
    fill(p, n, seed);
    return p;
}

typedef struct {
    bool ta, tb;
    int64_t M, N, K;
    int64_t a_off, b_off;   /* operand offsets into their buffers (a block of W's rows) */
    float alpha, beta;
    bool bias;
} Case;

/* C from the product with the plain W as operand `which` ('A' or 'B'), and again with W packed (by the
 * implementation in use, then isa_after_pack if given). */
static void run_case(const Case *c, int64_t wn, int64_t wk, char which, const char *isa_after_pack) {
    float *W = filled(wn * wk, 7), *plain = malloc(sizeof(float) * (size_t)(wn * wk));
    memcpy(plain, W, sizeof(float) * (size_t)(wn * wk));
    float *X = filled(c->M * c->K + c->K * c->N, 11), *bias = filled(c->N, 13);   /* the other operand */
    float *C0 = filled(c->M * c->N, 17), *C1 = malloc(sizeof(float) * (size_t)(c->M * c->N));
    memcpy(C1, C0, sizeof(float) * (size_t)(c->M * c->N));
    int64_t lda = which == 'A' ? wk : c->ta ? c->M : c->K, ldb = which == 'B' ? wk : c->tb ? c->K : c->N;
    const float *A0 = which == 'A' ? plain + c->a_off : X, *B0 = which == 'B' ? plain + c->b_off : X;
    assert_true(t_sgemm_prepack(W, wn, wk));
    assert_true(t_sgemm_is_packed(W));
    assert_true(t_sgemm_is_packed(W + wn * wk - 1));
    assert_false(t_sgemm_is_packed(W + wn * wk));
    assert_true(memcmp(W, plain, sizeof(float) * (size_t)(wn * wk)) != 0);   /* the bytes did change */
    if (isa_after_pack) assert_true(t_sgemm_use(isa_after_pack));
    t_sgemm_bias(c->ta, c->tb, c->M, c->N, c->K, c->alpha, A0, lda, B0, ldb, c->beta, C0, c->N, NULL,
                 c->bias ? bias : NULL);   /* the reference, by the implementation now in use */
    const float *A1 = which == 'A' ? W + c->a_off : X, *B1 = which == 'B' ? W + c->b_off : X;
    t_sgemm_bias(c->ta, c->tb, c->M, c->N, c->K, c->alpha, A1, lda, B1, ldb, c->beta, C1, c->N, NULL,
                 c->bias ? bias : NULL);
    assert_memory_equal(C0, C1, sizeof(float) * (size_t)(c->M * c->N));
    assert_true(t_sgemm_is_packed(W));   /* reading it did not unpack it */

    assert_true(t_sgemm_unpack(W + 5));  /* any pointer into the buffer */
    assert_false(t_sgemm_is_packed(W));
    assert_memory_equal(W, plain, sizeof(float) * (size_t)(wn * wk));
    free(W), free(plain), free(X), free(bias), free(C0), free(C1);
}

static bool kernels_here(void) { return strcmp(t_sgemm_backend(), "blas") != 0; }

/* the fast path: y = x·Wᵀ (+ bias), W whole or a block of its rows (an attention's q part); under every
 * kernel this CPU can run (the ISAs lay out packed panels differently) */
static void fast_path_cases(void) {
    /* K 768: one K-block; K 3072: four (c_proj); K 100: odd length; M not a multiple of 8 */
    run_case(&(Case){.tb = true, .M = 400, .N = 2304, .K = 768, .alpha = 1, .beta = 0, .bias = true}, 2304, 768, 'B',
             NULL);
    run_case(&(Case){.tb = true, .M = 203, .N = 768, .K = 3072, .alpha = 1, .beta = 1, .bias = true}, 768, 3072, 'B',
             NULL);
    run_case(&(Case){.tb = true, .M = 77, .N = 96, .K = 100, .alpha = 0.5f, .beta = 0}, 96, 100, 'B', NULL);
    /* rows [768, 2304) of a [2304, 768] in-projection (the k, v part), and rows [48, 144) */
    run_case(&(Case){.tb = true, .M = 100, .N = 1536, .K = 768, .b_off = 768 * 768, .alpha = 1, .beta = 0}, 2304, 768,
             'B', NULL);
    run_case(&(Case){.tb = true, .M = 100, .N = 96, .K = 768, .b_off = 48 * 768, .alpha = 1, .beta = 0}, 2304, 768, 'B',
             NULL);
    /* a block not starting on a 48-row panel: the plain-copy path */
    run_case(&(Case){.tb = true, .M = 100, .N = 40, .K = 768, .b_off = 8 * 768, .alpha = 1, .beta = 0}, 2304, 768, 'B',
             NULL);
}

static void test_packed_as_transposed_b(void **state) {
    (void)state;
    if (!kernels_here()) skip();
    const char *isa = t_sgemm_backend();
    int ran = 0;
    for (int i = 0; i < 2; i++)
        if (t_sgemm_use(i ? "avx2" : "avx512")) {
            fast_path_cases();
            ran++;
        }
    assert_true(ran >= 1);
    assert_true(t_sgemm_use(isa));
}

/* every other use of the buffer: the product is still the plain one */
static void test_packed_in_other_roles(void **state) {
    (void)state;
    if (!kernels_here()) skip();
    const char *isa = t_sgemm_backend();
    /* dx = dy·W (backward through a linear layer: W untransposed as B) */
    run_case(&(Case){.tb = false, .M = 400, .N = 768, .K = 2304, .alpha = 1, .beta = 1}, 2304, 768, 'B', NULL);
    /* W as A, transposed and not */
    run_case(&(Case){.ta = false, .M = 96, .N = 300, .K = 768, .alpha = 1, .beta = 0}, 96, 768, 'A', NULL);
    run_case(&(Case){.ta = true, .M = 96, .N = 300, .K = 96, .alpha = 2, .beta = 0}, 96, 96, 'A', NULL);
    /* small enough for OpenBLAS */
    run_case(&(Case){.tb = true, .M = 2, .N = 48, .K = 64, .alpha = 1, .beta = 0, .bias = true}, 48, 64, 'B', NULL);
    /* packed by one ISA, multiplied under another (and under OpenBLAS) */
    if (t_sgemm_use("avx2"))
        run_case(&(Case){.tb = true, .M = 64, .N = 192, .K = 768, .alpha = 1, .beta = 0}, 192, 768, 'B',
                 strcmp(isa, "avx2") == 0 ? "blas" : isa);
    assert_true(t_sgemm_use(isa));
    run_case(&(Case){.tb = true, .M = 64, .N = 192, .K = 768, .alpha = 1, .beta = 0}, 192, 768, 'B', "blas");
    assert_true(t_sgemm_use(isa));
}

/* the fast path inside a parallel region (each thread runs its own product) */
static void test_packed_inside_parallel_region(void **state) {
    (void)state;
    if (!kernels_here()) skip();
    int64_t N = 192, K = 256, M = 64;
    float *W = filled(N * K, 3), *X = filled(4 * M * K, 5);
    float *C0 = calloc((size_t)(4 * M * N), sizeof(float)), *C1 = calloc((size_t)(4 * M * N), sizeof(float));
    for (int r = 0; r < 4; r++) t_sgemm(false, true, M, N, K, 1.0f, X + r * M * K, K, W, K, 0.0f, C0 + r * M * N, N);
    assert_true(t_sgemm_prepack(W, N, K));
#pragma omp parallel for num_threads(2)
    for (int r = 0; r < 4; r++) t_sgemm(false, true, M, N, K, 1.0f, X + r * M * K, K, W, K, 0.0f, C1 + r * M * N, N);
    assert_memory_equal(C0, C1, sizeof(float) * (size_t)(4 * M * N));
    t_sgemm_forget(W);
    free(W), free(X), free(C0), free(C1);
}

/* a packed buffer written as C is plain from then on, and holds the product */
static void test_packed_written_as_c(void **state) {
    (void)state;
    if (!kernels_here()) skip();
    int64_t N = 96, K = 64;
    float *W = filled(N * K, 3), *A = filled(N * 32, 5), *B = filled(32 * K, 9), *ref = malloc(sizeof(float) * N * K);
    t_sgemm(false, false, N, K, 32, 1.0f, A, 32, B, K, 0.0f, ref, K);
    assert_true(t_sgemm_prepack(W, N, K));
    t_sgemm(false, false, N, K, 32, 1.0f, A, 32, B, K, 0.0f, W, K);
    assert_false(t_sgemm_is_packed(W));
    assert_memory_equal(W, ref, sizeof(float) * (size_t)(N * K));
    free(W), free(A), free(B), free(ref);
}

static void test_refused_and_forgotten(void **state) {
    (void)state;
    if (!kernels_here()) skip();
    float *W = filled(50 * 64, 1), *copy = malloc(sizeof(float) * 50 * 64);
    memcpy(copy, W, sizeof(float) * 50 * 64);
    assert_false(t_sgemm_prepack(W, 50, 64));   /* N not a multiple of 48 */
    assert_false(t_sgemm_prepack(W + 4, 48, 64));   /* not 64-byte aligned */
    assert_false(t_sgemm_is_packed(W));
    assert_memory_equal(W, copy, sizeof(float) * 50 * 64);
    free(W), free(copy);

    /* packing twice is a no-op; an overlapping range is refused */
    float *V = filled(96 * 64, 2);
    assert_true(t_sgemm_prepack(V, 96, 64));
    assert_true(t_sgemm_prepack(V, 96, 64));
    assert_false(t_sgemm_prepack(V + 48 * 64, 48, 64));
    assert_true(t_sgemm_unpack(V));
    free(V);

    /* a parameter freed with t_free leaves no packing behind */
    Tensor *p = t_param_new(T_SHAPE(48, 32), false);
    assert_non_null(p);
    fill(p->data, 48 * 32, 4);
    assert_true(t_prepack_weight(p));   /* moved to aligned memory when it was not */
    float *addr = p->data;
    assert_true(t_sgemm_is_packed(addr));
    assert_true(t_unpack_weight(p));
    assert_false(t_sgemm_is_packed(addr));
    assert_true(t_prepack_weight(p));
    t_free(p);
    assert_false(t_sgemm_is_packed(addr));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_as_transposed_b),
        cmocka_unit_test(test_packed_in_other_roles),
        cmocka_unit_test(test_packed_inside_parallel_region),
        cmocka_unit_test(test_packed_written_as_c),
        cmocka_unit_test(test_refused_and_forgotten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
