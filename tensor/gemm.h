#ifndef DACLIP_TENSOR_GEMM_H
#define DACLIP_TENSOR_GEMM_H
/* Single-precision GEMM, row-major, cblas_sgemm's semantics:
 *   C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C
 * op(X) = X, or Xᵀ when trans_X (X then stored [K,M] / [N,K] with its leading dimension).
 *
 * On CPUs with AVX-512 or AVX2 + FMA products above 4 MFLOP run through our own kernels (tensor/gemm.c;
 * with AVX-512 ≈85–90% of the FMA peak in quiet moments, 1.05–1.5× OpenBLAS 0.3.21 at our shapes, see
 * build/bench/bench_gemm). Smaller products, older CPUs and DACLIP_GEMM=blas go to cblas_sgemm;
 * DACLIP_GEMM=avx2 uses the AVX2 kernel on an AVX-512 CPU, DACLIP_GEMM=packed keeps our kernel but always
 * packs op(A) (both for comparisons). Threads split the columns
 * of C only, so the summation order of every element, and hence the result, does not depend on the thread
 * count. Called inside an OpenMP parallel region it runs on the calling thread alone. */
#include <stdbool.h>
#include <stdint.h>

void t_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
             int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The same plus bias terms, fused into the product's write-back (either may be NULL):
 *   C[i,j] = alpha·(op(A) op(B))[i,j] + beta·C[i,j] + bias_row[i] + bias_col[j]
 * bias_col is a linear layer's bias, bias_row a convolution's (one per output channel). */
void t_sgemm_bias(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias_row,
                  const float *bias_col);

/* GEMM whose B operand is a set of shifted windows of one array (a convolution's im2col matrix, never
 * built): with op(A) = A [M, K] (row-major, lda),
 *   windows_are_columns = false:  B[k][j] = src[off[k] + j]    (k < K, j < N)
 *   windows_are_columns = true:   B[k][j] = src[off[j] + k]
 *   C = alpha·A·B + beta·C + bias_row[i]
 * In the first form src[off[k] + j] must be readable for all j below N rounded up to a multiple of 48
 * (the kernel reads whole 48-column panels in place and masks the write-back). False only when memory
 * runs out. */
bool t_sgemm_shifted(bool windows_are_columns, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *src, const int64_t *off, float beta, float *C, int64_t ldc,
                     const float *bias_row);

/* t_sgemm_shifted (windows_are_columns false, alpha 1, beta 0) whose C is never stored whole: it is made in
 * chunks of whole columns, C[0..M)[j0 .. j0 + ncols), each handed to settle(ctx, j0, ncols, c, ldc) with
 * element (i, j0 + j) at c[i·ldc + j], while it is still in cache. settle may run on any thread of the
 * GEMM's team, concurrently for disjoint chunks; it must not start OpenMP work. Every element is summed in
 * the same order as t_sgemm_shifted's. False only when memory runs out (nothing settled then). */
typedef void (*TGemmSettle)(void *ctx, int64_t j0, int64_t ncols, const float *c, int64_t ldc);
bool t_sgemm_shifted_settle(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *src,
                            const int64_t *off, const float *bias_row, TGemmSettle settle, void *ctx);

/* Constant weights packed once for the kernels, for inference (tensor/gemm_prepacked.c). t_sgemm_prepack
 * rewrites W [N][K] (row-major, a linear layer's weight, read as op(B) = Wᵀ with ldb K) in place into the
 * panel layout of this CPU's kernels, so that products y = x·Wᵀ no longer repack it on every call (ViT-B/32
 * encode with control: 5–15 % faster on Zen 4); the sums, and so the results, are those of the unpacked W.
 * Memory does not grow. False (W unchanged) when our kernels are not in use, N is not a multiple of 48, W is not
 * 64-byte aligned, W overlaps another packed buffer, or memory for the packing is short.
 * Once packed, W's buffer is only meaningful to t_sgemm: any product with it still gives the right result
 * (uses other than as Wᵀ run on a temporary plain copy; written as C, it is unpacked for good), but any
 * other reader must call t_sgemm_unpack first. t_free forgets a parameter's packing (t_sgemm_forget). */
bool t_sgemm_prepack(float *W, int64_t N, int64_t K);
/* The buffer packed by t_sgemm_prepack that p points into back to plain row-major; true also when p is in
 * no packed buffer; false only when memory is short (the buffer then stays packed). */
bool t_sgemm_unpack(float *p);
bool t_sgemm_is_packed(const float *p);
/* Drops W from the registry without unpacking (its memory is being freed). */
void t_sgemm_forget(const float *W);

/* Which implementation large products use: "avx512", "avx2" or "blas". */
const char *t_sgemm_backend(void);

/* Switches the implementation ("avx512", "avx2", "blas"); false (nothing changed) when this CPU cannot run
 * it. For tests and comparisons, never while a product runs. */
bool t_sgemm_use(const char *name);

#endif
