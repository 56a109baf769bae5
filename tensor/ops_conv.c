/* 2-D convolution by im2col + sgemm, nearest 2× upsampling and average pooling ([N, C, H, W]).
 *
 * Convolution works on tiles of whole output rows of one image. A tile's im2col matrix col [K, P]
 * (K = Cin·kh·kw, P = rows·Wout) is sized to stay in the core's L2, so it is produced and consumed by
 * sgemm while still cached instead of streaming a K×H×W matrix through memory:
 *     forward    Y[:, tile]  = W[Cout, K] · col
 *     backward   dW         += dY[:, tile] · colᵀ          (per-thread partials, reduced in order)
 *                dcol        = Wᵀ · dY[:, tile], then col2im adds dcol into dX
 * Tiles run in parallel, one single-threaded sgemm each (OpenBLAS's OpenMP build runs serially inside a
 * parallel region); when there are fewer tiles than threads they run in order with threaded sgemm.
 * col2im of neighbouring tiles overlaps (the kh−stride halo rows), so dX runs in two phases, even tiles
 * then odd tiles, with tiles tall enough that same-parity tiles never touch.
 * A 1×1, stride-1, unpadded convolution needs no im2col: the image itself is col (ld = H·W).
 * Workspace comes from the arena and is released before the op returns. */
#include <string.h>

#include "tensor/conv_act.h"
#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
#include "tensor/grad_write.h"
#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/par_reduce.h"
#include "tensor/simd.h"

/* Target size of one tile's im2col matrix (bytes): about half of a Zen 4 core's 1 MB L2. */
#define COL_TILE_BYTES (512 * 1024)
/* Fewest output pixels per tile, so that each sgemm has a useful width. */
#define MIN_TILE_PIXELS 128


/* Tiles to aim for per convolution: several per thread on a 2-core machine. A constant, not the thread
 * count: a tile's width is the N of its GEMM and small GEMMs sum differently at different N, so a tiling
 * that followed the thread count made the results depend on it. */
#define CONV_TILES_TARGET 8

/* Rows per tile: the L2 budget, at least MIN_TILE_PIXELS wide, tall enough that tiles two apart
 * never share input rows (kh - sh <= rows * sh), and small enough to give CONV_TILES_TARGET tiles. */
static void conv_tiling(ConvGeom *g) {
    int64_t row_bytes = g->K * g->Wo * (int64_t)sizeof(float);
    int64_t rows = COL_TILE_BYTES / (row_bytes > 0 ? row_bytes : 1);
    int64_t min_rows = (MIN_TILE_PIXELS + g->Wo - 1) / g->Wo;
    int64_t halo_rows = (g->kh - g->sh + g->sh - 1) / g->sh;
    if (min_rows < halo_rows) min_rows = halo_rows;
    if (min_rows < 1) min_rows = 1;
    if (rows < min_rows) rows = min_rows;
    while (rows > min_rows && g->N * ((g->Ho + rows - 1) / rows) < CONV_TILES_TARGET) rows--;
    if (rows > g->Ho) rows = g->Ho;
    g->rows = rows;
    g->tiles = (g->Ho + rows - 1) / rows;
}

/* col[K, P] for output rows [r0, r0 + nr) of one image x [Cin, H, W]. */
T_SIMD static void im2col_tile(const ConvGeom *g, const float *x, int64_t r0, int64_t nr, float *col) {
    int64_t P = nr * g->Wo;
    for (int64_t c = 0; c < g->Cin; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                float *dst = col + ((c * g->kh + i) * g->kw + j) * P;
                /* output columns whose input column is inside the image */
                int64_t lo = 0, hi = g->Wo;
                while (lo < hi && lo * g->sw - g->pw + j < 0) lo++;
                while (hi > lo && (hi - 1) * g->sw - g->pw + j >= g->W) hi--;
                for (int64_t r = 0; r < nr; r++, dst += g->Wo) {
                    int64_t ih = (r0 + r) * g->sh - g->ph + i;
                    if (ih < 0 || ih >= g->H) {
                        memset(dst, 0, sizeof(float) * (size_t)g->Wo);
                        continue;
                    }
                    const float *src = x + (c * g->H + ih) * g->W - g->pw + j;
                    for (int64_t o = 0; o < lo; o++) dst[o] = 0.0f;
                    if (g->sw == 1) {
                        memcpy(dst + lo, src + lo, sizeof(float) * (size_t)(hi - lo));
                    } else {
                        for (int64_t o = lo; o < hi; o++) dst[o] = src[o * g->sw];
                    }
                    for (int64_t o = hi; o < g->Wo; o++) dst[o] = 0.0f;
                }
            }
}

