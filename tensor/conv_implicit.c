/* Stride-1 convolution as an implicit GEMM: the im2col matrix is never built.
 *
 * With the input zero-padded to [Cin, Hp, Wp] and flattened, the im2col row of tap k = (c, i, j) is the
 * window xp[off(k) + q], off(k) = c·Hp·Wp + i·Wp + j, q = oy·Wp + ox — one contiguous run, so the GEMM
 * kernel reads B straight from the padded input (t_sgemm_shifted). Output columns are computed over the
 * padded width Wp (the Wp − Wo extra columns per row are discarded), which costs (Wp − Wo)/Wo more work
 * (1.6% at 128 px) and saves writing and re-reading K·Ho·Wo floats of im2col per image.
 *     forward  Y[:, q]  = W [Cout, K] · window(xp)                         (bias fused)
 *     dX       dX[:, q] = W' [Cin, Cout·kh·kw] · window(dY padded by k−1−p)   W' = W flipped, transposed
 *     dW       dW      += dY' [Cout, Ho·Wp] · window(xp)ᵀ                   dY' = dY with zero columns
 * dX is the forward convolution of dY with W', so no col2im is needed either. */
#include <string.h>

#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
#include "tensor/internal.h"

bool conv_implicit_ok(const ConvGeom *g) {
    return g->sh == 1 && g->sw == 1 && !g->direct && g->ph < g->kh && g->pw < g->kw &&
           strcmp(t_sgemm_backend(), "avx512") == 0;
}

/* dst [C, nb, Hp, Wp] = src [nb, C, H, W] (images channel-major, so that one window runs across all nb
 * images) placed at (top, left), zero elsewhere, then `slack` zeros. */
static void pad_planes(const float *src, int64_t nb, int64_t C, int64_t H, int64_t W, int64_t top, int64_t left,
                       int64_t Hp, int64_t Wp, float *dst, int64_t slack) {
#pragma omp parallel for collapse(2) if (nb * C * Hp * Wp > T_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < nb; n++) {
            float *d = dst + (c * nb + n) * Hp * Wp;
            const float *s = src + (n * C + c) * H * W;
            memset(d, 0, sizeof(float) * (size_t)(top * Wp));
            for (int64_t y = 0; y < H; y++) {
                float *row = d + (top + y) * Wp;
                memset(row, 0, sizeof(float) * (size_t)left);
                memcpy(row + left, s + y * W, sizeof(float) * (size_t)W);
                memset(row + left + W, 0, sizeof(float) * (size_t)(Wp - left - W));
            }
            memset(d + (top + H) * Wp, 0, sizeof(float) * (size_t)((Hp - top - H) * Wp));
        }
    memset(dst + C * nb * Hp * Wp, 0, sizeof(float) * (size_t)slack);
}

/* off[(c·kh + i)·kw + j] = c·plane + i·Wp + j, plane = the floats of one channel (all images of a chunk) */
static void window_offsets(int64_t C, int64_t kh, int64_t kw, int64_t plane, int64_t Wp, int64_t *off) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++) off[(c * kh + i) * kw + j] = c * plane + i * Wp + j;
}

/* dst [nb, C, H, W] (+)= the top-left H×W of each image of src [C, nb, Hs, Ws] */
static void take_valid(const float *src, int64_t nb, int64_t C, int64_t H, int64_t W, int64_t Hs, int64_t Ws,
                       float *dst, bool add) {
#pragma omp parallel for collapse(2) if (nb * C * H * W > T_PAR_MIN) schedule(static)
    for (int64_t n = 0; n < nb; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < H; y++) {
                const float *s = src + ((c * nb + n) * Hs + y) * Ws;
                float *d = dst + ((n * C + c) * H + y) * W;
                if (add)
                    for (int64_t x = 0; x < W; x++) d[x] += s[x];
                else
                    memcpy(d, s, sizeof(float) * (size_t)W);
            }
}

/* Images per GEMM: all of them while the padded chunk stays under conv_implicit_chunk_bytes (the windows then run
 * across images, making one long product instead of many short ones), else fewer. */
int64_t conv_implicit_chunk_bytes = (int64_t)48 << 20;
static int64_t chunk_images(const ConvGeom *g, int64_t C, int64_t Hp, int64_t Wp) {
    int64_t per = C * Hp * Wp * (int64_t)sizeof(float), nb = per > 0 ? conv_implicit_chunk_bytes / per : g->N;
    return nb < 1 ? 1 : nb > g->N ? g->N : nb;
}

/* Floats past the padded input that the kernel may read: the last window's run rounded up to 48. */
static int64_t window_slack(const ConvGeom *g) { return g->kw + 64; }

