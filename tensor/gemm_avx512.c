/* The AVX-512F leaves of our GEMM (tensor/gemm_kernels.h): the 8×48 micro-kernel keeps its tile of C in 24
 * zmm accumulators (per k: three vector loads of B, eight broadcasts of A, 24 FMAs); transposed operands
 * are packed with 16×16 in-register transposes, edges with lane masks. */
#include "tensor/gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

static inline AVX512 __mmask16 lane_mask(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
}

/* Loads rows×cols (≤16×16) floats, row i at p[i], zero-filled to 16×16, and transposes:
 * out[c] lane r = p[r][c]. */
static inline AVX512 void load_transpose16p(const float *const *p, int rows, int cols, __m512 out[16]) {
    __mmask16 m = lane_mask(cols);
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(m, p[i]) : _mm512_setzero_ps();
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
        __m512d b0 = _mm512_castps_pd(t[4 * i + 2]), b1 = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, b0));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, b0));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, b1));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, b1));
    }
    /* r[4i+j] now holds, for rows 4i..4i+3, column j of each 128-bit lane group. */
    for (int j = 0; j < 4; j++) {
        __m512 x0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), x1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        __m512 y0 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), y1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
        out[j] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        out[j + 8] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
        out[j + 4] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        out[j + 12] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
    }
}

/* The same for rows at a fixed stride: out[c] lane r = src[r*ld + c]. */
static inline AVX512 void load_transpose16(const float *src, int64_t ld, int rows, int cols, __m512 out[16]) {
    const float *p[16];
    for (int i = 0; i < 16; i++) p[i] = src + (i < rows ? i : 0) * ld;
    load_transpose16p(p, rows, cols, out);
}

static AVX512 void pack_a16(bool ta, const float *A, int64_t lda, int64_t M, int64_t i0, int64_t k0, int64_t kc,
                            float alpha, float *dst, int npanels) {
    int rows = (int)(M - i0 < 16 ? M - i0 : 16);
    __m512 va = _mm512_set1_ps(alpha);
    if (!ta) { /* A[i][k] at A[i*lda + k]: 16×16 transposes */
        for (int64_t kk = 0; kk < kc; kk += 16) {
            int cols = (int)(kc - kk < 16 ? kc - kk : 16);
            __m512 v[16];
            load_transpose16(A + i0 * lda + k0 + kk, lda, rows, cols, v);
            for (int c = 0; c < cols; c++) {
                __m512 x = _mm512_mul_ps(v[c], va);
                _mm256_storeu_ps(dst + (kk + c) * MR, _mm512_castps512_ps256(x));
                if (npanels > 1)
                    _mm256_storeu_ps(dst + MR * kc + (kk + c) * MR,
                                     _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
            }
        }
    } else {   /* A[i][k] at A[k*lda + i]: contiguous along i */
        __mmask16 m = lane_mask(rows);
        for (int64_t k = 0; k < kc; k++) {
            __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, A + (k0 + k) * lda + i0), va);
            _mm256_storeu_ps(dst + k * MR, _mm512_castps512_ps256(x));
            if (npanels > 1)
                _mm256_storeu_ps(dst + MR * kc + k * MR, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
        }
    }
}