/* dx [Cin, H, W] += col2im(dcol [K, P]) for output rows [r0, r0 + nr). */
T_SIMD static void col2im_tile(const ConvGeom *g, const float *dcol, int64_t r0, int64_t nr, float *dx) {
    int64_t P = nr * g->Wo;
    for (int64_t c = 0; c < g->Cin; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const float *src = dcol + ((c * g->kh + i) * g->kw + j) * P;
                int64_t lo = 0, hi = g->Wo;
                while (lo < hi && lo * g->sw - g->pw + j < 0) lo++;
                while (hi > lo && (hi - 1) * g->sw - g->pw + j >= g->W) hi--;
                for (int64_t r = 0; r < nr; r++, src += g->Wo) {
                    int64_t ih = (r0 + r) * g->sh - g->ph + i;
                    if (ih < 0 || ih >= g->H) continue;
                    float *d = dx + (c * g->H + ih) * g->W - g->pw + j;
                    if (g->sw == 1) {
                        for (int64_t o = lo; o < hi; o++) d[o] += src[o];
                    } else {
                        for (int64_t o = lo; o < hi; o++) d[o * g->sw] += src[o];
                    }
                }
            }
}

/* y[c, p] = b[c] over a [Cout, P] block with row stride ld */
T_SIMD static void fill_bias_rows(float *y, const float *b, int64_t C, int64_t P, int64_t ld) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t p = 0; p < P; p++) y[c * ld + p] = b[c];
}

/* db[c] += sum over a [Cout, P] block with row stride ld */
T_SIMD static void sum_rows(const float *dy, float *db, int64_t C, int64_t P, int64_t ld) {
    for (int64_t c = 0; c < C; c++) {
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t p = 0; p < P; p++) s += dy[c * ld + p];
        db[c] += s;
    }
}

/* The B operand of a tile: the input itself (direct 1×1) or this thread's im2col buffer. */
static const float *tile_col(const ConvGeom *g, const float *xn, int64_t r0, int64_t nr, float *buf,
                             int64_t *ld) {
    if (g->direct) {
        *ld = g->H * g->W;
        return xn + r0 * g->Wo;
    }
    im2col_tile(g, xn, r0, nr, buf);
    *ld = nr * g->Wo;
    return buf;
}

static void conv_forward_tile(const ConvGeom *g, const float *x, const float *w, const float *b, float *y,
                              int64_t item, float *buf) {
    int64_t n = item / g->tiles, r0 = (item % g->tiles) * g->rows;
    int64_t nr = g->Ho - r0 < g->rows ? g->Ho - r0 : g->rows, P = nr * g->Wo, HWo = g->Ho * g->Wo, ld;
    const float *col = tile_col(g, x + n * g->Cin * g->H * g->W, r0, nr, buf, &ld);
    float *yt = y + n * g->Cout * HWo + r0 * g->Wo;
    /* seeding the tile with the bias and accumulating (beta 1) replaces sgemm's own beta pass */
    if (b) fill_bias_rows(yt, b, g->Cout, P, HWo);
    t_sgemm(false, false, g->Cout, P, g->K, 1.0f, w, g->K, col, ld, b ? 1.0f : 0.0f, yt, HWo);
}

/* Whether tiles run in parallel (single-threaded sgemm each) or in order (threaded sgemm). */
static bool tiles_parallel(const ConvGeom *g, int threads) { return threads > 1 && g->N * g->tiles >= threads; }

