/* Nearest ×2 upsampling followed by a 3×3 convolution (pad 1), without the upsampled image.
 *
 * Output pixel (2i + a, 2j + b) sees upsampled rows 2i + a − 1 .. 2i + a + 1, i.e. input rows i − 1, i, i
 * (a = 0) or i, i, i + 1 (a = 1), and the same for columns. So each of the four phases (a, b) is a 2×2
 * convolution of the input with summed weights
 *     W_ab[t][u] = Σ_{ky ∈ R(a, t)} Σ_{kx ∈ R(b, u)} w[ky][kx],   R(0,·) = {0}, {1,2};  R(1,·) = {0,1}, {2}
 * over the input padded by 1: phase (a, b), tap (t, u) reads the window at row offset a + t, column b + u
 * (tensor/conv_implicit.c explains windows). 4·Cin·4 multiply-adds per output quadruple instead of
 * 4·Cin·9: 4/9 of the work, and the 4× larger upsampled input is never stored.
 *     forward  Y_ab = W_ab · windows(xp)                     four GEMMs sharing one padded copy
 *     dW_ab        = dY_ab · windows(xp)ᵀ, folded back into the 3×3 weights
 *     dX           = one GEMM over the four phases of dY stacked as 4·Cout channels (padded by 1),
 *                    tap (t, u) of phase (a, b) at offset (2 − a − t, 2 − b − u), K = 16·Cout. */
#include <string.h>

#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
#include "tensor/internal.h"
#include "tensor/par_reduce.h"

bool conv_up2x_ok(const ConvGeom *g) {
    return g->kh == 3 && g->kw == 3 && g->ph == 1 && g->pw == 1 && g->sh == 1 && g->sw == 1 && g->C1 == g->Cin &&
           g->H % 2 == 0 && g->W % 2 == 0 && strcmp(t_sgemm_backend(), "blas") != 0;
}

/* first and last 3×3 tap that phase a's tap t sums */
static int tap_lo(int a, int t) { return t ? 1 + a : 0; }
static int tap_hi(int a, int t) { return t ? 2 : a; }

/* wph [4][Cout][Cin][2][2]: the summed weights of every phase ab = 2a + b */
static void phase_weights(const float *w, int64_t Cout, int64_t Cin, float *wph) {
    for (int ab = 0; ab < 4; ab++)
        for (int64_t oc = 0; oc < Cout * Cin; oc++)
            for (int t = 0; t < 2; t++)
                for (int u = 0; u < 2; u++) {
                    float s = 0.0f;
                    for (int ky = tap_lo(ab >> 1, t); ky <= tap_hi(ab >> 1, t); ky++)
                        for (int kx = tap_lo(ab & 1, u); kx <= tap_hi(ab & 1, u); kx++) s += w[oc * 9 + ky * 3 + kx];
                    wph[((ab * Cout * Cin + oc) * 2 + t) * 2 + u] = s;
                }
}

/* off[(c·2 + t)·2 + u] = c·plane + (a + t)·Wp + (b + u) */
static void phase_offsets(int64_t C, int a, int b, int64_t plane, int64_t Wp, int64_t *off) {
    for (int64_t c = 0; c < C; c++)
        for (int t = 0; t < 2; t++)
            for (int u = 0; u < 2; u++) off[(c * 2 + t) * 2 + u] = c * plane + (a + t) * Wp + (b + u);
}

