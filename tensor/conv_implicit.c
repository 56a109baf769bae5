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
 * dX is the forward convolution of dY with W', so no col2im is needed either.
 * The padded copy is made anyway, so the input may come in two parts (a concatenation along channels,
 * never built). The product is never stored whole: the GEMM hands it over in column chunks still in cache
 * (t_sgemm_shifted_settle), and the pass that drops the extra columns also applies the ResBlock's
 * activation (forward) or adds into dX (backward); that saves a [C, nb, Hp, Wp] buffer, 17 MB per 64-channel
 * 256² image, 270 MB at 1024². */
#include <string.h>

#include "tensor/conv_act.h"
#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
#include "tensor/internal.h"

bool conv_implicit_ok(const ConvGeom *g) {
    return g->sh == 1 && g->sw == 1 && !g->direct && g->ph < g->kh && g->pw < g->kw &&
           strcmp(t_sgemm_backend(), "blas") != 0;
}

void conv_pad_planes(const ConvSrc *src, int64_t n0, int64_t nb, int64_t H, int64_t W, int64_t top, int64_t left,
                     int64_t Hp, int64_t Wp, float *dst, int64_t slack) {
    const int64_t C = src->C;
#pragma omp parallel for collapse(2) if (nb * C * Hp * Wp > T_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < nb; n++) {
            float *d = dst + (c * nb + n) * Hp * Wp;
            const float *s = conv_src_plane(src, n0 + n, c);
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

void conv_epi_row(const ConvEpi *e, int64_t Cout, int64_t HWo, int64_t img, int64_t c, int64_t pix, const float *z,
                  float *y, int64_t n, bool add) {
    int64_t at = (img * Cout + c) * HWo + pix;
    if (e && e->pre) memcpy(e->pre + at, z, sizeof(float) * (size_t)n);
    if (!e || e->act == CONV_ACT_NONE) {
        if (add)
            for (int64_t x = 0; x < n; x++) y[x] += z[x];
        else if (y != z)
            memcpy(y, z, sizeof(float) * (size_t)n);
    } else if (e->act == CONV_ACT_SCALE_SHIFT_SILU) {
        act_sss_forward(z, y, n, 1.0f + e->ss[img * 2 * Cout + c], e->ss[img * 2 * Cout + Cout + c]);
    } else {
        act_silu_add_forward(z, e->res + at, y, n);
    }
}

int64_t conv_implicit_chunk_bytes = (int64_t)48 << 20;
int64_t conv_chunk_images(int64_t N, int64_t C, int64_t Hp, int64_t Wp) {
    int64_t per = C * Hp * Wp * (int64_t)sizeof(float), nb = per > 0 ? conv_implicit_chunk_bytes / per : N;
    return nb < 1 ? 1 : nb > N ? N : nb;
}

void conv_settle_columns(void *ctx, int64_t j0, int64_t ncols, const float *c, int64_t ldc) {
    const ConvSettle *s = ctx;
    const int64_t plane = s->Hp * s->Wp;
    for (int64_t q = j0; q < j0 + ncols;) {
        int64_t n = q / plane, y = q % plane / s->Wp, x = q % s->Wp;
        int64_t run = s->Wp - x < j0 + ncols - q ? s->Wp - x : j0 + ncols - q;   /* to the row's end */
        if (y < s->H && x < s->W) {
            int64_t len = s->W - x < run ? s->W - x : run;
            for (int64_t ch = 0; ch < s->C; ch++) {
                float *d = conv_dst_plane(s->dst, s->n0 + n, ch);
                if (d)
                    conv_epi_row(s->epi, s->C, s->H * s->W, s->n0 + n, ch, y * s->W + x, c + ch * ldc + (q - j0),
                                 d + y * s->W + x, len, s->add);
            }
        }
        q += run;
    }
}

void conv_implicit_forward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *b,
                           float *y, const ConvEpi *epi) {
    const int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, slack = CONV_WINDOW_SLACK(g->kw);
    const int64_t NB = conv_chunk_images(g->N, g->Cin, Hp, Wp);
    const ConvSrc src = {x1, x2, g->C1, g->Cin, g->H * g->W};
    const ConvDst dst = {y, NULL, g->Cout, g->Cout, g->Ho * g->Wo};
    size_t mark = t_arena_mark();
    float *xp = t_arena_alloc(sizeof(float) * (size_t)(g->Cin * NB * Hp * Wp + slack));  /* [Cin, nb, Hp, Wp] */
    int64_t *off = t_arena_alloc(sizeof(int64_t) * (size_t)g->K);
    if (!xp || !off) {   /* out of memory (reported): the caller sees t_arena_failed() */
        t_arena_release(mark);
        return;
    }
    for (int64_t n0 = 0; n0 < g->N; n0 += NB) {
        int64_t nb = g->N - n0 < NB ? g->N - n0 : NB, plane = nb * Hp * Wp;
        /* output positions q = (n·Hp + oy)·Wp + ox; the last image needs only its Ho rows */
        int64_t Nq = plane - (Hp - g->Ho) * Wp;
        window_offsets(g->Cin, g->kh, g->kw, plane, Wp, off);
        conv_pad_planes(&src, n0, nb, g->H, g->W, g->ph, g->pw, Hp, Wp, xp, slack);
        /* the product's columns go straight to y, chunk by chunk, while in cache: no [Cout, nb, Hp, Wp]
         * buffer is written and read back */
        ConvSettle st = {&dst, epi, false, g->Cout, g->Ho, g->Wo, n0, Hp, Wp};
        if (!t_sgemm_shifted_settle(g->Cout, Nq, g->K, w, g->K, xp, off, b, conv_settle_columns, &st)) {
            t_error("conv2d", "out of memory for the product's fallback buffer");
            break;
        }
    }
    t_arena_release(mark);
}