static int64_t col_floats(const ConvGeom *g) { return g->direct ? 1 : g->K * g->rows * g->Wo; }

typedef struct {
    ConvGeom g;
    ConvEpi epi;         /* act and, when there is one, pre = z (ss, res: node inputs) */
    bool up2x;
    int ix2, ib, iss, ires;   /* input slots of x2, b, ss, res (−1: absent); x is 0, w is 1 */
} ConvSaved;

/* The tile path's backward (im2col + GEMM): dz [N, Cout, Ho, Wo] -> dx, dw, db. */
static void conv_tiles_backward(const ConvGeom *g, const float *xd, const float *wd, const float *dy, float *dx,
                                float *dw, float *db) {
    size_t mark = t_arena_mark();
    int threads = t_par_threads();
    bool par = tiles_parallel(g, threads);
    int nbuf = par ? threads : 1;
    int64_t cf = col_floats(g), WK = g->Cout * g->K, HWo = g->Ho * g->Wo, CHW = g->Cin * g->H * g->W;
    float *cols = t_arena_alloc(sizeof(float) * (size_t)(cf * nbuf));
    float *dcols = dx && !g->direct ? t_arena_alloc(sizeof(float) * (size_t)(cf * nbuf)) : NULL;
    /* per-thread partial weight/bias gradients when tiles run in parallel */
    float *pw = dw && par ? t_partials_new(threads, WK) : NULL;
    float *pb = db && par ? t_partials_new(threads, g->Cout) : NULL;
    if (!cols || (dx && !g->direct && !dcols) || (dw && par && !pw) || (db && par && !pb)) {
        t_arena_release(mark);   /* out of memory: t_backward reports it */
        return;
    }
    int64_t items = g->N * g->tiles;
    for (int phase = 0; phase < 2; phase++) {
#pragma omp parallel if (par)
        {
            int tid = par ? t_par_tid() : 0;
            float *buf = cols + (int64_t)tid * cf, *dbuf = dcols ? dcols + (int64_t)tid * cf : NULL;
            float *mydw = pw ? pw + (int64_t)tid * WK : dw, *mydb = pb ? pb + (int64_t)tid * g->Cout : db;
#pragma omp for schedule(static)
            for (int64_t item = 0; item < items; item++) {
                int64_t n = item / g->tiles, t = item % g->tiles;
                if ((t & 1) != phase) continue;
                int64_t r0 = t * g->rows, nr = g->Ho - r0 < g->rows ? g->Ho - r0 : g->rows, P = nr * g->Wo, ld;
                const float *dyt = dy + n * g->Cout * HWo + r0 * g->Wo;
                if (mydb) sum_rows(dyt, mydb, g->Cout, P, HWo);
                if (mydw) {
                    const float *col = tile_col(g, xd + n * CHW, r0, nr, buf, &ld);
                    t_sgemm(false, true, g->Cout, g->K, P, 1.0f, dyt, HWo, col, ld, 1.0f, mydw, g->K);
                }
                if (!dx) continue;
                if (g->direct) {   /* dX[:, tile] += Wᵀ dY[:, tile], written in place */
                    t_sgemm(true, false, g->K, P, g->Cout, 1.0f, wd, g->K, dyt, HWo, 1.0f, dx + n * CHW + r0 * g->Wo, (g->H * g->W));
                } else {
                    t_sgemm(true, false, g->K, P, g->Cout, 1.0f, wd, g->K, dyt, HWo, 0.0f, dbuf, P);
                    col2im_tile(g, dbuf, r0, nr, dx + n * CHW);
                }
            }
        }
    }
    if (pw) t_partials_reduce(pw, threads, WK, dw);
    if (pb) t_partials_reduce(pb, threads, g->Cout, db);
    t_arena_release(mark);
}

/* A 1×1 convolution over cat(x1, x2): per image, y = W[:, :C1]·x1 + W[:, C1:]·x2 (two GEMMs on the
 * inputs in place; the U-Net's res_conv on its skip concatenations). */
