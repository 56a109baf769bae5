/* 3×3, stride-1, pad-1 convolutions with many channels by Winograd's F(2×2, 3×3): 16 multiplies per 2×2
 * output tile and channel pair instead of 36, i.e. the GEMM work divided by 2.25.
 *
 * Per 4×4 input tile d (rows 2ty−1 .. 2ty+2, zero outside the image) and 3×3 filter g:
 *     V = Bᵀ d B,   U = G g Gᵀ,   y (2×2) = Aᵀ (U ⊙ V) A
 *     Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],  Aᵀ = [1 1 1 0; 0 1 −1 −1]
 * Summed over input channels, each of the 16 positions ξ of U ⊙ V is one GEMM over all tiles:
 *     M_ξ [Cout, T] = U_ξ [Cout, Cin] · V_ξ [Cin, T]          (T = tiles of all images)
 * and the output transform applies the bias and the epilogue (tensor/conv_geom.h). Backward:
 *     dX = the same convolution of dY with the flipped, transposed weights (pad 1: 3 − 1 − 1 = 1)
 *     dM_ξ = (A dY Aᵀ)_ξ,  dU_ξ = dM_ξ · V_ξᵀ,  dW = Gᵀ dU G
 * The 16 products of a call are shared out whole among the threads, each computed by one thread, so
 * results do not depend on the thread count. The transforms are exact in binary floating point except
 * for G's halves, which are exact too: the error is the GEMM's (in float32, ~2x that of the direct form).
 * With fewer channels the transforms (4x the input and output, memory-bound) and the products' short K
 * cost more than the multiplies saved, so only convolutions with at least WINO_MIN_C input and output
 * channels take this path in training's backward (the U-Net's 32² level at 256², its 16² level); the
 * forward from 64 channels takes the blocked form at the end of this file whenever our kernels run. */
#include <stdlib.h>
#include <string.h>

#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
#include "tensor/gemm_kernels.h"
#include "tensor/internal.h"
#include "tensor/par_reduce.h"
#include "tensor/simd.h"

/* Measured (bench_unet_convs, three alternating runs, forward and batch-4 training shapes): at 512
 * channels 10-20% faster than the implicit GEMM, at 256 10-15% slower (the 16 products have K = Cin and
 * the transforms move 4x the data), at 128 1.3-1.8x slower. */
#define WINO_MIN_C 512

bool conv_wino_ok(const ConvGeom *g) {
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph == 1 && g->pw == 1 &&
           g->Cin >= WINO_MIN_C && g->Cout >= WINO_MIN_C;
}

/* U_ξ[o][c0 .. c0 + n) = (G g Gᵀ)_ξ for n ≤ 16 filters g[i][j][lane] (lanes = consecutive c, ls apart in U) */
T_SIMD static void weight_lanes(const float g[9][16], int n, float *U, int64_t us, int64_t ls) {
    float t[4][3][16];   /* G g */
    for (int j = 0; j < 3; j++)
        for (int l = 0; l < 16; l++) {
            float a = g[j][l], b = g[3 + j][l], c = g[6 + j][l];
            t[0][j][l] = a;
            t[1][j][l] = 0.5f * (a + b + c);
            t[2][j][l] = 0.5f * (a - b + c);
            t[3][j][l] = c;
        }
    for (int i = 0; i < 4; i++)   /* (G g) Gᵀ */
        for (int l = 0; l < n; l++) {
            float a = t[i][0][l], b = t[i][1][l], c = t[i][2][l];
            U[(i * 4 + 0) * us + l * ls] = a;
            U[(i * 4 + 1) * us + l * ls] = 0.5f * (a + b + c);
            U[(i * 4 + 2) * us + l * ls] = 0.5f * (a - b + c);
            U[(i * 4 + 3) * us + l * ls] = c;
        }
}