static AVX512 void pack_b(const Gemm *g, int64_t j0, int64_t ncols, int64_t k0, int64_t kc, float *dst) {
    for (int64_t p = 0; p * NR < ncols; p++) {
        float *d = dst + p * kc * NR;
        int64_t jp = j0 + p * NR, pc = ncols - p * NR < NR ? ncols - p * NR : NR;
        if ((g->bmode == B_DENSE && !g->tb) || g->bmode == B_SHIFTED) { /* B[k][j] at B[k*ldb + j] or src[off[k] + j] */
            __mmask16 m0 = lane_mask((int)pc), m1 = lane_mask((int)pc - 16), m2 = lane_mask((int)pc - 32);
            for (int64_t k = 0; k < kc; k++) {
                const float *s = g->bmode == B_SHIFTED ? g->src + g->off[k0 + k] + jp : g->B + (k0 + k) * g->ldb + jp;
                _mm512_storeu_ps(d + k * NR, _mm512_maskz_loadu_ps(m0, s));
                _mm512_storeu_ps(d + k * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
                _mm512_storeu_ps(d + k * NR + 32, _mm512_maskz_loadu_ps(m2, s + 32));
            }
            continue;
        }
        /* column j of op(B) is a contiguous run along k (B[j*ldb + k], or src[off[j] + k]):
         * transpose 16×16 blocks */
        for (int c0 = 0; c0 < NR; c0 += 16) {
            int rows = (int)(pc - c0 < 16 ? pc - c0 : 16);
            if (rows <= 0) {
                for (int64_t k = 0; k < kc; k++) _mm512_storeu_ps(d + k * NR + c0, _mm512_setzero_ps());
                continue;
            }
            const float *col[16];
            for (int i = 0; i < 16; i++) {
                int64_t j = jp + c0 + (i < rows ? i : 0);
                col[i] = (g->bmode == B_SHIFTED_T ? g->src + g->off[j] : g->B + j * g->ldb) + k0;
            }
            for (int64_t kk = 0; kk < kc; kk += 16) {
                int cols = (int)(kc - kk < 16 ? kc - kk : 16);
                __m512 v[16];
                load_transpose16p(col, rows, cols, v);
                for (int c = 0; c < cols; c++) _mm512_storeu_ps(d + (kk + c) * NR + c0, v[c]);
                for (int i = 0; i < 16; i++) col[i] += 16;
            }
        }
    }
}

/* C[mr × nr] (+)= A[8][kc] · B[kc][48] (+ brow[i] + bcol[j] when given).
 * A is a packed panel (a[k·8 + i]) or, when a_rows, read in place: element (i, k) at a[i·ars + k·astep]
 * (rows past mr re-read row mr−1, so nothing outside op(A) is touched).
 * B is a packed panel (b, row stride NR) or, when boff is given, shifted windows read in place: row k at
 * b + boff[k] (unaligned, at least 48 floats readable). */
static inline __attribute__((always_inline)) AVX512 void
kernel_core(int64_t kc, const float *restrict a, bool a_rows, int64_t ars, int64_t astep, const float *restrict b,
            const int64_t *boff, float *restrict c, int64_t ldc, int mr, int nr, bool accumulate, const float *brow,
            const float *bcol) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    __m512 c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    const float *r0 = a, *r1 = a, *r2 = a, *r3 = a, *r4 = a, *r5 = a, *r6 = a, *r7 = a;
    if (a_rows) {
#define RP(i) r##i = a + (i < mr ? i : mr - 1) * ars
        RP(1); RP(2); RP(3); RP(4); RP(5); RP(6); RP(7);
#undef RP
    }
    int64_t idx = 0;
#define ROW(i)                                                          \
    do {                                                                \
        __m512 ai = _mm512_set1_ps(a_rows ? r##i[idx] : a[i]);          \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                     \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                     \
        c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2);                     \
    } while (0)
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0, b1, b2;
        if (boff) {
            const float *bk = b + boff[k];
            b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16), b2 = _mm512_loadu_ps(bk + 32);
        } else {
            b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32);
            b += NR;
        }
        ROW(0); ROW(1); ROW(2); ROW(3); ROW(4); ROW(5); ROW(6); ROW(7);
        if (a_rows) idx += astep;
        else a += MR;
    }
#undef ROW
    __m512 acc[MR][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32},
                         {c40, c41, c42}, {c50, c51, c52}, {c60, c61, c62}, {c70, c71, c72}};
    __mmask16 m[3] = {lane_mask(nr), lane_mask(nr - 16), lane_mask(nr - 32)};
    __m512 bc[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    if (bcol)
        for (int v = 0; v < 3; v++) bc[v] = _mm512_maskz_loadu_ps(m[v], bcol + 16 * v);
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        __m512 br = _mm512_set1_ps(brow ? brow[i] : 0.0f);
        for (int v = 0; v < 3; v++) {
            if (!m[v]) break;
            __m512 x = acc[i][v];
            if (accumulate) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m[v], ci + 16 * v));
            if (brow || bcol) x = _mm512_add_ps(x, _mm512_add_ps(br, bc[v]));
            _mm512_mask_storeu_ps(ci + 16 * v, m[v], x);
        }
    }
}

/* The four instances: A packed or in place, B packed or shifted windows. */
static AVX512 void kernel_pp(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                             bool accumulate, const float *brow, const float *bcol) {
    kernel_core(kc, a, false, 0, 0, b, NULL, c, ldc, mr, nr, accumulate, brow, bcol);
}
static AVX512 void kernel_ps(int64_t kc, const float *a, const float *b, const int64_t *boff, float *c, int64_t ldc,
                             int mr, int nr, bool accumulate, const float *brow, const float *bcol) {
    kernel_core(kc, a, false, 0, 0, b, boff, c, ldc, mr, nr, accumulate, brow, bcol);
}
static AVX512 void kernel_dp(int64_t kc, const float *a, int64_t ars, int64_t astep, const float *b, float *c,
                             int64_t ldc, int mr, int nr, bool accumulate, const float *brow, const float *bcol) {
    kernel_core(kc, a, true, ars, astep, b, NULL, c, ldc, mr, nr, accumulate, brow, bcol);
}
static AVX512 void kernel_ds(int64_t kc, const float *a, int64_t ars, int64_t astep, const float *b,
                             const int64_t *boff, float *c, int64_t ldc, int mr, int nr, bool accumulate,
                             const float *brow, const float *bcol) {
    kernel_core(kc, a, true, ars, astep, b, boff, c, ldc, mr, nr, accumulate, brow, bcol);
}

const GemmIsa gemm_isa_avx512 = {"avx512", pack_a16, pack_b, kernel_pp, kernel_ps, kernel_dp, kernel_ds, NR};
#endif