void conv_implicit_backward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *dy,
                            float *dx1, float *dx2, float *dw, float *db) {
    const int64_t Cin = g->Cin, Cout = g->Cout, kh = g->kh, kw = g->kw;
    const int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, slack = CONV_WINDOW_SLACK(kw);
    /* dX: dY padded by (k − 1 − p) to [Hq, Wq], flipped transposed weights */
    const int64_t qh = kh - 1 - g->ph, qw = kw - 1 - g->pw, Hq = g->Ho + 2 * qh, Wq = g->Wo + 2 * qw;
    const int64_t Kx = Cout * kh * kw;
    const bool want_dx = dx1 || dx2;
    int64_t NB = conv_chunk_images(g->N, Cin > Cout ? Cin : Cout, Hp > Hq ? Hp : Hq, Wp > Wq ? Wp : Wq);
    const ConvSrc xs = {x1, x2, g->C1, Cin, g->H * g->W}, dys = {dy, NULL, Cout, Cout, g->Ho * g->Wo};
    const ConvDst dxd = {dx1, dx2, g->C1, Cin, g->H * g->W};
    size_t mark = t_arena_mark();
    float *xp = NULL, *dyw = NULL, *dyp = NULL, *wt = NULL;
    int64_t *off = NULL, *offx = NULL;
    if (dw) {
        xp = t_arena_alloc(sizeof(float) * (size_t)(Cin * NB * Hp * Wp + slack));   /* [Cin, nb, Hp, Wp] */
        dyw = t_arena_alloc(sizeof(float) * (size_t)(Cout * NB * Hp * Wp));         /* [Cout, nb, Hp, Wp] */
        off = t_arena_alloc(sizeof(int64_t) * (size_t)g->K);
        if (!xp || !dyw || !off) {   /* out of memory (reported): the caller sees t_arena_failed() */
            t_arena_release(mark);
            return;
        }
    }
    if (want_dx) {
        dyp = t_arena_alloc(sizeof(float) * (size_t)(Cout * NB * Hq * Wq + slack));  /* [Cout, nb, Hq, Wq] */
        wt = t_arena_alloc(sizeof(float) * (size_t)(Cin * Kx));                     /* [Cin, Cout, kh, kw] */
        offx = t_arena_alloc(sizeof(int64_t) * (size_t)Kx);
        if (!dyp || !wt || !offx) {   /* out of memory (reported): the caller sees t_arena_failed() */
            t_arena_release(mark);
            return;
        }
        for (int64_t co = 0; co < Cout; co++)
            for (int64_t ci = 0; ci < Cin; ci++)
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++)
                        wt[ci * Kx + (co * kh + i) * kw + j] = w[((co * Cin + ci) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
    }
    if (db) conv_bias_grad(g, dy, db);
    for (int64_t n0 = 0; n0 < g->N; n0 += NB) {
        int64_t nb = g->N - n0 < NB ? g->N - n0 : NB;
        if (dw) { /* reduction over every output position of the chunk; dY' is zero off the Ho×Wo corner */
            int64_t plane = nb * Hp * Wp;
            window_offsets(Cin, kh, kw, plane, Wp, off);
            conv_pad_planes(&xs, n0, nb, g->H, g->W, g->ph, g->pw, Hp, Wp, xp, slack);
            conv_pad_planes(&dys, n0, nb, g->Ho, g->Wo, 0, 0, Hp, Wp, dyw, 0);
            t_sgemm_shifted(true, Cout, g->K, plane - (Hp - g->Ho) * Wp, 1.0f, dyw, plane, xp, off, 1.0f, dw, g->K,
                            NULL);
        }
        if (want_dx) {
            int64_t plane = nb * Hq * Wq;
            window_offsets(Cout, kh, kw, plane, Wq, offx);
            conv_pad_planes(&dys, n0, nb, g->Ho, g->Wo, qh, qw, Hq, Wq, dyp, slack);
            ConvSettle st = {&dxd, NULL, true, Cin, g->H, g->W, n0, Hq, Wq};   /* dX += , chunk by chunk */
            if (!t_sgemm_shifted_settle(Cin, plane - (Hq - g->H) * Wq, Kx, wt, Kx, dyp, offx, NULL, conv_settle_columns, &st)) {
                t_error("conv2d", "out of memory for the product's fallback buffer");
                break;
            }
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