static void conv_direct2_forward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *b,
                                 float *y) {
    const int64_t C1 = g->C1, C2 = g->Cin - g->C1, HW = g->H * g->W;
    for (int64_t n = 0; n < g->N; n++) {
        float *yn = y + n * g->Cout * HW;
        t_sgemm_bias(false, false, g->Cout, HW, C1, 1.0f, w, g->Cin, x1 + n * C1 * HW, HW, 0.0f, yn, HW, b, NULL);
        t_sgemm(false, false, g->Cout, HW, C2, 1.0f, w + C1, g->Cin, x2 + n * C2 * HW, HW, 1.0f, yn, HW);
    }
}

static void conv_direct2_backward(const ConvGeom *g, const float *x1, const float *x2, const float *w,
                                  const float *dy, float *dx1, float *dx2, float *dw, float *db) {
    const int64_t C1 = g->C1, C2 = g->Cin - g->C1, HW = g->H * g->W;
    if (db) conv_bias_grad(g, dy, db);
    for (int64_t n = 0; n < g->N; n++) {
        const float *dyn = dy + n * g->Cout * HW;
        if (dx1) t_sgemm(true, false, C1, HW, g->Cout, 1.0f, w, g->Cin, dyn, HW, 1.0f, dx1 + n * C1 * HW, HW);
        if (dx2) t_sgemm(true, false, C2, HW, g->Cout, 1.0f, w + C1, g->Cin, dyn, HW, 1.0f, dx2 + n * C2 * HW, HW);
        if (dw) {
            t_sgemm(false, true, g->Cout, C1, HW, 1.0f, dyn, HW, x1 + n * C1 * HW, HW, 1.0f, dw, g->Cin);
            t_sgemm(false, true, g->Cout, C2, HW, 1.0f, dyn, HW, x2 + n * C2 * HW, HW, 1.0f, dw + C1, g->Cin);
        }
    }
}

/* The activation's backward: dz (stored) from dy and z = pre; d ss added, d res stored (fresh) or added. */
static void conv_act_backward(const ConvGeom *g, const ConvEpi *e, const float *dy, float *dz, float *dss,
                              float *dres, bool res_fresh) {
    const int64_t C = g->Cout, P = g->Ho * g->Wo;
    if (e->act == CONV_ACT_SCALE_SHIFT_SILU) {
#pragma omp parallel for schedule(static) if (g->N * C * P > T_PAR_MIN)
        for (int64_t nc = 0; nc < g->N * C; nc++) {
            int64_t b = nc / C, c = nc % C;
            float ds, dsh;
            act_sss_backward(e->pre + nc * P, dy + nc * P, dz + nc * P, false, P, 1.0f + e->ss[b * 2 * C + c],
                             e->ss[b * 2 * C + C + c], &ds, &dsh);
            if (dss) {   /* each (b, c) pair is owned by one iteration: no race */
                dss[b * 2 * C + c] += ds;
                dss[b * 2 * C + C + c] += dsh;
            }
        }
        return;
    }
    const int64_t total = g->N * C * P, chunk = 16384;
#pragma omp parallel for schedule(static) if (total > T_PAR_MIN)
    for (int64_t i = 0; i < total; i += chunk)
        act_silu_backward(e->pre + i, dy + i, dz + i, false, total - i < chunk ? total - i : chunk);
    if (dres) {
#pragma omp parallel for schedule(static) if (total > T_PAR_MIN)
        for (int64_t i = 0; i < total; i++) dres[i] = res_fresh ? dy[i] : dres[i] + dy[i];
    }
}