void conv_up2x_forward(const ConvGeom *g, const float *x, const float *w, const float *b, float *y,
                       const ConvEpi *epi) {
    const int64_t Cin = g->Cin, Cout = g->Cout, h = g->H / 2, wd = g->W / 2, Hp = h + 2, Wp = wd + 2;
    const int64_t NB = conv_chunk_images(g->N, Cin > Cout ? Cin : Cout, Hp, Wp), K = 4 * Cin;
    const ConvSrc src = {x, NULL, Cin, Cin, h * wd};
    size_t mark = t_arena_mark();
    float *wph = t_arena_alloc(sizeof(float) * (size_t)(4 * Cout * K));
    float *xp = t_arena_alloc(sizeof(float) * (size_t)(Cin * NB * Hp * Wp + CONV_WINDOW_SLACK(3)));
    float *tmp = t_arena_alloc(sizeof(float) * (size_t)(4 * Cout * NB * Hp * Wp));   /* [4][Cout, nb, Hp, Wp] */
    int64_t *off = t_arena_alloc(sizeof(int64_t) * (size_t)K);
    int threads = t_par_threads();
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(threads * g->W));
    if (!wph || !xp || !tmp || !off || !rows) {   /* out of memory (reported): the caller sees t_arena_failed() */
        t_arena_release(mark);
        return;
    }
    phase_weights(w, Cout, Cin, wph);
    for (int64_t n0 = 0; n0 < g->N; n0 += NB) {
        int64_t nb = g->N - n0 < NB ? g->N - n0 : NB, plane = nb * Hp * Wp, Nq = plane - 2 * Wp;
        conv_pad_planes(&src, n0, nb, h, wd, 1, 1, Hp, Wp, xp, CONV_WINDOW_SLACK(3));
        for (int ab = 0; ab < 4; ab++) {
            phase_offsets(Cin, ab >> 1, ab & 1, plane, Wp, off);
            t_sgemm_shifted(false, Cout, Nq, K, 1.0f, wph + ab * Cout * K, K, xp, off, 0.0f,
                            tmp + ab * Cout * plane, plane, b);
        }
        /* interleave the phases row by row (an output row takes its columns from phases (a, 0) and (a, 1)) */
#pragma omp parallel for collapse(2) if (nb * Cout * g->H * g->W > T_PAR_MIN) schedule(static)
        for (int64_t n = 0; n < nb; n++)
            for (int64_t c = 0; c < Cout; c++) {
                float *row = rows + (int64_t)t_par_tid() * g->W;
                for (int64_t oy = 0; oy < g->H; oy++) {
                    int64_t a = oy & 1, i = oy >> 1;
                    const float *p0 = tmp + ((2 * a) * Cout + c) * plane + (n * Hp + i) * Wp;
                    const float *p1 = p0 + Cout * plane;
                    for (int64_t j = 0; j < wd; j++) row[2 * j] = p0[j], row[2 * j + 1] = p1[j];
                    conv_epi_row(epi, Cout, g->H * g->W, n0 + n, c, oy * g->W, row,
                                 y + ((n0 + n) * Cout + c) * g->H * g->W + oy * g->W, g->W, false);
                }
            }
    }
    t_arena_release(mark);
}