/* U [16][Co][Ci] = G g Gᵀ for every (out, in) pair of w [Cout][Cin][3][3] (or, flipped_t, of the flipped
 * transposed weights w'[c][k] = w[k][c] rotated by 180°, the dX convolution's: Co = Cin, Ci = Cout).
 * packed: U [16][Cp/8][Ci][8] instead, each U_ξ in 8-row panels [k][8] (gemm_kernels.h's packed A), rows
 * Co .. Cp (Co rounded up to 8) zero. */
static void weight_transform(const float *w, int64_t Cout, int64_t Cin, bool flipped_t, bool packed, float *U) {
    const int64_t Co = flipped_t ? Cin : Cout, Ci = flipped_t ? Cout : Cin, blocks = (Ci + 15) / 16;
    const int64_t rows = packed ? (Co + 7) / 8 * 8 : Co;
#pragma omp parallel for schedule(static) if (rows * Ci * 9 > T_PAR_MIN)
    for (int64_t ob = 0; ob < rows * blocks; ob++) {
        int64_t o = ob / blocks, c0 = (ob % blocks) * 16;
        int n = (int)(Ci - c0 < 16 ? Ci - c0 : 16);
        float g[9][16] = {{0}};
        for (int l = 0; l < n && o < Co; l++) {
            int64_t c = c0 + l;
            for (int ij = 0; ij < 9; ij++)
                g[ij][l] = flipped_t ? w[(c * Cin + o) * 9 + 8 - ij] : w[(o * Cin + c) * 9 + ij];
        }
        if (packed) weight_lanes(g, n, U + (o / 8) * 8 * Ci + c0 * 8 + o % 8, rows * Ci, 8);
        else weight_lanes(g, n, U + o * Ci + c0, Co * Ci, 1);
    }
}

/* Eight floats, read and written at any address (GCC's vector extension: 2 SSE or 1 AVX register). */
typedef float WinoVec __attribute__((vector_size(32), aligned(4), may_alias));

/* V_ξ[c][tile] for tiles t0 .. t0 + tw − 1 of tile row ty of one plane x [H, W]: the plane's rows
 * 2ty−1 .. 2ty+2, zero-padded, split into even and odd columns so that every tile reads contiguous runs
 * (and the loop over tiles vectorises: 8 loads and 16 stores per tile, each a contiguous stream).
 * ev/od: scratch of 4 × (tw + 1) floats each; V_ξ planes plane_stride apart. */
