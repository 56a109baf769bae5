/* Packed single-precision GEMM with an AVX-512 8×48 micro-kernel (Goto/BLIS structure).
 *
 * Why our own: on this machine (2 cores, AVX-512 with two FMA ports) the FMA peak is ≈335 GFLOP/s, and
 * OpenBLAS 0.3.21's SkylakeX sgemm reaches ≈200-280 at the ViT and convolution shapes this project runs.
 *
 * Structure. Each thread owns a contiguous range of 48-column panels of C; for each NC-wide slice of it
 * and each K-block it packs that slice of op(B) (KC × NC ≤ 2.3 MB; in practice a chunk of a few panels,
 * L2-resident) and sweeps the 8-row panels of op(A) against it. Untransposed op(A) is read in place when
 * alpha is 1 (8 rows × KC ≤ 24 KB
 * stay in L1 across the sweep, so packing would only add a pass over it); otherwise it is packed once,
 * scaled, shared by all threads (one barrier). A transposed A is always packed: read in place, its 8-float
 * slivers sit lda apart, and with lda a multiple of 1 KB (768, 3072) they all fall in one L1 set. The micro-kernel keeps the 8×48 tile of C in 24 zmm accumulators: per k, three
 * vector loads of B, eight broadcasts of A, 24 FMAs.
 * Every element of C is summed in the same order (k ascending within a block, blocks in order) whatever
 * the thread count. That holds only when this kernel runs: products under MIN_FLOPS, CPUs without
 * AVX-512F, DACLIP_GEMM=blas, a busy lock or slot (run_ours) and failed scratch allocation go to OpenBLAS,
 * whose sums can change with the thread count (docs/architecture.md, Threads). Transposed operands are
 * packed with 16×16 in-register transposes. A settle callback (t_sgemm_shifted_settle) takes C chunk by
 * chunk from a thread's [M][NC] scratch instead of C being stored. */
#include "tensor/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define GEMM_HAVE_AVX512_CODE 1
#else
#define GEMM_HAVE_AVX512_CODE 0
#endif

#define MR 8
#define NR 48
#define KC 768                      /* largest K-block of a dense op(B); a product's blocks are K split evenly */
#define KC_SHIFTED 512              /* ... of shifted windows (convolutions) */
#define NC 768                      /* 16 panels of NR */
#define SHIFTED_PACK_M 128          /* shifted windows are packed (not read in place) from this many rows of C */
#define MIN_FLOPS (4.0 * 1024 * 1024) /* below this, cblas_sgemm's small-matrix path is as good */
#define MAX_THREADS 256

static void blas_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

#if GEMM_HAVE_AVX512_CODE
#define AVX512 __attribute__((target("avx512f")))

/* Scratch kept for the life of the process (reachable from globals, so leak checkers stay quiet). One
 * caller at a time uses it (g_lock); a concurrent caller falls back to BLAS. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static float *g_apack;
static size_t g_apack_cap;
static float *g_bpack[MAX_THREADS];
static float *g_cbuf[MAX_THREADS];   /* [M][NC] chunks of C for a settle callback */
static size_t g_cbuf_cap[MAX_THREADS];

static float *grow(float **buf, size_t *cap, size_t n) {
    if (n <= *cap) return *buf;
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0) return NULL;
    free(*buf);
    *buf = p;
    *cap = n;
    return *buf;
}

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

/* Packs rows [i0, i0+16) of op(A)·alpha, k in [k0, k0+kc), as two 8-row panels (dst, dst + 8·kc),
 * each laid out [kc][8]. Rows past M are zero. */
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
} Gemm;

/* Packs op(B) rows k in [k0, k0+kc), columns [j0, j0+ncols) into panels of NR columns, each [kc][NR],
 * columns past ncols zero. */
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

/* One 8×48 tile over K-block [k0, k0 + kc): A packed (apack) or in place (alpha 1), B packed (bpanel) or
 * shifted windows. */