void conv_up2x_backward(const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                        float *db) {
    const int64_t Cin = g->Cin, Cout = g->Cout, h = g->H / 2, wd = g->W / 2, Hp = h + 2, Wp = wd + 2;
    const int64_t NB = conv_chunk_images(g->N, 4 * (Cin > Cout ? Cin : Cout), Hp, Wp), K = 4 * Cin, Kx = 16 * Cout;
    const ConvSrc src = {x, NULL, Cin, Cin, h * wd};
    const ConvDst dxd = {dx, NULL, Cin, Cin, h * wd};
    size_t mark = t_arena_mark();
    float *wph = t_arena_alloc(sizeof(float) * (size_t)(4 * Cout * K));
    if (!wph) return;   /* out of memory (reported) */
    phase_weights(w, Cout, Cin, wph);
    /* dY's phases on the padded input grid, [4][Cout, nb, Hp, Wp], the phase at (1, 1): the dX GEMM reads
     * them padded by one; the dW GEMM reads them shifted back to (0, 0) through its offsets */
    float *dyp = t_arena_alloc(sizeof(float) * (size_t)(4 * Cout * NB * Hp * Wp + CONV_WINDOW_SLACK(3)));
    float *xp = dw ? t_arena_alloc(sizeof(float) * (size_t)(Cin * NB * Hp * Wp + CONV_WINDOW_SLACK(3))) : NULL;
    float *dwph = dw ? t_arena_alloc(sizeof(float) * (size_t)(Cout * K)) : NULL;
    float *wt = dx ? t_arena_alloc(sizeof(float) * (size_t)(Cin * Kx)) : NULL;
    int64_t *off = t_arena_alloc(sizeof(int64_t) * (size_t)(K > Kx ? K : Kx));
    if (!dyp || !off || (dw && (!xp || !dwph)) || (dx && !wt)) {   /* out of memory (reported): the caller sees t_arena_failed() */
        t_arena_release(mark);
        return;
    }
    if (dx) /* wt [Cin][(ab·Cout + co)·4 + t·2 + u] = W_ab[co][ci][t][u] */
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int ab = 0; ab < 4; ab++)
                for (int64_t co = 0; co < Cout; co++)
                    for (int tu = 0; tu < 4; tu++)
                        wt[ci * Kx + (ab * Cout + co) * 4 + tu] = wph[((ab * Cout + co) * Cin + ci) * 4 + tu];
    if (db) conv_bias_grad(g, dy, db);
    for (int64_t n0 = 0; n0 < g->N; n0 += NB) {
        int64_t nb = g->N - n0 < NB ? g->N - n0 : NB, plane = nb * Hp * Wp, Nq = plane - 2 * Wp;
#pragma omp parallel for collapse(2) if (4 * nb * Cout * Hp * Wp > T_PAR_MIN) schedule(static)
        for (int64_t ab = 0; ab < 4; ab++)
            for (int64_t c = 0; c < Cout; c++) {
                int64_t a = ab >> 1, b = ab & 1;
                for (int64_t n = 0; n < nb; n++) {
                    float *d = dyp + ((ab * Cout + c) * nb + n) * Hp * Wp;
                    const float *s = dy + ((n0 + n) * Cout + c) * g->H * g->W;
                    memset(d, 0, sizeof(float) * (size_t)(Hp * Wp));
                    for (int64_t i = 0; i < h; i++)
                        for (int64_t j = 0; j < wd; j++) d[(i + 1) * Wp + j + 1] = s[(2 * i + a) * g->W + 2 * j + b];
                }
            }
        memset(dyp + 4 * Cout * plane, 0, sizeof(float) * CONV_WINDOW_SLACK(3));
        if (dw) {
            conv_pad_planes(&src, n0, nb, h, wd, 1, 1, Hp, Wp, xp, CONV_WINDOW_SLACK(3));
            for (int ab = 0; ab < 4; ab++) {
                int a = ab >> 1, b = ab & 1;
                phase_offsets(Cin, a, b, plane, Wp, off);
                /* the phase's dY sits at (1, 1) of its grid: read it from there as a [Cout, Nq] matrix */
                t_sgemm_shifted(true, Cout, K, Nq, 1.0f, dyp + ab * Cout * plane + Wp + 1, plane, xp, off, 0.0f, dwph,
                                K, NULL);
                for (int64_t oc = 0; oc < Cout * Cin; oc++)
                    for (int t = 0; t < 2; t++)
                        for (int u = 0; u < 2; u++) {
                            float v = dwph[(oc * 2 + t) * 2 + u];
                            for (int ky = tap_lo(a, t); ky <= tap_hi(a, t); ky++)
                                for (int kx = tap_lo(b, u); kx <= tap_hi(b, u); kx++) dw[oc * 9 + ky * 3 + kx] += v;
                        }
            }
        }
        if (dx) {
            for (int ab = 0; ab < 4; ab++)
                for (int64_t co = 0; co < Cout; co++)
                    for (int t = 0; t < 2; t++)
                        for (int u = 0; u < 2; u++)
                            off[(ab * Cout + co) * 4 + t * 2 + u] =
                                (ab * Cout + co) * plane + (2 - (ab >> 1) - t) * Wp + (2 - (ab & 1) - u);
            ConvSettle st = {&dxd, NULL, true, Cin, h, wd, n0, Hp, Wp};   /* dX += , chunk by chunk */
            if (!t_sgemm_shifted_settle(Cin, Nq, Kx, wt, Kx, dyp, off, NULL, conv_settle_columns, &st)) {
                t_error("conv2d", "out of memory for the product's fallback buffer");
                break;
            }
        }
    }
    t_arena_release(mark);
}
