#ifndef DACLIP_TENSOR_GEMM_KERNELS_H
#define DACLIP_TENSOR_GEMM_KERNELS_H
/* What the GEMM driver (tensor/gemm.c) shares with its per-ISA leaves (gemm_avx512.c, gemm_avx2.c): the
 * tile geometry, the description of one product, and the packing and micro-kernel entry points. Every ISA
 * packs op(A) in 8-row panels [kc][8] and op(B) in 48-column panels of kc·48 floats (their inner layout
 * is the ISA's own: its pack_b and kernels agree), and sums each element of C in the same order (k
 * ascending within a K-block), so one driver serves them all and the result does not depend on the thread
 * count on any of them. */
#include <stdbool.h>
#include <stdint.h>

#include "tensor/gemm.h"

#define MR 8   /* rows of a tile of C (one packed panel of op(A)) */
#define NR 48  /* columns of a tile of C (one packed panel of op(B)) */

/* How op(B) is given. */
enum { B_DENSE, B_SHIFTED, B_SHIFTED_T };

typedef struct {
    bool ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B, *bias_row, *bias_col;
    float *C;
    bool a_direct;         /* alpha 1: the kernel reads op(A) in place, nothing packed */
    int bmode;             /* B_SHIFTED: op(B)[k][j] = src[off[k] + j]; B_SHIFTED_T: src[off[j] + k] */
    const float *src;
    const int64_t *off;
    bool b_in_place;       /* B_SHIFTED read in place by the kernel (else packed like dense B) */
    TGemmSettle settle;    /* C is not stored: each column chunk goes to settle from a thread's scratch */
    void *settle_ctx;
    /* B_DENSE, tb: op(B) already packed (t_sgemm_prepack): K-block k0 at prepacked + k0·prepacked_n, the
     * product's column panel q at + (prepacked_p0 + q)·kc·48 */
    const float *prepacked;
    int64_t prepacked_n, prepacked_p0;
} Gemm;

/* One ISA's leaves. The micro-kernels make C[mr × nr] (+)= A[8][kc] · B[kc][48] (+ brow[i] + bcol[j] when
 * given), mr ≤ 8, nr ≤ 48:
 *   A packed (a[k·8 + i]; p) or read in place (d: element (i, k) at a[i·ars + k·astep], rows past mr
 *     re-read row mr−1, so nothing outside op(A) is touched);
 *   B packed (b: a panel as this ISA's pack_b wrote it, 64-byte aligned; p) or shifted windows in place
 *     (s: row k at b + boff[k], unaligned, 48 floats readable). */
typedef struct {
    const char *name;
    /* rows [i0, i0+16) of op(A)·alpha, k in [k0, k0+kc), as npanels (1 or 2) panels dst, dst + 8·kc;
     * rows past M zero */
    void (*pack_a16)(bool ta, const float *A, int64_t lda, int64_t M, int64_t i0, int64_t k0, int64_t kc,
                     float alpha, float *dst, int npanels);
    /* op(B) rows k in [k0, k0+kc), columns [j0, j0+ncols) into panels of NR columns, each [kc][NR],
     * columns past ncols zero */
    void (*pack_b)(const Gemm *g, int64_t j0, int64_t ncols, int64_t k0, int64_t kc, float *dst);
    void (*kernel_pp)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                      bool accumulate, const float *brow, const float *bcol);
    void (*kernel_ps)(int64_t kc, const float *a, const float *b, const int64_t *boff, float *c, int64_t ldc,
                      int mr, int nr, bool accumulate, const float *brow, const float *bcol);
    void (*kernel_dp)(int64_t kc, const float *a, int64_t ars, int64_t astep, const float *b, float *c,
                      int64_t ldc, int mr, int nr, bool accumulate, const float *brow, const float *bcol);
    void (*kernel_ds)(int64_t kc, const float *a, int64_t ars, int64_t astep, const float *b, const int64_t *boff,
                      float *c, int64_t ldc, int mr, int nr, bool accumulate, const float *brow, const float *bcol);
    /* a packed B panel is 48 / b_sub sub-panels [kc][b_sub], one after another: element (k, c) of the
     * panel at (c / b_sub)·kc·b_sub + k·b_sub + c % b_sub */
    int b_sub;
} GemmIsa;

#if defined(__x86_64__)
extern const GemmIsa gemm_isa_avx512;   /* AVX-512F: the 8×48 tile in 24 zmm accumulators */
extern const GemmIsa gemm_isa_avx2;     /* AVX2 + FMA: the same tile in four 4×24 quarters */
#endif

/* The leaves the driver uses now (DACLIP_GEMM, t_sgemm_use), or NULL when OpenBLAS does every product: for
 * callers that drive the micro-kernels themselves (tensor/conv_winograd.c). */
const GemmIsa *gemm_isa_active(void);

/* The K-block length of a dense product with this K (K split evenly into blocks of at most 768). */
int64_t gemm_k_block_dense(int64_t K);
/* W [N][K] (row-major, N a multiple of 48) packed whole by isa as op(B) = Wᵀ into dst (N·K floats): K-block
 * k0 at dst + k0·N, its 48-column panels one after another (tensor/gemm_prepacked.c). */
void gemm_pack_weight(const GemmIsa *isa, const float *W, int64_t N, int64_t K, float *dst);

#endif