static AVX512 void tile(const Gemm *g, const float *apack, int64_t ip, int64_t k0, int64_t kc, const float *bpanel,
                        int64_t q, bool acc, bool first, float *cbase, int64_t ldc, int64_t qbase) {
    int mr = (int)(g->M - ip * MR < MR ? g->M - ip * MR : MR), nr = (int)(g->N - q * NR < NR ? g->N - q * NR : NR);
    float *c = cbase + ip * MR * ldc + (q - qbase) * NR;
    const float *brow = first && g->bias_row ? g->bias_row + ip * MR : NULL;
    const float *bcol = first && g->bias_col ? g->bias_col + q * NR : NULL;
    if (g->a_direct) {
        /* (i, k) of op(A) at A[i·lda + k], or A[k·lda + i] when transposed */
        const float *a = g->ta ? g->A + k0 * g->lda + ip * MR : g->A + ip * MR * g->lda + k0;
        int64_t ars = g->ta ? 1 : g->lda, astep = g->ta ? g->lda : 1;
        if (g->b_in_place)
            kernel_ds(kc, a, ars, astep, g->src + q * NR, g->off + k0, c, ldc, mr, nr, acc, brow, bcol);
        else
            kernel_dp(kc, a, ars, astep, bpanel, c, ldc, mr, nr, acc, brow, bcol);
    } else {
        const float *a = apack + ((g->M + MR - 1) / MR * MR) * k0 + ip * MR * kc;
        if (g->b_in_place)
            kernel_ps(kc, a, g->src + q * NR, g->off + k0, c, ldc, mr, nr, acc, brow, bcol);
        else
            kernel_pp(kc, a, bpanel, c, ldc, mr, nr, acc, brow, bcol);
    }
}

/* K is cut into ceil(K / KC) equal blocks: every block but the last pass over C costs a read and a write
 * of it (a 3072×768 weight gradient is 9 MB), so fewer, fuller blocks are better (K = 400: one block).
 * KC 768 rather than 512 keeps a ViT-B/32 linear layer (K = 768) in one block and cuts c_proj's K = 3072
 * from six to four: encode faster in 26 of 36 alternating rounds (three A/B runs, medians 1.08, 1.01,
 * 1.03), the training step in 12 of 16 (1.11, 1.03). The B block stays small enough for L2 because
 * column chunks are a few panels wide, and an in-place 8-row sliver of A is 24 KB, half of L1. Shifted
 * windows (convolutions) keep 512: not measured at 768. */
static int64_t k_block(const Gemm *g) {
    static int64_t kip = -1;
    if (kip < 0) { const char *e = getenv("DACLIP_KIP"); kip = e ? atoll(e) : KC_SHIFTED; }
    int64_t kc = g->bmode == B_DENSE ? KC : g->b_in_place ? kip : KC_SHIFTED;
    int64_t nb = (g->K + kc - 1) / kc;
    return (g->K + nb - 1) / nb;
}

static int64_t k_len(const Gemm *g, int64_t k0) { return g->K - k0 < k_block(g) ? g->K - k0 : k_block(g); }

/* Work items [w0, w1) of packing op(A)·alpha whole: item w = (K-block, pair of 8-row panels). K-block
 * kb starts at Mp·k0 in apack, panel ip at + ip·8·kc. */
static AVX512 void pack_a_items(const Gemm *g, float *apack, int64_t w0, int64_t w1) {
    const int64_t Mp = (g->M + MR - 1) / MR * MR, npm = Mp / MR, npairs = (npm + 1) / 2;
    for (int64_t w = w0; w < w1; w++) {
        int64_t kb = w / npairs, pr = w % npairs, k0 = kb * k_block(g);
        pack_a16(g->ta, g->A, g->lda, g->M, pr * 16, k0, k_len(g, k0), g->alpha,
                 apack + Mp * k0 + pr * 2 * MR * k_len(g, k0), (2 * pr + 1 < npm) ? 2 : 1);
    }
}

static int64_t pack_a_count(const Gemm *g) {
    int64_t npm = (g->M + MR - 1) / MR;
    return (g->K + k_block(g) - 1) / k_block(g) * ((npm + 1) / 2);
}

/* Columns panels [p0, p1) of C from packed A, packing op(B) NC columns at a time into bp (B_SHIFTED
 * reads B in place instead). With a settle callback, each NC-wide chunk of C is made in cbuf [M][NC]
 * and handed over while it is still in L2, instead of being stored. */
