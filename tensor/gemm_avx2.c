/* The AVX2 + FMA leaves of our GEMM (tensor/gemm_kernels.h), for CPUs without AVX-512 (AMD Zen 2 and 3,
 * Intel before Skylake-X). Sixteen ymm registers cannot hold the 8×48 tile of C, so the micro-kernel makes
 * it in four 4×24 quarters, each in 12 accumulators (per k: three loads of B, four broadcasts of A, 12 FMAs,
 * so the two FMA pipes, not the loads, set the pace). Each quarter sums k in ascending order, as the AVX-512
 * kernel does: the driver's promise that results do not depend on the thread count holds here too.
 * Transposed operands are packed with 8×8 in-register transposes; edges with lane masks (a masked-off lane
 * is neither read nor written, so nothing past an operand is touched). */
#include "tensor/gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* lanes i < n set */
static inline AVX2 __m256i lane_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* rows×cols (≤ 8×8) floats, row i at p[i], zero-filled to 8×8 and transposed: out[c] lane r = p[r][c] */
static inline AVX2 void load_transpose8p(const float *const *p, int rows, int cols, __m256 out[8]) {
    __m256i m = lane_mask8(cols);
    __m256 r[8];
    for (int i = 0; i < 8; i++)
        r[i] = i >= rows ? _mm256_setzero_ps() : cols >= 8 ? _mm256_loadu_ps(p[i]) : _mm256_maskload_ps(p[i], m);
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);       /* r0[0] r1[0] r0[1] r1[1] | [4] .. [5] */
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);   /* r0[2] r1[2] r0[3] r1[3] | [6] .. [7] */
    }
    for (int i = 0; i < 2; i++) {   /* rows 4i..4i+3, columns c and c+4 of each 128-bit half */
        s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {
        out[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        out[c + 4] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}

static AVX2 void pack_a16(bool ta, const float *A, int64_t lda, int64_t M, int64_t i0, int64_t k0, int64_t kc,
                          float alpha, float *dst, int npanels) {
    __m256 va = _mm256_set1_ps(alpha);
    for (int pnl = 0; pnl < npanels; pnl++) {
        int64_t r0 = i0 + pnl * MR;
        int rows = (int)(M - r0 < MR ? M - r0 : MR);
        float *d = dst + pnl * MR * kc;
        if (!ta) {   /* A[i][k] at A[i*lda + k]: 8×8 transposes */
            const float *p[8];
            for (int i = 0; i < 8; i++) p[i] = A + (r0 + (i < rows ? i : 0)) * lda + k0;
            for (int64_t kk = 0; kk < kc; kk += 8) {
                int cols = (int)(kc - kk < 8 ? kc - kk : 8);
                __m256 v[8];
                load_transpose8p(p, rows, cols, v);
                for (int c = 0; c < cols; c++) _mm256_storeu_ps(d + (kk + c) * MR, _mm256_mul_ps(v[c], va));
                for (int i = 0; i < 8; i++) p[i] += 8;
            }
        } else {     /* A[i][k] at A[k*lda + i]: contiguous along i */
            __m256i m = lane_mask8(rows);
            for (int64_t k = 0; k < kc; k++)
                _mm256_storeu_ps(d + k * MR, _mm256_mul_ps(_mm256_maskload_ps(A + (k0 + k) * lda + r0, m), va));
        }
    }
}

/* A packed panel of op(B) is two half-panels [2][kc][24], not [kc][48]: a quarter of the tile reads one
 * half, and a half of contiguous lines stays in L1 across the tile's two row quarters (interleaved, its
 * lines would hold the other half too and need twice the room). */
#define HALF (NR / 2)
static inline float *half_row(float *d, int64_t kc, int64_t k, int c) {
    return d + (c / HALF) * kc * HALF + k * HALF + c % HALF;
}

static AVX2 void pack_b(const Gemm *g, int64_t j0, int64_t ncols, int64_t k0, int64_t kc, float *dst) {
    for (int64_t p = 0; p * NR < ncols; p++) {
        float *d = dst + p * kc * NR;
        int64_t jp = j0 + p * NR, pc = ncols - p * NR < NR ? ncols - p * NR : NR;
        if ((g->bmode == B_DENSE && !g->tb) || g->bmode == B_SHIFTED) { /* B[k][j] at B[k*ldb + j] or src[off[k] + j] */
            __m256i m[NR / 8];
            for (int v = 0; v < NR / 8; v++) m[v] = lane_mask8((int)pc - 8 * v);
            for (int64_t k = 0; k < kc; k++) {
                const float *s = g->bmode == B_SHIFTED ? g->src + g->off[k0 + k] + jp : g->B + (k0 + k) * g->ldb + jp;
                if (pc == NR)
                    for (int v = 0; v < NR / 8; v++) _mm256_store_ps(half_row(d, kc, k, 8 * v), _mm256_loadu_ps(s + 8 * v));
                else
                    for (int v = 0; v < NR / 8; v++)
                        _mm256_store_ps(half_row(d, kc, k, 8 * v), _mm256_maskload_ps(s + 8 * v, m[v]));
            }
            continue;
        }
        /* column j of op(B) is a contiguous run along k (B[j*ldb + k], or src[off[j] + k]): 8×8 transposes */
        for (int c0 = 0; c0 < NR; c0 += 8) {
            int rows = (int)(pc - c0 < 8 ? pc - c0 : 8);
            if (rows <= 0) {
                for (int64_t k = 0; k < kc; k++) _mm256_store_ps(half_row(d, kc, k, c0), _mm256_setzero_ps());
                continue;
            }
            const float *col[8];
            for (int i = 0; i < 8; i++) {
                int64_t j = jp + c0 + (i < rows ? i : 0);
                col[i] = (g->bmode == B_SHIFTED_T ? g->src + g->off[j] : g->B + j * g->ldb) + k0;
            }
            for (int64_t kk = 0; kk < kc; kk += 8) {
                int cols = (int)(kc - kk < 8 ? kc - kk : 8);
                __m256 v[8];
                load_transpose8p(col, rows, cols, v);
                for (int c = 0; c < cols; c++) _mm256_store_ps(half_row(d, kc, kk + c, c0), v[c]);
                for (int i = 0; i < 8; i++) col[i] += 8;
            }
        }
    }
}

/* Rows [i0, i0+4) × columns [24h, 24h+24) of the tile (gemm_kernels.h gives the operand forms; a packed B
 * is two half-panels, see pack_b). Row i of A is the run r_i[k·step]: a packed panel (step 8) or op(A) in
 * place (step astep). */
static inline __attribute__((always_inline)) AVX2 void
quarter(int64_t kc, const float *restrict a, bool a_rows, int64_t ars, int64_t astep, const float *restrict b,
        const int64_t *boff, int i0, int h, float *restrict c, int64_t ldc, int mr, int nr, bool accumulate,
        const float *brow, const float *bcol) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
#define RP(i) (a_rows ? a + (i0 + i < mr ? i0 + i : mr - 1) * ars : a + i0 + i)
    const float *r0 = RP(0), *r1 = RP(1), *r2 = RP(2), *r3 = RP(3);
#undef RP
    const int64_t step = a_rows ? astep : MR;
    b += boff ? HALF * h : HALF * h * kc;
    int64_t idx = 0;
#define ROW(i)                                                          \
    do {                                                                \
        __m256 ai = _mm256_broadcast_ss(r##i + idx);                    \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                     \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                     \
        c##i##2 = _mm256_fmadd_ps(ai, b2, c##i##2);                     \
    } while (0)
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0, b1, b2;
        if (boff) {
            const float *bk = b + boff[k];
            b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8), b2 = _mm256_loadu_ps(bk + 16);
        } else {
            b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), b2 = _mm256_load_ps(b + 16);
            b += HALF;
        }
        ROW(0); ROW(1); ROW(2); ROW(3);
        idx += step;
    }
