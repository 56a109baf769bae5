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
 * channels take this path (the U-Net's 32² level at 256², its 16² level in training). */
#include <string.h>

#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
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

/* U_ξ[o][c0 .. c0 + n) = (G g Gᵀ)_ξ for n ≤ 16 filters g[i][j][lane] (lanes = consecutive c) */
T_SIMD static void weight_lanes(const float g[9][16], int n, float *U, int64_t us) {
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
            U[(i * 4 + 0) * us + l] = a;
            U[(i * 4 + 1) * us + l] = 0.5f * (a + b + c);
            U[(i * 4 + 2) * us + l] = 0.5f * (a - b + c);
            U[(i * 4 + 3) * us + l] = c;
        }
}

/* U [16][Co][Ci] = G g Gᵀ for every (out, in) pair of w [Cout][Cin][3][3] (or, flipped_t, of the flipped
 * transposed weights w'[c][k] = w[k][c] rotated by 180°, the dX convolution's: Co = Cin, Ci = Cout). */
static void weight_transform(const float *w, int64_t Cout, int64_t Cin, bool flipped_t, float *U) {
    const int64_t Co = flipped_t ? Cin : Cout, Ci = flipped_t ? Cout : Cin, blocks = (Ci + 15) / 16;
#pragma omp parallel for schedule(static) if (Co * Ci * 9 > T_PAR_MIN)
    for (int64_t ob = 0; ob < Co * blocks; ob++) {
        int64_t o = ob / blocks, c0 = (ob % blocks) * 16;
        int n = (int)(Ci - c0 < 16 ? Ci - c0 : 16);
        float g[9][16] = {{0}};
        for (int l = 0; l < n; l++) {
            int64_t c = c0 + l;
            for (int ij = 0; ij < 9; ij++)
                g[ij][l] = flipped_t ? w[(c * Cin + o) * 9 + 8 - ij] : w[(o * Cin + c) * 9 + ij];
        }
        weight_lanes(g, n, U + o * Ci + c0, Co * Ci);
    }
}

/* V_ξ[c][tile] for the tiles of one tile row ty of one plane x [H, W] (tiles tile0 .. tile0 + tw − 1):
 * the plane's rows 2ty−1 .. 2ty+2, zero-padded, split into even and odd columns so that every tile reads
 * contiguous runs. ev/od: scratch of 4 × (tw + 1) floats each; V_ξ planes plane_stride apart. */
T_SIMD static void input_tiles(const float *x, int64_t H, int64_t W, int64_t ty, int64_t tw, float *ev, float *od,
                               float *V, int64_t plane_stride) {
    const int64_t n = tw + 1;
    for (int i = 0; i < 4; i++) {
        int64_t y = 2 * ty - 1 + i;
        float *e = ev + i * n, *o = od + i * n;
        /* column 2k − 1 goes to e[k], column 2k to o[k] (padded row index = column + 1) */
        if (y < 0 || y >= H) {
            for (int64_t k = 0; k < n; k++) e[k] = 0.0f, o[k] = 0.0f;
            continue;
        }
        const float *r = x + y * W;
        for (int64_t k = 0; k < n; k++) {
            int64_t c0 = 2 * k - 1, c1 = 2 * k;
            e[k] = c0 >= 0 && c0 < W ? r[c0] : 0.0f;
            o[k] = c1 < W ? r[c1] : 0.0f;
        }
    }
    /* d[i][j] for tile t: columns 2t−1 .. 2t+2 = e[t], o[t], e[t+1], o[t+1] of row i */
    for (int64_t t = 0; t < tw; t++) {
        float c[4][4];
        for (int i = 0; i < 4; i++) {   /* d B, row by row */
            float d0 = ev[i * n + t], d1 = od[i * n + t], d2 = ev[i * n + t + 1], d3 = od[i * n + t + 1];
            c[i][0] = d0 - d2;
            c[i][1] = d1 + d2;
            c[i][2] = d2 - d1;
            c[i][3] = d1 - d3;
        }
        for (int j = 0; j < 4; j++) {   /* Bᵀ (d B) */
            V[(0 * 4 + j) * plane_stride + t] = c[0][j] - c[2][j];
            V[(1 * 4 + j) * plane_stride + t] = c[1][j] + c[2][j];
            V[(2 * 4 + j) * plane_stride + t] = c[2][j] - c[1][j];
            V[(3 * 4 + j) * plane_stride + t] = c[1][j] - c[3][j];
        }
    }
}

/* The two output rows of one tile row (tw tiles) of one output channel: y = Aᵀ m A (+ bias), into
 * r0, r1 (2·tw floats each). M_ξ entries of the tiles at M + ξ·ms. */
T_SIMD static void output_tiles(const float *M, int64_t ms, int64_t tw, float bias, float *r0, float *r1) {
    for (int64_t t = 0; t < tw; t++) {
        float m[4][4], s[2][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) m[i][j] = M[(i * 4 + j) * ms + t];
        for (int j = 0; j < 4; j++) {
            s[0][j] = m[0][j] + m[1][j] + m[2][j];
            s[1][j] = m[1][j] - m[2][j] - m[3][j];
        }
        r0[2 * t] = s[0][0] + s[0][1] + s[0][2] + bias;
        r0[2 * t + 1] = s[0][1] - s[0][2] - s[0][3] + bias;
        r1[2 * t] = s[1][0] + s[1][1] + s[1][2] + bias;
        r1[2 * t + 1] = s[1][1] - s[1][2] - s[1][3] + bias;
    }
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
        input_tiles(conv_src_plane(src, img, c), tl->H, tl->W, ty, tl->tw, ev, od,
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
    weight_transform(w, g->Cout, g->Cin, false, U);
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
        weight_transform(w, Cout, Cin, true, U);
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