static void conv_backward(TNode *node) {
    const ConvSaved *s = node->saved;
    const ConvGeom *g = &s->g;
    Tensor *x = node->in[0], *w = node->in[1], *y = node->out;
    Tensor *x2 = s->ix2 >= 0 ? node->in[s->ix2] : NULL, *b = s->ib >= 0 ? node->in[s->ib] : NULL;
    Tensor *ss = s->iss >= 0 ? node->in[s->iss] : NULL, *res = s->ires >= 0 ? node->in[s->ires] : NULL;
    /* gradient buffers first: they must outlive the workspace released below */
    float *dx = t_needs_grad(x) ? t_grad_buf(x) : NULL;
    float *dx2 = t_needs_grad(x2) ? t_grad_buf(x2) : NULL;
    float *dw = t_needs_grad(w) ? t_grad_buf(w) : NULL;
    float *db = t_needs_grad(b) ? t_grad_buf(b) : NULL;
    float *dss = t_needs_grad(ss) ? t_grad_buf(ss) : NULL;
    bool res_fresh = false;
    float *dres = t_needs_grad(res) ? t_grad_buf_for_write(res, &res_fresh) : NULL;
    if ((t_needs_grad(x) && !dx) || (t_needs_grad(x2) && !dx2) || (t_needs_grad(w) && !dw) ||
        (t_needs_grad(b) && !db) || (t_needs_grad(ss) && !dss) || (t_needs_grad(res) && !dres))
        return;   /* out of memory: t_backward reports it */
    const float *dz = y->grad;
    size_t mark = t_arena_mark();
    if (s->epi.act != CONV_ACT_NONE) {
        float *buf = t_arena_alloc(sizeof(float) * (size_t)t_numel(y));
        if (!buf) return;   /* out of memory: t_backward reports it */
        conv_act_backward(g, &s->epi, y->grad, buf, dss, dres, res_fresh);
        dz = buf;
    }
    if (dx || dx2 || dw || db) {
        if (s->up2x) conv_up2x_backward(g, x->data, w->data, dz, dx, dw, db);
        else if (conv_wino_ok(g))
            conv_wino_backward(g, x->data, x2 ? x2->data : NULL, w->data, dz, dx, dx2, dw, db);
        else if (conv_implicit_ok(g))
            conv_implicit_backward(g, x->data, x2 ? x2->data : NULL, w->data, dz, dx, dx2, dw, db);
        else if (x2) conv_direct2_backward(g, x->data, x2->data, w->data, dz, dx, dx2, dw, db);
        else if (conv_patchify_ok(g)) conv_patchify_backward(g, x->data, w->data, dz, dx, dw, db);
        else conv_tiles_backward(g, x->data, w->data, dz, dx, dw, db);
    }
    t_arena_release(mark);
}

/* Epilogue of the non-implicit paths: one pass over y (which holds z). */
static void conv_epi_apply(const ConvGeom *g, const ConvEpi *e, float *y) {
    if (e->act == CONV_ACT_NONE && !e->pre) return;
    const int64_t C = g->Cout, P = g->Ho * g->Wo;
#pragma omp parallel for schedule(static) if (g->N * C * P > T_PAR_MIN)
    for (int64_t nc = 0; nc < g->N * C; nc++) conv_epi_row(e, C, P, nc / C, nc % C, 0, y + nc * P, y + nc * P, P, false);
}

static void conv_tiles_forward(const ConvGeom *g, const float *xd, const float *wd, const float *bd, float *yd) {
    int threads = t_par_threads();
    size_t mark = t_arena_mark();
    bool par = tiles_parallel(g, threads);
    int64_t cf = col_floats(g), items = g->N * g->tiles;
    float *cols = t_arena_alloc(sizeof(float) * (size_t)(cf * (par ? threads : 1)));
    if (!cols) return;   /* out of memory: the caller sees t_arena_failed() */
#pragma omp parallel if (par)
    {
        float *buf = cols + (par ? (int64_t)t_par_tid() * cf : 0);
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) conv_forward_tile(g, xd, wd, bd, yd, item, buf);
    }
    t_arena_release(mark);
}