static AVX512 void compute_columns(const Gemm *g, const float *apack, float *bp, float *cbuf, int64_t p0, int64_t p1) {
    const int64_t M = g->M, N = g->N, ldc = g->ldc, npm = (M + MR - 1) / MR;
    if (p1 <= p0) return;
    if (g->beta != 0.0f && g->beta != 1.0f) {
        int64_t j0 = p0 * NR, j1 = p1 * NR < N ? p1 * NR : N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = j0; j < j1; j++) g->C[i * ldc + j] *= g->beta;
    }
    for (int64_t q0 = p0; q0 < p1; q0 += NC / NR) {
        int64_t q1 = q0 + NC / NR < p1 ? q0 + NC / NR : p1;
        int64_t j0 = q0 * NR, ncols = (q1 * NR < N ? q1 * NR : N) - j0;
        float *cb = g->settle ? cbuf : g->C;
        int64_t cld = g->settle ? NC : ldc, qb = g->settle ? q0 : 0;
        for (int64_t k0 = 0; k0 < g->K; k0 += k_block(g)) {
            int64_t kc = k_len(g, k0);
            bool first = k0 == 0, acc = !first || g->beta != 0.0f;
            if (g->b_in_place) {
                /* windows read in place: keep one 48-column panel of them in L1 across all of A's panels
                 * (the in-place reads are unaligned, each spanning two cache lines) */
                for (int64_t q = q0; q < q1; q++)
                    for (int64_t ip = 0; ip < npm; ip++) tile(g, apack, ip, k0, kc, NULL, q, acc, first, cb, cld, qb);
                continue;
            }
            pack_b(g, j0, ncols, k0, kc, bp);
            for (int64_t ip = 0; ip < npm; ip++)
                for (int64_t q = q0; q < q1; q++)
                    tile(g, apack, ip, k0, kc, bp + (q - q0) * kc * NR, q, acc, first, cb, cld, qb);
        }
        if (g->settle) g->settle(g->settle_ctx, j0, ncols, cbuf, NC);
    }
}

/* All threads: A packed once and shared (one barrier), then each thread its own range of column panels. */
static void gemm_threaded(const Gemm *g, float *apack, int nthreads) {
    const int64_t npn = (g->N + NR - 1) / NR, items = pack_a_count(g);
#pragma omp parallel num_threads(nthreads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        if (!g->a_direct) {
#pragma omp for schedule(static)
            for (int64_t w = 0; w < items; w++) pack_a_items(g, apack, w, w + 1);
        }
        /* column chunks handed out dynamically: on a shared machine one thread can lose its core for a
         * while, and the other then takes over its share instead of waiting at the end. A packed A (e.g. a
         * weight gradient's dYᵀ, 3072×400) is streamed whole from L3 for every chunk, so its chunks are
         * larger: 1/(2T) of the panels rather than 1/(8T) (ViT dW 3072×768×400: ≈270 → ≈282 GFLOP/s) */
        int64_t div = g->a_direct ? 8 : 2;
        int64_t chunk = (npn + div * T - 1) / (div * T);
        if (chunk > NC / NR) chunk = NC / NR;
        if (chunk < 1) chunk = 1;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t p = 0; p < npn; p += chunk)
            compute_columns(g, apack, g_bpack[t], g_cbuf[t], p, p + chunk < npn ? p + chunk : npn);
    }
}

/* Scratch of the in-thread path (a call from inside a parallel region): one slot per team thread. */
static float *g_slot_a[MAX_THREADS], *g_slot_b[MAX_THREADS], *g_slot_c[MAX_THREADS];
static size_t g_slot_a_cap[MAX_THREADS], g_slot_c_cap[MAX_THREADS];
static atomic_flag g_slot_busy[MAX_THREADS];