#undef ROW
    __m256 acc[4][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32}};
    __m256 bc[3];
    __m256i m[3];
    for (int v = 0; v < 3; v++) {
        m[v] = lane_mask8(nr - HALF * h - 8 * v);
        bc[v] = bcol ? _mm256_maskload_ps(bcol + HALF * h + 8 * v, m[v]) : _mm256_setzero_ps();
    }
    for (int i = 0; i < 4 && i0 + i < mr; i++) {
        float *ci = c + (i0 + i) * ldc + HALF * h;
        __m256 br = _mm256_set1_ps(brow ? brow[i0 + i] : 0.0f);
        for (int v = 0; v < 3; v++) {
            int n = nr - HALF * h - 8 * v;
            if (n <= 0) break;
            __m256 x = acc[i][v];
            if (accumulate) x = _mm256_add_ps(x, n >= 8 ? _mm256_loadu_ps(ci + 8 * v) : _mm256_maskload_ps(ci + 8 * v, m[v]));
            if (brow || bcol) x = _mm256_add_ps(x, _mm256_add_ps(br, bc[v]));
            if (n >= 8) _mm256_storeu_ps(ci + 8 * v, x);
            else _mm256_maskstore_ps(ci + 8 * v, m[v], x);
        }
    }
}

static inline __attribute__((always_inline)) AVX2 void
kernel_core(int64_t kc, const float *restrict a, bool a_rows, int64_t ars, int64_t astep, const float *restrict b,
            const int64_t *boff, float *restrict c, int64_t ldc, int mr, int nr, bool accumulate, const float *brow,
            const float *bcol) {
    for (int h = 0; h < 2 && HALF * h < nr; h++)
        for (int i0 = 0; i0 < mr; i0 += 4)
            quarter(kc, a, a_rows, ars, astep, b, boff, i0, h, c, ldc, mr, nr, accumulate, brow, bcol);
}

/* The four instances: A packed or in place, B packed or shifted windows. */
static AVX2 void kernel_pp(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                           bool accumulate, const float *brow, const float *bcol) {
    kernel_core(kc, a, false, 0, 0, b, NULL, c, ldc, mr, nr, accumulate, brow, bcol);
}
static AVX2 void kernel_ps(int64_t kc, const float *a, const float *b, const int64_t *boff, float *c, int64_t ldc,
                           int mr, int nr, bool accumulate, const float *brow, const float *bcol) {
    kernel_core(kc, a, false, 0, 0, b, boff, c, ldc, mr, nr, accumulate, brow, bcol);
}
static AVX2 void kernel_dp(int64_t kc, const float *a, int64_t ars, int64_t astep, const float *b, float *c,
                           int64_t ldc, int mr, int nr, bool accumulate, const float *brow, const float *bcol) {
    kernel_core(kc, a, true, ars, astep, b, NULL, c, ldc, mr, nr, accumulate, brow, bcol);
}
static AVX2 void kernel_ds(int64_t kc, const float *a, int64_t ars, int64_t astep, const float *b,
                           const int64_t *boff, float *c, int64_t ldc, int mr, int nr, bool accumulate,
                           const float *brow, const float *bcol) {
    kernel_core(kc, a, true, ars, astep, b, boff, c, ldc, mr, nr, accumulate, brow, bcol);
}

const GemmIsa gemm_isa_avx2 = {"avx2", pack_a16, pack_b, kernel_pp, kernel_ps, kernel_dp, kernel_ds, HALF};
#endif