T_SIMD static void input_tiles(const float *x, int64_t H, int64_t W, int64_t ty, int64_t t0, int64_t tw,
                               float *restrict ev, float *restrict od, float *restrict V, int64_t plane_stride) {
    const int64_t n = tw + 1;
    /* column 2(t0 + k) − 1 goes to e[k], column 2(t0 + k) to o[k]; k in [k0, k1) needs no bounds check */
    const int64_t k0 = t0 == 0 ? 1 : 0, k1 = (W + 1) / 2 - t0 < n ? (W + 1) / 2 - t0 : n;
    for (int i = 0; i < 4; i++) {
        int64_t y = 2 * ty - 1 + i;
        float *restrict e = ev + i * n, *restrict o = od + i * n;
        if (y < 0 || y >= H) {
            for (int64_t k = 0; k < n; k++) e[k] = 0.0f, o[k] = 0.0f;
            continue;
        }
        const float *restrict r = x + y * W + 2 * t0;   /* r[2k − 1], r[2k] */
        for (int64_t k = 0; k < k0; k++) e[k] = 0.0f, o[k] = r[2 * k];
        for (int64_t k = k0; k < k1; k++) e[k] = r[2 * k - 1], o[k] = r[2 * k];
        for (int64_t k = k1 > k0 ? k1 : k0; k < n; k++) {
            int64_t c0 = 2 * (t0 + k) - 1, c1 = c0 + 1;
            e[k] = c0 < W ? r[2 * k - 1] : 0.0f;
            o[k] = c1 < W ? r[2 * k] : 0.0f;
        }
    }
    const float *e0 = ev, *e1 = ev + n, *e2 = ev + 2 * n, *e3 = ev + 3 * n;
    const float *o0 = od, *o1 = od + n, *o2 = od + 2 * n, *o3 = od + 3 * n;
    /* d[i][j] for tile t: columns 2t−1 .. 2t+2 = e[t], o[t], e[t+1], o[t+1] of row i; c = d B, V = Bᵀ c.
     * Eight tiles at a time in vector types (GCC does not vectorise the 16 store streams by itself). */
#define DB(T, LD, i)                                                                          \
    const T c##i##0 = LD(e##i + t) - LD(e##i + t + 1), c##i##1 = LD(o##i + t) + LD(e##i + t + 1), \
            c##i##2 = LD(e##i + t + 1) - LD(o##i + t), c##i##3 = LD(o##i + t) - LD(o##i + t + 1)
#define BT(ST, j)                                        \
    ST(V + (0 * 4 + j) * plane_stride + t, c0##j - c2##j); \
    ST(V + (1 * 4 + j) * plane_stride + t, c1##j + c2##j); \
    ST(V + (2 * 4 + j) * plane_stride + t, c2##j - c1##j); \
    ST(V + (3 * 4 + j) * plane_stride + t, c1##j - c3##j)
#define LDV(p) (*(const WinoVec *)(p))
#define STV(p, v) (*(WinoVec *)(p) = (v))
#define LDS(p) (*(p))
#define STS(p, v) (*(p) = (v))
    int64_t t = 0;
    for (; t + 8 <= tw; t += 8) {
        DB(WinoVec, LDV, 0); DB(WinoVec, LDV, 1); DB(WinoVec, LDV, 2); DB(WinoVec, LDV, 3);
        BT(STV, 0); BT(STV, 1); BT(STV, 2); BT(STV, 3);
    }
    for (; t < tw; t++) {
        DB(float, LDS, 0); DB(float, LDS, 1); DB(float, LDS, 2); DB(float, LDS, 3);
        BT(STS, 0); BT(STS, 1); BT(STS, 2); BT(STS, 3);
    }
#undef DB
#undef BT
#undef LDV
#undef STV
#undef LDS
#undef STS
}

/* The two output rows of one tile row (tw tiles) of one output channel: y = Aᵀ m A (+ bias), into
 * r0, r1 (2·tw floats each). M_ξ entries of the tiles at M + ξ·ms. */
T_SIMD static void output_tiles(const float *restrict M, int64_t ms, int64_t tw, float bias, float *restrict r0,
                                float *restrict r1) {
#define S(j)                                                                                  \
    const float s0##j = M[(0 * 4 + j) * ms + t] + M[(1 * 4 + j) * ms + t] + M[(2 * 4 + j) * ms + t], \
                s1##j = M[(1 * 4 + j) * ms + t] - M[(2 * 4 + j) * ms + t] - M[(3 * 4 + j) * ms + t]
    for (int64_t t = 0; t < tw; t++) {
        S(0); S(1); S(2); S(3);
        r0[2 * t] = s00 + s01 + s02 + bias;
        r0[2 * t + 1] = s01 - s02 - s03 + bias;
        r1[2 * t] = s10 + s11 + s12 + bias;
        r1[2 * t + 1] = s11 - s12 - s13 + bias;
    }
#undef S
}

/* dM_ξ = (A dy Aᵀ)_ξ for the tiles of one tile row of one channel of dy [H, W] (zero outside). */
T_SIMD static void grad_tiles(const float *dy, int64_t H, int64_t W, int64_t ty, int64_t tw, float *dM, int64_t ms) {
    for (int64_t t = 0; t < tw; t++) {
        float g[2][2];
        for (int r = 0; r < 2; r++)
            for (int s = 0; s < 2; s++) {
                int64_t y = 2 * ty + r, x = 2 * t + s;
                g[r][s] = y < H && x < W ? dy[y * W + x] : 0.0f;
            }
        /* A = [1 0; 1 1; 1 −1; 0 −1]: (A g)[i] rows, then (A g) Aᵀ */
        float a[4][2] = {{g[0][0], g[0][1]}, {g[0][0] + g[1][0], g[0][1] + g[1][1]},
                         {g[0][0] - g[1][0], g[0][1] - g[1][1]}, {-g[1][0], -g[1][1]}};
        for (int i = 0; i < 4; i++) {
            dM[(i * 4 + 0) * ms + t] = a[i][0];
            dM[(i * 4 + 1) * ms + t] = a[i][0] + a[i][1];
            dM[(i * 4 + 2) * ms + t] = a[i][0] - a[i][1];
            dM[(i * 4 + 3) * ms + t] = -a[i][1];
        }
    }
}

typedef struct {
    int64_t N, H, W, th, tw, T;   /* tiles: th × tw per image, T in all */
} Tiles;

static Tiles tiles_of(const ConvGeom *g) {
    Tiles t = {.N = g->N, .H = g->H, .W = g->W, .th = (g->H + 1) / 2, .tw = (g->W + 1) / 2};
    t.T = t.N * t.th * t.tw;
    return t;
}

/* V [16][C][T] of the source's C channels. */
static void input_transform(const Tiles *tl, const ConvSrc *src, float *V) {
    const int64_t C = src->C, items = tl->N * C * tl->th, n = tl->tw + 1;
    int threads = t_par_threads();
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(threads * 8 * n));
    if (!scratch) return;   /* out of memory (reported): the caller sees t_arena_failed() */
#pragma omp parallel for schedule(static) if (items * tl->tw * 16 > T_PAR_MIN)
    for (int64_t it = 0; it < items; it++) {
        int64_t img = it / (C * tl->th), c = (it / tl->th) % C, ty = it % tl->th;
        float *ev = scratch + (int64_t)t_par_tid() * 8 * n, *od = ev + 4 * n;
        input_tiles(conv_src_plane(src, img, c), tl->H, tl->W, ty, 0, tl->tw, ev, od,
                    V + c * tl->T + (img * tl->th + ty) * tl->tw, C * tl->T);
    }
}

/* The 16 products P_ξ [M, N] = A_ξ [M, K] · op(B_ξ), one thread each; op(B_ξ) = B_ξ [K, N], or with tb
 * B_ξ [N, K] transposed. Strides between the ξ: sa, sb, sc. */
static void products16(int64_t M, int64_t N, int64_t K, const float *A, int64_t sa, bool tb, const float *B,
                       int64_t sb, float *C, int64_t sc) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int xi = 0; xi < 16; xi++)
        t_sgemm(false, tb, M, N, K, 1.0f, A + xi * sa, K, B + xi * sb, tb ? K : N, 0.0f, C + xi * sc, N);
}

/* y = epi(conv(src) + b) with Cout output channels; weights as U [16][Cout][Cin]. */
static void wino_conv(const Tiles *tl, const ConvSrc *src, const float *U, int64_t Cout, const float *b,
                      const ConvDst *dst, bool add, const ConvEpi *epi) {
    const int64_t Cin = src->C, T = tl->T, Wo = tl->W;
    size_t mark = t_arena_mark();
    float *V = t_arena_alloc(sizeof(float) * (size_t)(16 * Cin * T));
    float *M = t_arena_alloc(sizeof(float) * (size_t)(16 * Cout * T));
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(t_par_threads() * 4 * (tl->tw + 1)));
    if (!V || !M || !rows) {   /* out of memory (reported): the caller sees t_arena_failed() */
        t_arena_release(mark);
        return;
    }
    input_transform(tl, src, V);
    products16(Cout, T, Cin, U, Cout * Cin, false, V, Cin * T, M, Cout * T);
    const int64_t items = tl->N * Cout * tl->th;
#pragma omp parallel for schedule(static) if (items * tl->tw * 16 > T_PAR_MIN)
    for (int64_t it = 0; it < items; it++) {
        int64_t img = it / (Cout * tl->th), k = (it / tl->th) % Cout, ty = it % tl->th;
        float *d = conv_dst_plane(dst, img, k);
        if (!d) continue;
        float *r0 = rows + (int64_t)t_par_tid() * 4 * (tl->tw + 1), *r1 = r0 + 2 * (tl->tw + 1);
        output_tiles(M + k * T + (img * tl->th + ty) * tl->tw, Cout * T, tl->tw, b ? b[k] : 0.0f, r0, r1);
        for (int r = 0; r < 2 && 2 * ty + r < tl->H; r++) {
            int64_t y = 2 * ty + r;
            conv_epi_row(epi, Cout, tl->H * Wo, img, k, y * Wo, r ? r1 : r0, d + y * Wo, Wo, add);
        }
    }
    t_arena_release(mark);
}