/* Runs the product on the calling thread; false (nothing done) when its slot is busy or memory short. */
static bool gemm_in_thread(const Gemm *g) {
    int t = omp_get_thread_num();
    if (t < 0 || t >= MAX_THREADS || atomic_flag_test_and_set(&g_slot_busy[t])) return false;
    int64_t Mp = (g->M + MR - 1) / MR * MR;
    bool ok = g->a_direct || grow(&g_slot_a[t], &g_slot_a_cap[t], (size_t)(Mp * g->K)) != NULL;
    if (ok && !g_slot_b[t] && posix_memalign((void **)&g_slot_b[t], 64, (size_t)KC * NC * sizeof(float)) != 0) {
        g_slot_b[t] = NULL;
        ok = false;
    }
    if (ok && g->settle) ok = grow(&g_slot_c[t], &g_slot_c_cap[t], (size_t)(Mp * NC)) != NULL;
    if (ok) {
        if (!g->a_direct) pack_a_items(g, g_slot_a[t], 0, pack_a_count(g));
        compute_columns(g, g_slot_a[t], g_slot_b[t], g_slot_c[t], 0, (g->N + NR - 1) / NR);
    }
    atomic_flag_clear(&g_slot_busy[t]);
    return ok;
}

/* The scratch of the threaded path for nthreads threads, or false when memory is short. */
static bool scratch_ready(int64_t M, int64_t K, int nthreads, int64_t Mc) {
    int64_t Mp = (M + MR - 1) / MR * MR;
    if (Mp > 0 && !grow(&g_apack, &g_apack_cap, (size_t)(Mp * K))) return false;
    for (int t = 0; t < nthreads; t++) {
        if (!g_bpack[t] && posix_memalign((void **)&g_bpack[t], 64, (size_t)KC * NC * sizeof(float)) != 0) {
            g_bpack[t] = NULL;
            return false;
        }
        if (Mc > 0 && !grow(&g_cbuf[t], &g_cbuf_cap[t], (size_t)((Mc + MR - 1) / MR * MR * NC))) return false;
    }
    return true;
}
#endif /* GEMM_HAVE_AVX512_CODE */

static int g_backend = -1; /* 1: ours, 0: BLAS */
static bool g_pack_a_always; /* DACLIP_GEMM=packed: pack op(A) even when it could be read in place */

static int backend(void) {
    if (g_backend < 0) {
        int ours = 0;
#if GEMM_HAVE_AVX512_CODE
        __builtin_cpu_init();
        ours = __builtin_cpu_supports("avx512f");
#endif
        const char *e = getenv("DACLIP_GEMM");
        if (e && strcmp(e, "blas") == 0) ours = 0;
        if (e && strcmp(e, "packed") == 0) g_pack_a_always = true;
        g_backend = ours;
    }
    return g_backend;
}

const char *t_sgemm_backend(void) { return backend() ? "avx512" : "blas"; }

/* C = beta·C + bias_row[i] + bias_col[j], the whole of the product when K or alpha is zero. */
static void scale_and_bias(int64_t M, int64_t N, float beta, float *C, int64_t ldc, const float *bias_row,
                           const float *bias_col) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float v = beta == 0.0f ? 0.0f : C[i * ldc + j] * beta;
            if (bias_row) v += bias_row[i];
            if (bias_col) v += bias_col[j];
            C[i * ldc + j] = v;
        }
}

#if GEMM_HAVE_AVX512_CODE
/* Our kernel, threaded or on the calling thread; false when it cannot run (lock or slot busy, memory), and
 * the caller then uses OpenBLAS: a GEMM issued concurrently from a second non-OpenMP thread, or from two
 * teams with the same thread number, loses thread-count independence, at a timing-dependent moment. */
static bool run_ours(const Gemm *g) {
    if (omp_in_parallel()) return gemm_in_thread(g);
    if (pthread_mutex_trylock(&g_lock) != 0) return false;
    int nt = omp_get_max_threads();
    if (nt > MAX_THREADS) nt = MAX_THREADS;
    int64_t npn = (g->N + NR - 1) / NR;
    if (nt > npn) nt = (int)npn;
    bool ok = scratch_ready(g->a_direct ? 0 : g->M, g->K, nt, g->settle ? g->M : 0);
    if (ok) gemm_threaded(g, g_apack, nt);
    pthread_mutex_unlock(&g_lock);
    return ok;
}
#endif

void t_sgemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias_row,
                  const float *bias_col) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_and_bias(M, N, beta, C, ldc, bias_row, bias_col);
        return;
    }