void conv_implicit_forward(const ConvGeom *g, const float *x, const float *w, const float *b, float *y) {
    const int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, slack = window_slack(g);
    const int64_t NB = chunk_images(g, g->Cin, Hp, Wp);
    size_t mark = t_arena_mark();
    float *xp = t_arena_alloc(sizeof(float) * (size_t)(g->Cin * NB * Hp * Wp + slack));  /* [Cin, nb, Hp, Wp] */
    float *tmp = t_arena_alloc(sizeof(float) * (size_t)(g->Cout * NB * Hp * Wp));       /* [Cout, nb, Hp, Wp] */
    int64_t *off = t_arena_alloc(sizeof(int64_t) * (size_t)g->K);
    for (int64_t n0 = 0; n0 < g->N; n0 += NB) {
        int64_t nb = g->N - n0 < NB ? g->N - n0 : NB, plane = nb * Hp * Wp;
        /* output positions q = (n·Hp + oy)·Wp + ox; the last image needs only its Ho rows */
        int64_t Nq = plane - (Hp - g->Ho) * Wp;
        window_offsets(g->Cin, g->kh, g->kw, plane, Wp, off);
        pad_planes(x + n0 * g->Cin * g->H * g->W, nb, g->Cin, g->H, g->W, g->ph, g->pw, Hp, Wp, xp, slack);
        t_sgemm_shifted(false, g->Cout, Nq, g->K, 1.0f, w, g->K, xp, off, 0.0f, tmp, plane, b);
        take_valid(tmp, nb, g->Cout, g->Ho, g->Wo, Hp, Wp, y + n0 * g->Cout * g->Ho * g->Wo, false);
    }
    t_arena_release(mark);
}

void conv_implicit_backward(const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db) {
    const int64_t Cin = g->Cin, Cout = g->Cout, kh = g->kh, kw = g->kw, HWo = g->Ho * g->Wo;
    const int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, slack = window_slack(g);
    /* dX: dY padded by (k − 1 − p) to [Hq, Wq], flipped transposed weights */
    const int64_t qh = kh - 1 - g->ph, qw = kw - 1 - g->pw, Hq = g->Ho + 2 * qh, Wq = g->Wo + 2 * qw;
    const int64_t Kx = Cout * kh * kw;
    int64_t NB = chunk_images(g, Cin > Cout ? Cin : Cout, Hp > Hq ? Hp : Hq, Wp > Wq ? Wp : Wq);
    size_t mark = t_arena_mark();
    float *xp = NULL, *dyw = NULL, *dyp = NULL, *wt = NULL, *tmpx = NULL;
    int64_t *off = NULL, *offx = NULL;
    if (dw) {
        xp = t_arena_alloc(sizeof(float) * (size_t)(Cin * NB * Hp * Wp + slack));   /* [Cin, nb, Hp, Wp] */
        dyw = t_arena_alloc(sizeof(float) * (size_t)(Cout * NB * Hp * Wp));         /* [Cout, nb, Hp, Wp] */
        off = t_arena_alloc(sizeof(int64_t) * (size_t)g->K);
    }
    if (dx) {
        dyp = t_arena_alloc(sizeof(float) * (size_t)(Cout * NB * Hq * Wq + slack));  /* [Cout, nb, Hq, Wq] */
        wt = t_arena_alloc(sizeof(float) * (size_t)(Cin * Kx));                     /* [Cin, Cout, kh, kw] */
        tmpx = t_arena_alloc(sizeof(float) * (size_t)(Cin * NB * Hq * Wq));         /* [Cin, nb, Hq, Wq] */
        offx = t_arena_alloc(sizeof(int64_t) * (size_t)Kx);
        for (int64_t co = 0; co < Cout; co++)
            for (int64_t ci = 0; ci < Cin; ci++)
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++)
                        wt[ci * Kx + (co * kh + i) * kw + j] = w[((co * Cin + ci) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
    }
    if (db) conv_bias_grad(g, dy, db);
    for (int64_t n0 = 0; n0 < g->N; n0 += NB) {
        int64_t nb = g->N - n0 < NB ? g->N - n0 : NB;
        const float *dyn = dy + n0 * Cout * HWo;
        if (dw) { /* reduction over every output position of the chunk; dY' is zero off the Ho×Wo corner */
            int64_t plane = nb * Hp * Wp;
            window_offsets(Cin, kh, kw, plane, Wp, off);
            pad_planes(x + n0 * Cin * g->H * g->W, nb, Cin, g->H, g->W, g->ph, g->pw, Hp, Wp, xp, slack);
            pad_planes(dyn, nb, Cout, g->Ho, g->Wo, 0, 0, Hp, Wp, dyw, 0);
            t_sgemm_shifted(true, Cout, g->K, plane - (Hp - g->Ho) * Wp, 1.0f, dyw, plane, xp, off, 1.0f, dw, g->K,
                            NULL);
        }
        if (dx) {
            int64_t plane = nb * Hq * Wq;
            window_offsets(Cout, kh, kw, plane, Wq, offx);
            pad_planes(dyn, nb, Cout, g->Ho, g->Wo, qh, qw, Hq, Wq, dyp, slack);
            t_sgemm_shifted(false, Cin, plane - (Hq - g->H) * Wq, Kx, 1.0f, wt, Kx, dyp, offx, 0.0f, tmpx, plane, NULL);
            take_valid(tmpx, nb, Cin, g->H, g->W, Hq, Wq, dx + n0 * Cin * g->H * g->W, true);
        }
    }
    t_arena_release(mark);
}

void conv_bias_grad(const ConvGeom *g, const float *dy, float *db) {
    const int64_t HWo = g->Ho * g->Wo;
#pragma omp parallel for if (g->N * g->Cout * HWo > T_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < g->Cout; c++) {
        float s = 0.0f;
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t p = 0; p < HWo; p++) s += dy[(n * g->Cout + c) * HWo + p];
        db[c] += s;
    }
}