void conv_wino_forward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *b, float *y,
                       const ConvEpi *epi) {
    const Tiles tl = tiles_of(g);
    const ConvSrc src = {x1, x2, g->C1, g->Cin, g->H * g->W};
    const ConvDst dst = {y, NULL, g->Cout, g->Cout, g->H * g->W};
    size_t mark = t_arena_mark();
    float *U = t_arena_alloc(sizeof(float) * (size_t)(16 * g->Cout * g->Cin));
    if (!U) return;   /* out of memory (reported): the caller sees t_arena_failed() */
    weight_transform(w, g->Cout, g->Cin, false, false, U);
    wino_conv(&tl, &src, U, g->Cout, b, &dst, false, epi);
    t_arena_release(mark);
}

void conv_wino_backward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *dy,
                        float *dx1, float *dx2, float *dw, float *db) {
    const Tiles tl = tiles_of(g);
    const int64_t Cin = g->Cin, Cout = g->Cout, T = tl.T;
    size_t mark = t_arena_mark();
    if (db) conv_bias_grad(g, dy, db);
    if (dx1 || dx2) {   /* dX: dY through the flipped, transposed filters */
        float *U = t_arena_alloc(sizeof(float) * (size_t)(16 * Cin * Cout));
        if (!U) return;   /* out of memory (reported): t_backward reports it */
        weight_transform(w, Cout, Cin, true, false, U);
        const ConvSrc dys = {dy, NULL, Cout, Cout, g->H * g->W};
        const ConvDst dxd = {dx1, dx2, g->C1, Cin, g->H * g->W};
        wino_conv(&tl, &dys, U, Cin, NULL, &dxd, true, NULL);
    }
    if (dw) {
        const ConvSrc src = {x1, x2, g->C1, Cin, g->H * g->W};
        float *V = t_arena_alloc(sizeof(float) * (size_t)(16 * Cin * T));
        float *dM = t_arena_alloc(sizeof(float) * (size_t)(16 * Cout * T));
        float *dU = t_arena_alloc(sizeof(float) * (size_t)(16 * Cout * Cin));
        if (!V || !dM || !dU) {   /* out of memory (reported): t_backward reports it */
            t_arena_release(mark);
            return;
        }
        input_transform(&tl, &src, V);
        const int64_t items = tl.N * Cout * tl.th;
#pragma omp parallel for schedule(static) if (items * tl.tw * 16 > T_PAR_MIN)
        for (int64_t it = 0; it < items; it++) {
            int64_t img = it / (Cout * tl.th), k = (it / tl.th) % Cout, ty = it % tl.th;
            grad_tiles(dy + (img * Cout + k) * g->H * g->W, g->H, g->W, ty, tl.tw,
                       dM + k * T + (img * tl.th + ty) * tl.tw, Cout * T);
        }
        products16(Cout, Cin, T, dM, Cout * T, true, V, Cin * T, dU, Cout * Cin);   /* dU_ξ = dM_ξ · V_ξᵀ */
        /* dW = Gᵀ dU G per (k, c) */
#pragma omp parallel for schedule(static) if (Cout * Cin * 16 > T_PAR_MIN)
        for (int64_t kc = 0; kc < Cout * Cin; kc++) {
            float u[4][4], t[3][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) u[i][j] = dU[(i * 4 + j) * Cout * Cin + kc];
            for (int j = 0; j < 4; j++) {   /* Gᵀ u: G's columns are [1 ½ ½ 0], [0 ½ −½ 0], [0 ½ ½ 1] */
                t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            for (int i = 0; i < 3; i++) {
                float *d = dw + kc * 9 + i * 3;
                d[0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
                d[1] += 0.5f * (t[i][1] - t[i][2]);
                d[2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
            }
        }
    }
    t_arena_release(mark);
}

/* ---------------------------------------------------------------- the forward in blocks of tiles
 * The form above writes V and M for all tiles at once (4x the input and the output, each) and reads them
 * back: memory-bound, slower than the implicit GEMM below 512 channels. Here each thread takes WB_TILES
 * tiles at a time (one NR-column panel; tile rows end inside a block where they must), transforms their
 * input into V [16][Cin][WB_TILES], packs that as the micro-kernels' B panels, makes the 16 products of a
 * chunk of WB_CO output channels into M [16][WB_CO][WB_TILES] and transforms M straight to the output. A
 * block's data stays in the caches; the transformed filters are written once per call, already in the
 * kernels' packed A layout. A block is one thread's work from start to end, so the result does not depend
 * on the thread count. Forward only: training's backward keeps the paths above. */

#define WB_TILES NR   /* tiles per block */
#define WB_CO 64      /* output channels per chunk of M */
#define WB_KC 512     /* largest K-block (input channels); a product's blocks are Cin split evenly */

/* Measured (bench_unet_convs --only 3x3, 1 thread, AMD Zen 3, ms: implicit GEMM or the form above ->
 * blocked): 64->64 at 256^2 57.5 -> 40.4, 128->128 at 128^2 55.4 -> 30.8, 256->256 at 64^2 53.8 -> 28.5,
 * 512->512 at 32^2 33.7 -> 31.2 (the form above). Below 64 channels the transforms dominate. */
#define WINO_BLOCKED_MIN_C 64

static int64_t wino_blocked_min_c(void) {
    static int64_t v = -1;
    if (v < 0) {   /* DACLIP_WINO_MIN: a threshold to measure with (benchmarks only) */
        const char *e = getenv("DACLIP_WINO_MIN");
        v = e && atoll(e) > 0 ? atoll(e) : WINO_BLOCKED_MIN_C;
    }
    return v;
}

bool conv_wino_blocked_ok(const ConvGeom *g) {
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph == 1 && g->pw == 1 &&
           g->Cin >= wino_blocked_min_c() && g->Cout >= wino_blocked_min_c() && gemm_isa_active() != NULL;
}



/* A run of tiles inside one tile row: image img, tile row ty, tiles tx0 .. tx0 + len − 1, at column
 * `at` of the block. */
typedef struct {
    int64_t img, ty, tx0, len, at;
} TileRun;

static int block_runs(const Tiles *tl, int64_t f0, int64_t nt, TileRun *runs) {
    int n = 0;
    for (int64_t f = f0; f < f0 + nt;) {
        int64_t per = tl->th * tl->tw, img = f / per, ty = f % per / tl->tw, tx = f % tl->tw;
        int64_t len = tl->tw - tx < f0 + nt - f ? tl->tw - tx : f0 + nt - f;
        runs[n++] = (TileRun){img, ty, tx, len, f - f0};
        f += len;
    }
    return n;
}

void conv_wino_blocked_forward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *b,
                               float *y, const ConvEpi *epi) {
    const GemmIsa *isa = gemm_isa_active();
    const Tiles tl = tiles_of(g);
    const ConvSrc src = {x1, x2, g->C1, g->Cin, g->H * g->W};
    const ConvDst dst = {y, NULL, g->Cout, g->Cout, g->H * g->W};
    const int64_t Cin = g->Cin, Cout = g->Cout, Cp = (Cout + 7) / 8 * 8, HW = g->H * g->W;
    const int64_t nkb = (Cin + WB_KC - 1) / WB_KC, kcb = (Cin + nkb - 1) / nkb;
    const int64_t nblk = (tl.T + WB_TILES - 1) / WB_TILES;
    /* per thread: V dense and packed [16][Cin][WB_TILES], M [16][WB_CO][WB_TILES], ev/od, two output rows */
    const int64_t vsz = 16 * Cin * WB_TILES, msz = 16 * WB_CO * WB_TILES, esz = 8 * (WB_TILES + 1);
    const int64_t per = (2 * vsz + msz + esz + 4 * WB_TILES + 15) / 16 * 16;
    const int threads = t_par_threads();
    size_t mark = t_arena_mark();
    float *Up = t_arena_alloc(sizeof(float) * (size_t)(16 * Cp * Cin));
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(threads * per));
    if (!Up || !scratch) {   /* out of memory (reported): the caller sees t_arena_failed() */
        t_arena_release(mark);
        return;
    }
    weight_transform(w, Cout, Cin, false, true, Up);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        float *vd = scratch + (int64_t)t_par_tid() * per, *vp = vd + vsz, *mb = vp + vsz, *ev = mb + msz;
        float *od = ev + 4 * (WB_TILES + 1), *r0 = ev + esz, *r1 = r0 + 2 * WB_TILES;
        const int64_t f0 = blk * WB_TILES, nt = tl.T - f0 < WB_TILES ? tl.T - f0 : WB_TILES;
        TileRun runs[WB_TILES];
        const int nruns = block_runs(&tl, f0, nt, runs);
        for (int r = 0; r < nruns; r++)   /* V_ξ [Cin][WB_TILES] */
            for (int64_t c = 0; c < Cin; c++)
                input_tiles(conv_src_plane(&src, runs[r].img, c), tl.H, tl.W, runs[r].ty, runs[r].tx0, runs[r].len,
                            ev, od, vd + c * WB_TILES + runs[r].at, Cin * WB_TILES);
        for (int xi = 0; xi < 16; xi++)   /* as B panels, one per K-block (columns past nt zero) */
            for (int64_t k0 = 0; k0 < Cin; k0 += kcb) {
                Gemm gb = {.M = Cout, .N = nt, .K = Cin, .B = vd + xi * Cin * WB_TILES, .ldb = WB_TILES,
                           .bmode = B_DENSE};
                isa->pack_b(&gb, 0, nt, k0, (Cin - k0 < kcb ? Cin - k0 : kcb), vp + (xi * Cin + k0) * WB_TILES);
            }
        for (int64_t co0 = 0; co0 < Cout; co0 += WB_CO) {
            const int64_t co = Cout - co0 < WB_CO ? Cout - co0 : WB_CO;
            for (int xi = 0; xi < 16; xi++)   /* M_ξ [co][nt] = U_ξ [co][Cin] · V_ξ [Cin][nt] */
                for (int64_t i = 0; i < co; i += 8)
                    for (int64_t k0 = 0; k0 < Cin; k0 += kcb)
                        isa->kernel_pp((Cin - k0 < kcb ? Cin - k0 : kcb), Up + xi * Cp * Cin + (co0 + i) * Cin + k0 * 8,
                                       vp + (xi * Cin + k0) * WB_TILES, mb + (xi * WB_CO + i) * WB_TILES, WB_TILES,
                                       (int)(co - i < 8 ? co - i : 8), (int)nt, k0 > 0, NULL, NULL);
            for (int64_t k = 0; k < co; k++)   /* y = Aᵀ M A + b, two rows per run */
                for (int r = 0; r < nruns; r++) {
                    const TileRun *u = &runs[r];
                    float *d = conv_dst_plane(&dst, u->img, co0 + k);
                    output_tiles(mb + k * WB_TILES + u->at, WB_CO * WB_TILES, u->len, b ? b[co0 + k] : 0.0f, r0, r1);
                    const int64_t x0 = 2 * u->tx0, n = 2 * u->len < tl.W - x0 ? 2 * u->len : tl.W - x0;
                    for (int q = 0; q < 2 && 2 * u->ty + q < tl.H; q++) {
                        const int64_t pix = (2 * u->ty + q) * tl.W + x0;
                        conv_epi_row(epi, Cout, HW, u->img, co0 + k, pix, q ? r1 : r0, d + pix, n, false);
                    }
                }
        }
    }
    t_arena_release(mark);
}