static bool conv_geom(Tensor *x, Tensor *x2, Tensor *w, Tensor *b, int sh, int sw, int ph, int pw, bool up2x,
                      ConvGeom *g) {
    char sx[96], sx2[96], swt[96], sb[96];
    memset(g, 0, sizeof *g);
    int64_t C1 = x->ndim == 4 ? x->shape[1] : 0, C2 = 0;
    bool ok = x->ndim == 4 && w->ndim == 4 && sh >= 1 && sw >= 1 && ph >= 0 && pw >= 0 && w->shape[0] >= 1 &&
              w->shape[2] >= 1 && w->shape[3] >= 1 && (!b || t_numel(b) == w->shape[0]);
    if (ok && x2) {
        ok = x2->ndim == 4 && x2->shape[0] == x->shape[0] && x2->shape[2] == x->shape[2] &&
             x2->shape[3] == x->shape[3];
        C2 = ok ? x2->shape[1] : 0;
    }
    ok = ok && w->shape[1] == C1 + C2;
    if (ok) {
        g->N = x->shape[0], g->Cin = C1 + C2, g->C1 = C1;
        g->H = x->shape[2] * (up2x ? 2 : 1), g->W = x->shape[3] * (up2x ? 2 : 1);
        g->Cout = w->shape[0], g->kh = w->shape[2], g->kw = w->shape[3];
        g->sh = sh, g->sw = sw, g->ph = ph, g->pw = pw;
        g->Ho = g->H + 2 * g->ph >= g->kh ? (g->H + 2 * g->ph - g->kh) / g->sh + 1 : 0;
        g->Wo = g->W + 2 * g->pw >= g->kw ? (g->W + 2 * g->pw - g->kw) / g->sw + 1 : 0;
        ok = g->Ho >= 1 && g->Wo >= 1 && g->N >= 1;
    }
    if (!ok) {
        t_error("conv2d", "input %s%s%s [N, C, H, W], weight %s [Cout, C, kh, kw], bias %s, stride %dx%d, padding %dx%d",
                t_shape_str(x, sx, sizeof sx), x2 ? " + " : "", x2 ? t_shape_str(x2, sx2, sizeof sx2) : "",
                t_shape_str(w, swt, sizeof swt), b ? t_shape_str(b, sb, sizeof sb) : "none", sh, sw, ph, pw);
        return false;
    }
    g->K = g->Cin * g->kh * g->kw;
    g->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    conv_tiling(g);
    return true;
}