#if GEMM_HAVE_AVX512_CODE
    if (backend() && 2.0 * M * N * K >= MIN_FLOPS) {
        Gemm g = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha,
                  .beta = beta, .A = A, .B = B, .bias_row = bias_row, .bias_col = bias_col, .C = C, .bmode = B_DENSE,
                  .a_direct = alpha == 1.0f && !ta && !g_pack_a_always};
        if (run_ours(&g)) return;
    }
#endif
    if (bias_row || bias_col) { /* BLAS: seed C with beta·C + bias, then accumulate */
        scale_and_bias(M, N, beta, C, ldc, bias_row, bias_col);
        beta = 1.0f;
    }
    blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#if GEMM_HAVE_AVX512_CODE
/* How a shifted-window product reads its operands (g->bmode, M and alpha set).
 * Windows read in place suit few output channels (M < SHIFTED_PACK_M: A, packed, is small and the windows
 * are re-read from L1 for each of its 8-row panels); with more, A's panels and the windows no longer share
 * L1, so the windows are packed like dense B (aligned, L2-resident, a copy amortised over M/8 panels) and A
 * is read in place. U-Net convs at 256-512 channels: conv time / dense GEMM time 1.4-1.6 -> 1.2-1.4
 * (bench_unet_convs, three alternating runs). Windows in place sweep all of A for every 48-column panel
 * (see compute_columns): A must then be one contiguous L2 stream, i.e. packed. Windows as columns
 * (B_SHIFTED_T) are always packed, A then read in place when alpha is 1. */
static void choose_shifted_operands(Gemm *g) {
    g->b_in_place = g->bmode == B_SHIFTED && g->M < SHIFTED_PACK_M;
    g->a_direct = !g->b_in_place && g->alpha == 1.0f && !g_pack_a_always;
}
#endif

bool t_sgemm_shifted(bool windows_are_columns, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *src, const int64_t *off, float beta, float *C, int64_t ldc,
                     const float *bias_row) {
    if (M <= 0 || N <= 0) return true;
    if (K <= 0 || alpha == 0.0f) {
        scale_and_bias(M, N, beta, C, ldc, bias_row, NULL);
        return true;
    }
#if GEMM_HAVE_AVX512_CODE
    if (backend()) {
        Gemm g = {.M = M, .N = N, .K = K, .lda = lda, .ldc = ldc, .alpha = alpha, .beta = beta, .A = A,
                  .bias_row = bias_row, .C = C, .bmode = windows_are_columns ? B_SHIFTED_T : B_SHIFTED,
                  .src = src, .off = off};
        choose_shifted_operands(&g);
        if (run_ours(&g)) return true;
    }
#endif
    /* BLAS: materialise op(B) [K, N] */
    float *B = malloc(sizeof(float) * (size_t)K * (size_t)N);
    if (!B) return false;
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) B[k * N + j] = windows_are_columns ? src[off[j] + k] : src[off[k] + j];
    t_sgemm_bias(false, false, M, N, K, alpha, A, lda, B, N, beta, C, ldc, bias_row, NULL);
    free(B);
    return true;
}

bool t_sgemm_shifted_settle(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *src,
                            const int64_t *off, const float *bias_row, TGemmSettle settle, void *ctx) {
    if (M <= 0 || N <= 0) return true;
#if GEMM_HAVE_AVX512_CODE
    if (backend() && K > 0) {
        Gemm g = {.M = M, .N = N, .K = K, .lda = lda, .ldc = 0, .alpha = 1.0f, .beta = 0.0f, .A = A,
                  .bias_row = bias_row, .C = NULL, .bmode = B_SHIFTED, .src = src, .off = off,
                  .settle = settle, .settle_ctx = ctx};
        choose_shifted_operands(&g);
        if (run_ours(&g)) return true;
    }
#endif
    /* elsewhere: C made whole, then settled at once */
    float *C = malloc(sizeof(float) * (size_t)M * (size_t)N);
    if (!C) return false;
    bool ok = t_sgemm_shifted(false, M, N, K, 1.0f, A, lda, src, off, 0.0f, C, N, bias_row);
    if (ok) settle(ctx, 0, N, C, N);
    free(C);
    return ok;
}

void t_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    t_sgemm_bias(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, NULL);
}
