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

#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
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
} ConvSaved;

static void conv_backward(TNode *node) {
    Tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL, *y = node->out;
    const ConvGeom *g = &((const ConvSaved *)node->saved)->g;
    /* gradient buffers first: they must outlive the workspace released below */
    float *dx = t_needs_grad(x) ? t_grad_buf(x) : NULL;
    float *dw = t_needs_grad(w) ? t_grad_buf(w) : NULL;
    float *db = t_needs_grad(b) ? t_grad_buf(b) : NULL;
    if (conv_implicit_ok(g)) {
        conv_implicit_backward(g, x->data, w->data, y->grad, dx, dw, db);
        return;
    }
    if (conv_patchify_ok(g)) {
        conv_patchify_backward(g, x->data, w->data, y->grad, dx, dw, db);
        return;
    }
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
    const float *xd = x->data, *wd = w->data, *dy = y->grad;
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

Tensor *t_conv2d_ex(Tensor *x, Tensor *w, Tensor *b, int stride_h, int stride_w, int pad_h, int pad_w) {
    T_NONNULL(x, w);
    char sx[96], sw[96], sb[96];
    bool ok = x->ndim == 4 && w->ndim == 4 && x->shape[1] == w->shape[1] && stride_h >= 1 && stride_w >= 1 &&
              pad_h >= 0 && pad_w >= 0 && w->shape[0] >= 1 && w->shape[2] >= 1 && w->shape[3] >= 1 &&
              (!b || t_numel(b) == w->shape[0]);
    ConvGeom g = {0};
    if (ok) {
        g.N = x->shape[0], g.Cin = x->shape[1], g.H = x->shape[2], g.W = x->shape[3];
        g.Cout = w->shape[0], g.kh = w->shape[2], g.kw = w->shape[3];
        g.sh = stride_h, g.sw = stride_w, g.ph = pad_h, g.pw = pad_w;
        g.Ho = g.H + 2 * g.ph >= g.kh ? (g.H + 2 * g.ph - g.kh) / g.sh + 1 : 0;
        g.Wo = g.W + 2 * g.pw >= g.kw ? (g.W + 2 * g.pw - g.kw) / g.sw + 1 : 0;
        ok = g.Ho >= 1 && g.Wo >= 1 && g.N >= 1;
    }
    if (!ok) {
        t_error("conv2d", "input %s [N, C, H, W], weight %s [Cout, C, kh, kw], bias %s, stride %dx%d, padding %dx%d",
                t_shape_str(x, sx, sizeof sx), t_shape_str(w, sw, sizeof sw),
                b ? t_shape_str(b, sb, sizeof sb) : "none", stride_h, stride_w, pad_h, pad_w);
        return NULL;
    }
    x = t_contiguous(x);
    w = t_contiguous(w);
    if (b) b = t_contiguous(b);
    g.K = g.Cin * g.kh * g.kw;
    g.direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
    int threads = t_par_threads();
    conv_tiling(&g);
    Tensor *y = t_new(T_SHAPE(g.N, g.Cout, g.Ho, g.Wo));
    if (conv_implicit_ok(&g)) {
        conv_implicit_forward(&g, x->data, w->data, b ? b->data : NULL, y->data);
        goto record;
    }
    if (conv_patchify_ok(&g)) {
        conv_patchify_forward(&g, x->data, w->data, b ? b->data : NULL, y->data);
        goto record;
    }
    size_t mark = t_arena_mark();
    bool par = tiles_parallel(&g, threads);
    int64_t cf = col_floats(&g), items = g.N * g.tiles;
    float *cols = t_arena_alloc(sizeof(float) * (size_t)(cf * (par ? threads : 1)));
    const float *xd = x->data, *wd = w->data, *bd = b ? b->data : NULL;
    float *yd = y->data;
#pragma omp parallel if (par)
    {
        float *buf = cols + (par ? (int64_t)t_par_tid() * cf : 0);
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) conv_forward_tile(&g, xd, wd, bd, yd, item, buf);
    }
    t_arena_release(mark);
record:;
    Tensor *in[3] = {x, w, b};
    TNode *node = t_record("conv2d", y, conv_backward, b ? 3 : 2, in);
    if (node) {
        ConvSaved *s = t_arena_alloc(sizeof *s);
        s->g = g;
        node->saved = s;
    }
    return y;
}

Tensor *t_conv2d(Tensor *x, Tensor *w, Tensor *b, int stride, int pad) {
    return t_conv2d_ex(x, w, b, stride, stride, pad, pad);
}

/* ================================================================ nearest 2× upsampling */

static void upsample_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    float *dx = t_grad_buf(x);
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
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    Tensor *y = t_new(T_SHAPE(x->shape[0], x->shape[1], 2 * H, 2 * W));
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
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    Tensor *y = t_new(T_SHAPE(x->shape[0], x->shape[1], Ho, Wo));
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