static Tensor *conv2d_fused(const ConvFusedArgs *a, int sh, int sw, int ph, int pw) {
    T_NONNULL(a->x, a->w);
    ConvGeom g;
    if (!conv_geom(a->x, a->x2, a->w, a->b, sh, sw, ph, pw, a->upsample2x, &g)) return NULL;
    char s1[96], s2[96];
    if (a->act == CONV_ACT_SCALE_SHIFT_SILU &&
        (!a->ss || a->ss->ndim != 2 || a->ss->shape[0] != g.N || a->ss->shape[1] != 2 * g.Cout)) {
        t_error("conv2d", "scale_shift_silu needs ss [%lld, %lld], got %s", (long long)g.N, (long long)(2 * g.Cout),
                a->ss ? t_shape_str(a->ss, s1, sizeof s1) : "none");
        return NULL;
    }
    if (a->act == CONV_ACT_SILU_ADD && (!a->res || a->res->ndim != 4 || a->res->shape[0] != g.N ||
                                        a->res->shape[1] != g.Cout || a->res->shape[2] != g.Ho ||
                                        a->res->shape[3] != g.Wo)) {
        t_error("conv2d", "silu_add needs a residual [%lld, %lld, %lld, %lld], got %s", (long long)g.N,
                (long long)g.Cout, (long long)g.Ho, (long long)g.Wo, a->res ? t_shape_str(a->res, s2, sizeof s2) : "none");
        return NULL;
    }
    /* what only some paths do: the others get the concatenation / the upsampled input built */
    if (a->x2 && (a->upsample2x || !(conv_wino_blocked_ok(&g) || conv_wino_ok(&g) || conv_implicit_ok(&g) || g.direct))) {
        ConvFusedArgs b = *a;
        Tensor *parts[2] = {a->x, a->x2};
        b.x = t_concat(2, parts, 1);
        b.x2 = NULL;
        return conv2d_fused(&b, sh, sw, ph, pw);
    }
    if (a->upsample2x && !conv_up2x_ok(&g)) {
        ConvFusedArgs b = *a;
        b.x = t_upsample_nearest2x(a->x);
        b.upsample2x = false;
        return conv2d_fused(&b, sh, sw, ph, pw);
    }
    Tensor *x = t_contiguous(a->x), *x2 = a->x2 ? t_contiguous(a->x2) : NULL, *w = t_contiguous(a->w);
    T_NONNULL(x);
    Tensor *b = a->b ? t_contiguous(a->b) : NULL;
    Tensor *ss = a->act == CONV_ACT_SCALE_SHIFT_SILU ? t_contiguous(a->ss) : NULL;
    Tensor *res = a->act == CONV_ACT_SILU_ADD ? t_contiguous(a->res) : NULL;
    Tensor *in[6] = {x, w};
    int n_in = 2;
    ConvSaved sv = {.g = g, .up2x = a->upsample2x, .ix2 = -1, .ib = -1, .iss = -1, .ires = -1};
    if (x2) sv.ix2 = n_in, in[n_in++] = x2;
    if (b) sv.ib = n_in, in[n_in++] = b;
    if (ss) sv.iss = n_in, in[n_in++] = ss;
    if (res) sv.ires = n_in, in[n_in++] = res;
    bool taped = false;
    if (t_grad_enabled())
        for (int i = 0; i < n_in; i++) taped = taped || t_needs_grad(in[i]);
    Tensor *y = t_new(T_SHAPE(g.N, g.Cout, g.Ho, g.Wo));
    T_NONNULL(y);
    ConvEpi epi = {.act = a->act, .ss = ss ? ss->data : NULL, .res = res ? res->data : NULL};
    /* the backward of an activation needs z: keep it (the unfused ops kept it as the conv's output) */
    if (taped && a->act != CONV_ACT_NONE && !(epi.pre = t_arena_alloc(sizeof(float) * (size_t)t_numel(y))))
        return NULL;
    const float *xd = x->data, *wd = w->data, *bd = b ? b->data : NULL;
    if (a->upsample2x) {
        conv_up2x_forward(&g, xd, wd, bd, y->data, &epi);
    } else if (conv_wino_blocked_ok(&g)) {
        conv_wino_blocked_forward(&g, xd, x2 ? x2->data : NULL, wd, bd, y->data, &epi);
    } else if (conv_wino_ok(&g)) {
        conv_wino_forward(&g, xd, x2 ? x2->data : NULL, wd, bd, y->data, &epi);
    } else if (conv_implicit_ok(&g)) {
        conv_implicit_forward(&g, xd, x2 ? x2->data : NULL, wd, bd, y->data, &epi);
    } else if (x2) {
        conv_direct2_forward(&g, xd, x2->data, wd, bd, y->data);
        conv_epi_apply(&g, &epi, y->data);
    } else {
        if (conv_patchify_ok(&g)) conv_patchify_forward(&g, xd, wd, bd, y->data);
        else conv_tiles_forward(&g, xd, wd, bd, y->data);
        conv_epi_apply(&g, &epi, y->data);
    }
    if (t_arena_failed()) return NULL;   /* a kernel's scratch could not be had (reported) */
    TNode *node = t_record("conv2d", y, conv_backward, n_in, in);
    if (node) {
        ConvSaved *sp = t_arena_alloc(sizeof *sp);
        if (sp) {   /* else t_arena_failed(): the backward does not run */
            *sp = sv;
            sp->epi = epi;
        }
        node->saved = sp;
    }
    return y;
}

Tensor *t_conv2d_fused(const ConvFusedArgs *a) { return conv2d_fused(a, a->stride, a->stride, a->pad, a->pad); }

Tensor *t_conv2d_ex(Tensor *x, Tensor *w, Tensor *b, int stride_h, int stride_w, int pad_h, int pad_w) {
    ConvFusedArgs a = {.x = x, .w = w, .b = b};
    return conv2d_fused(&a, stride_h, stride_w, pad_h, pad_w);
}

Tensor *t_conv2d(Tensor *x, Tensor *w, Tensor *b, int stride, int pad) {
    return t_conv2d_ex(x, w, b, stride, stride, pad, pad);
}

/* ================================================================ nearest 2× upsampling */

static void upsample_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    float *dx = t_grad_buf(x);
    if (!dx) return;   /* out of memory: t_backward reports it */
    const float *dy = y->grad;
#pragma omp parallel for if (planes * H * W * 4 > T_PAR_MIN) schedule(static)
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t h = 0; h < H; h++) {
            const float *r0 = dy + (pl * 2 * H + 2 * h) * 2 * W, *r1 = r0 + 2 * W;
            float *d = dx + (pl * H + h) * W;
            for (int64_t w = 0; w < W; w++) d[w] += r0[2 * w] + r0[2 * w + 1] + r1[2 * w] + r1[2 * w + 1];
        }
}

Tensor *t_upsample_nearest2x(Tensor *x) {
    T_NONNULL(x);
    char sx[96];
    if (x->ndim != 4) {
        t_error("upsample_nearest2x", "input %s must be [N, C, H, W]", t_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    Tensor *y = t_new(T_SHAPE(x->shape[0], x->shape[1], 2 * H, 2 * W));
    T_NONNULL(y);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for if (planes * H * W * 4 > T_PAR_MIN) schedule(static)
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t h = 0; h < H; h++) {
            const float *s = xd + (pl * H + h) * W;
            float *r0 = yd + (pl * 2 * H + 2 * h) * 2 * W;
            for (int64_t w = 0; w < W; w++) r0[2 * w] = r0[2 * w + 1] = s[w];
            memcpy(r0 + 2 * W, r0, sizeof(float) * (size_t)(2 * W));
        }
    t_record("upsample_nearest2x", y, upsample_backward, 1, &x);
    return y;
}

/* ================================================================ average pooling (no padding) */

static void avg_pool_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    int64_t k = n->iarg[0], s = n->iarg[1];
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3], Ho = y->shape[2], Wo = y->shape[3];
    float *dx = t_grad_buf(x);
    if (!dx) return;   /* out of memory: t_backward reports it */
    const float *dy = y->grad;
    float inv = 1.0f / (float)(k * k);
    /* a plane per iteration: overlapping windows (stride < k) stay within one thread */
#pragma omp parallel for if (planes * H * W > T_PAR_MIN) schedule(static)
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                float gv = dy[(pl * Ho + oh) * Wo + ow] * inv;
                float *d = dx + (pl * H + oh * s) * W + ow * s;
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < k; j++) d[i * W + j] += gv;
            }
}

Tensor *t_avg_pool2d(Tensor *x, int k, int stride) {
    T_NONNULL(x);
    char sx[96];
    if (x->ndim != 4 || k < 1 || stride < 1 || x->shape[2] < k || x->shape[3] < k) {
        t_error("avg_pool2d", "input %s must be [N, C, H, W] with H, W >= kernel %d (stride %d)",
                t_shape_str(x, sx, sizeof sx), k, stride);
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    Tensor *y = t_new(T_SHAPE(x->shape[0], x->shape[1], Ho, Wo));
    T_NONNULL(y);
    const float *xd = x->data;
    float *yd = y->data;
    float inv = 1.0f / (float)(k * k);
#pragma omp parallel for if (planes * H * W > T_PAR_MIN) schedule(static)
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                const float *src = xd + (pl * H + oh * stride) * W + ow * stride;
                float acc = 0.0f;
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < k; j++) acc += src[i * W + j];
                yd[(pl * Ho + oh) * Wo + ow] = acc * inv;
            }
    TNode *node = t_record("avg_pool2d", y, avg_pool_backward, 1, &x);
    if (node) node->iarg[0] = k, node->iarg[1] = stride;
    return y;
}
