/* Fused normalisations: layer_norm (last axis), group_norm ([N, C, *]) and the channel layer norm of the
 * IR-SDE U-Net ([N, C, H, W], over C per pixel, gain only). Each forward computes the statistics in two
 * passes (mean, then squared deviations: no cancellation), saves mean and rstd = 1/sqrt(var + eps), and
 * writes the output. The backward uses the standard closed form
 *     dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),   dxhat = dy * gain,
 * and sums the gain/bias gradients through per-thread partials (deterministic for a fixed thread count). */
#include <math.h>

#include "tensor/channel_norm.h"
#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/par_reduce.h"
#include "tensor/simd.h"

typedef struct {
    float *mean, *rstd;   /* one per normalised group */
} NormStats;

static NormStats *stats_new(int64_t groups) {
    NormStats *s = t_arena_alloc(sizeof *s);
    if (!s) return NULL;   /* out of memory: t_arena_failed(), the backward does not run */
    s->mean = t_arena_alloc(sizeof(float) * (size_t)(groups > 0 ? groups : 1));
    s->rstd = t_arena_alloc(sizeof(float) * (size_t)(groups > 0 ? groups : 1));
    return s->mean && s->rstd ? s : NULL;
}

/* Whether t_record will keep a node (so statistics are worth saving): no-grad mode saves nothing. */
static bool will_record(Tensor *const *in, int n) {
    if (!t_grad_enabled()) return false;
    for (int i = 0; i < n; i++)
        if (t_needs_grad(in[i])) return true;
    return false;
}

static bool gain_ok(const Tensor *p, int64_t n) { return !p || t_numel(p) == n; }

/* ================================================================ layer_norm */

T_SIMD static void ln_row_forward(const float *x, float *y, const float *w, const float *b, int64_t D, float eps,
                                  float *mean_out, float *rstd_out) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; i++) s += x[i];
    float mean = s / (float)D, v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < D; i++) {
        float d = x[i] - mean;
        v += d * d;
    }
    float rstd = 1.0f / sqrtf(v / (float)D + eps);
    *mean_out = mean;
    *rstd_out = rstd;
    if (w && b) {
        for (int64_t i = 0; i < D; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
    } else if (w) {
        for (int64_t i = 0; i < D; i++) y[i] = (x[i] - mean) * rstd * w[i];
    } else if (b) {
        for (int64_t i = 0; i < D; i++) y[i] = (x[i] - mean) * rstd + b[i];
    } else {
        for (int64_t i = 0; i < D; i++) y[i] = (x[i] - mean) * rstd;
    }
}

/* dx += ..., and (when non-NULL) dw += dy * xhat, db += dy for one row. */
T_SIMD static void ln_row_backward(const float *x, const float *dy, const float *w, float mean, float rstd, int64_t D,
                                   float *dx, float *dw, float *db) {
    float a = 0.0f, c = 0.0f;   /* sum dxhat, sum dxhat * xhat */
    if (w) {
#pragma omp simd reduction(+ : a, c)
        for (int64_t i = 0; i < D; i++) {
            float g = dy[i] * w[i];
            a += g;
            c += g * (x[i] - mean);
        }
    } else {
#pragma omp simd reduction(+ : a, c)
        for (int64_t i = 0; i < D; i++) {
            a += dy[i];
            c += dy[i] * (x[i] - mean);
        }
    }
    float ma = a / (float)D, mc = c * rstd / (float)D;
    if (dx) {
        if (w) {
            for (int64_t i = 0; i < D; i++) dx[i] += rstd * (dy[i] * w[i] - ma - (x[i] - mean) * rstd * mc);
        } else {
            for (int64_t i = 0; i < D; i++) dx[i] += rstd * (dy[i] - ma - (x[i] - mean) * rstd * mc);
        }
    }
    if (dw)
        for (int64_t i = 0; i < D; i++) dw[i] += dy[i] * (x[i] - mean) * rstd;
    if (db)
        for (int64_t i = 0; i < D; i++) db[i] += dy[i];
}

static void layer_norm_backward(TNode *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    const NormStats *st = n->saved;
    int64_t D = x->shape[x->ndim - 1], R = D ? t_numel(x) / D : 0;
    float *dx = t_needs_grad(x) ? t_grad_buf(x) : NULL;
    bool need_w = t_needs_grad(w), need_b = t_needs_grad(b);
    int threads = t_par_threads();
    float *pw = need_w ? t_partials_new(threads, D) : NULL;
    float *pb = need_b ? t_partials_new(threads, D) : NULL;
    if ((t_needs_grad(x) && !dx) || (need_w && !pw) || (need_b && !pb)) return;   /* out of memory: reported */
    const float *xd = x->data, *dy = y->grad, *wd = w ? w->data : NULL;
#pragma omp parallel if (R * D > T_PAR_MIN)
    {
        int tid = t_par_tid();
        float *dw = pw ? pw + (int64_t)tid * D : NULL, *db = pb ? pb + (int64_t)tid * D : NULL;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < R; r++)
            ln_row_backward(xd + r * D, dy + r * D, wd, st->mean[r], st->rstd[r], D, dx ? dx + r * D : NULL, dw, db);
    }
    if (pw) t_partials_reduce(pw, threads, D, t_grad_buf(w));
    if (pb) t_partials_reduce(pb, threads, D, t_grad_buf(b));
}

Tensor *t_layer_norm(Tensor *x, Tensor *w, Tensor *b, float eps) {
    T_NONNULL(x);
    char sx[96], sw[96], sb[96];
    int64_t D = x->ndim ? x->shape[x->ndim - 1] : 0;
    if (x->ndim < 1 || D < 1 || !gain_ok(w, D) || !gain_ok(b, D)) {
        t_error("layer_norm", "input %s needs a non-empty last axis matching weight %s and bias %s",
                t_shape_str(x, sx, sizeof sx), w ? t_shape_str(w, sw, sizeof sw) : "none",
                b ? t_shape_str(b, sb, sizeof sb) : "none");
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    if (w) w = t_contiguous(w);
    if (b) b = t_contiguous(b);
    int64_t R = t_numel(x) / D;
    Tensor *y = t_new(x->ndim, x->shape);
    T_NONNULL(y);
    Tensor *in[3] = {x, w, b};
    NormStats *st = will_record(in, 3) ? stats_new(R) : NULL;
    const float *xd = x->data, *wd = w ? w->data : NULL, *bd = b ? b->data : NULL;
    float *yd = y->data;
#pragma omp parallel for if (R * D > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        float m, rs;
        ln_row_forward(xd + r * D, yd + r * D, wd, bd, D, eps, &m, &rs);
        if (st) st->mean[r] = m, st->rstd[r] = rs;
    }
    TNode *node = t_record("layer_norm", y, layer_norm_backward, 3, in);
    if (node) node->saved = st;
    return y;
}

/* ================================================================ group_norm */
/* x [N, C, S...] viewed as [N, G, C/G, S]; statistics per (n, g); affine per channel. */

typedef struct {
    int64_t N, C, G, S;
} GNShape;

static void gn_shape(const Tensor *x, int groups, GNShape *s) {
    s->N = x->shape[0];
    s->C = x->shape[1];
    s->G = groups;
    s->S = 1;
    for (int i = 2; i < x->ndim; i++) s->S *= x->shape[i];
}

T_SIMD static float sum_f(const float *x, int64_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

T_SIMD static float sumsq_dev_f(const float *x, int64_t n, float mean) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        s += d * d;
    }
    return s;
}

/* y = x * scale + shift */
T_SIMD static void scale_shift(const float *x, float *y, int64_t n, float scale, float shift) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale + shift;
}

/* sum dy and sum dy * x over one channel row */
T_SIMD static void sum_dy_dyx(const float *dy, const float *x, int64_t n, float *sdy, float *sdyx) {
    float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        a += dy[i];
        b += dy[i] * x[i];
    }
    *sdy = a;
    *sdyx = b;
}

/* dx += dy * p + x * q + r */
T_SIMD static void axpy3(float *dx, const float *dy, const float *x, int64_t n, float p, float q, float r) {
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * p + x[i] * q + r;
}

static void group_norm_backward(TNode *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    const NormStats *st = n->saved;
    GNShape s;
    gn_shape(x, (int)n->iarg[0], &s);
    int64_t Cg = s.C / s.G, M = Cg * s.S;
    float *dx = t_needs_grad(x) ? t_grad_buf(x) : NULL;
    bool need_w = t_needs_grad(w), need_b = t_needs_grad(b);
    /* per (n, c): sum dy and sum dy*xhat, reduced over n afterwards in order */
    float *sdy = t_arena_alloc(sizeof(float) * (size_t)(s.N * s.C));
    float *sdxh = t_arena_alloc(sizeof(float) * (size_t)(s.N * s.C));
    if (!sdy || !sdxh || (t_needs_grad(x) && !dx)) return;   /* out of memory: t_backward reports it */
    const float *xd = x->data, *dy = y->grad, *wd = w ? w->data : NULL;
#pragma omp parallel for if (s.N * s.C * s.S > T_PAR_MIN) schedule(static)
    for (int64_t ng = 0; ng < s.N * s.G; ng++) {
        int64_t g = ng % s.G, c0 = g * Cg;
        float mean = st->mean[ng], rstd = st->rstd[ng];
        const float *xg = xd + ng * M, *dyg = dy + ng * M;
        double a = 0.0, cc = 0.0;   /* sum dxhat, sum dxhat * xhat over the group */
        for (int64_t c = 0; c < Cg; c++) {
            float s1, s2;
            sum_dy_dyx(dyg + c * s.S, xg + c * s.S, s.S, &s1, &s2);
            float dxh_sum = rstd * (s2 - mean * s1);   /* sum dy * xhat over the channel */
            int64_t nc = (ng / s.G) * s.C + c0 + c;
            sdy[nc] = s1;
            sdxh[nc] = dxh_sum;
            float wc = wd ? wd[c0 + c] : 1.0f;
            a += (double)wc * s1;
            cc += (double)wc * dxh_sum;
        }
        if (!dx) continue;
        float ma = (float)(a / (double)M), mc = (float)(cc / (double)M);
        for (int64_t c = 0; c < Cg; c++) {
            /* dx = rstd*(w dy - ma - xhat*mc), xhat = (x - mean) rstd */
            float wc = wd ? wd[c0 + c] : 1.0f;
            float q = -rstd * rstd * mc, r = -rstd * ma + rstd * rstd * mc * mean;
            axpy3(dx + ng * M + c * s.S, dyg + c * s.S, xg + c * s.S, s.S, rstd * wc, q, r);
        }
    }
    if (need_w || need_b) {
        float *gw = need_w ? t_grad_buf(w) : NULL, *gb = need_b ? t_grad_buf(b) : NULL;
        for (int64_t i = 0; i < s.N; i++)
            for (int64_t c = 0; c < s.C; c++) {
                if (gw) gw[c] += sdxh[i * s.C + c];
                if (gb) gb[c] += sdy[i * s.C + c];
            }
    }
}

Tensor *t_group_norm(Tensor *x, int groups, Tensor *w, Tensor *b, float eps) {
    T_NONNULL(x);
    char sx[96], sw[96], sb[96];
    if (x->ndim < 2 || groups < 1 || x->shape[1] % groups != 0 || !gain_ok(w, x->shape[1]) ||
        !gain_ok(b, x->shape[1]) || t_numel(x) == 0) {
        t_error("group_norm", "input %s [N, C, *] with %d groups (C must divide), weight %s, bias %s",
                t_shape_str(x, sx, sizeof sx), groups, w ? t_shape_str(w, sw, sizeof sw) : "none",
                b ? t_shape_str(b, sb, sizeof sb) : "none");
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    if (w) w = t_contiguous(w);
    if (b) b = t_contiguous(b);
    GNShape s;
    gn_shape(x, groups, &s);
    int64_t Cg = s.C / s.G, M = Cg * s.S;
    Tensor *y = t_new(x->ndim, x->shape);
    T_NONNULL(y);
    Tensor *in[3] = {x, w, b};
    NormStats *st = will_record(in, 3) ? stats_new(s.N * s.G) : NULL;
    const float *xd = x->data, *wd = w ? w->data : NULL, *bd = b ? b->data : NULL;
    float *yd = y->data;
#pragma omp parallel for if (s.N * s.C * s.S > T_PAR_MIN) schedule(static)
    for (int64_t ng = 0; ng < s.N * s.G; ng++) {
        const float *xg = xd + ng * M;
        double acc = 0.0;
        for (int64_t c = 0; c < Cg; c++) acc += sum_f(xg + c * s.S, s.S);
        float mean = (float)(acc / (double)M);
        acc = 0.0;
        for (int64_t c = 0; c < Cg; c++) acc += sumsq_dev_f(xg + c * s.S, s.S, mean);
        float rstd = (float)(1.0 / sqrt(acc / (double)M + (double)eps));
        if (st) st->mean[ng] = mean, st->rstd[ng] = rstd;
        int64_t c0 = (ng % s.G) * Cg;
        for (int64_t c = 0; c < Cg; c++) {
            float scale = rstd * (wd ? wd[c0 + c] : 1.0f);
            float shift = (bd ? bd[c0 + c] : 0.0f) - mean * scale;
            scale_shift(xg + c * s.S, yd + ng * M + c * s.S, s.S, scale, shift);
        }
    }
    TNode *node = t_record("group_norm", y, group_norm_backward, 3, in);
    if (node) {
        node->saved = st;
        node->iarg[0] = groups;
    }
    return y;
}

/* ================================================================ channel layer norm */
/* x [N, C, H, W]: per pixel, mean and biased variance over C; y = (x - mean) rstd g[c]. Pixels are
 * contiguous within a channel, so work goes in tiles of TILE pixels: the per-pixel statistics of a tile
 * live in small arrays and every loop runs over contiguous pixels (vectorised). */

#define CLN_TILE 512

T_SIMD static void cln_tile_forward(const float *x, float *y, const float *g, int64_t C, int64_t P, int64_t np,
                                    float eps, float *mean_out, float *rstd_out, const float *add) {
    float mean[CLN_TILE], acc[CLN_TILE];
    for (int64_t p = 0; p < np; p++) acc[p] = 0.0f;
    for (int64_t c = 0; c < C; c++)
        for (int64_t p = 0; p < np; p++) acc[p] += x[c * P + p];
    for (int64_t p = 0; p < np; p++) mean[p] = acc[p] / (float)C, acc[p] = 0.0f;
    for (int64_t c = 0; c < C; c++)
        for (int64_t p = 0; p < np; p++) {
            float d = x[c * P + p] - mean[p];
            acc[p] += d * d;
        }
    for (int64_t p = 0; p < np; p++) acc[p] = 1.0f / sqrtf(acc[p] / (float)C + eps);   /* rstd */
    for (int64_t c = 0; c < C; c++) {
        float gc = g ? g[c] : 1.0f;
        if (add)
            for (int64_t p = 0; p < np; p++) y[c * P + p] = (x[c * P + p] - mean[p]) * acc[p] * gc + add[c * P + p];
        else
            for (int64_t p = 0; p < np; p++) y[c * P + p] = (x[c * P + p] - mean[p]) * acc[p] * gc;
    }
    if (mean_out)
        for (int64_t p = 0; p < np; p++) mean_out[p] = mean[p], rstd_out[p] = acc[p];
}

/* y = (x - mean) rstd g from saved statistics */
T_SIMD static void cln_tile_apply(const float *x, float *y, const float *g, int64_t C, int64_t P, int64_t np,
                                  const float *mean, const float *rstd) {
    for (int64_t c = 0; c < C; c++) {
        float gc = g ? g[c] : 1.0f;
        for (int64_t p = 0; p < np; p++) y[c * P + p] = (x[c * P + p] - mean[p]) * rstd[p] * gc;
    }
}

/* dx (+)= ..., dg[c] += sum_p dy * xhat */
T_SIMD static void cln_tile_backward(const float *x, const float *dy, const float *g, const float *mean,
                                     const float *rstd, int64_t C, int64_t P, int64_t np, float *dx, bool add,
                                     float *dg) {
    float ma[CLN_TILE], mc[CLN_TILE];
    for (int64_t p = 0; p < np; p++) ma[p] = 0.0f, mc[p] = 0.0f;
    for (int64_t c = 0; c < C; c++) {
        float gc = g ? g[c] : 1.0f, dgc = 0.0f;
        for (int64_t p = 0; p < np; p++) {
            float xh = (x[c * P + p] - mean[p]) * rstd[p], d = dy[c * P + p];
            ma[p] += d * gc;
            mc[p] += d * gc * xh;
            dgc += d * xh;
        }
        if (dg) dg[c] += dgc;
    }
    if (!dx) return;
    float invC = 1.0f / (float)C;
    for (int64_t p = 0; p < np; p++) ma[p] *= invC, mc[p] *= invC;
    for (int64_t c = 0; c < C; c++) {
        float gc = g ? g[c] : 1.0f;
        for (int64_t p = 0; p < np; p++) {
            float xh = (x[c * P + p] - mean[p]) * rstd[p];
            float v = rstd[p] * (dy[c * P + p] * gc - ma[p] - xh * mc[p]);
            dx[c * P + p] = add ? dx[c * P + p] + v : v;
        }
    }
}

static void channel_layer_norm_backward(TNode *n) {
    Tensor *x = n->in[0], *g = n->in[1], *y = n->out;
    const NormStats *st = n->saved;
    int64_t N = x->shape[0], C = x->shape[1], P = x->shape[2] * x->shape[3];
    int64_t tiles = (P + CLN_TILE - 1) / CLN_TILE;
    float *dx = t_needs_grad(x) ? t_grad_buf(x) : NULL;
    int threads = t_par_threads();
    float *pg = t_needs_grad(g) ? t_partials_new(threads, C) : NULL;
    const float *xd = x->data, *dy = y->grad, *gd = g ? g->data : NULL;
#pragma omp parallel if (N * C * P > T_PAR_MIN)
    {
        float *dg = pg ? pg + (int64_t)t_par_tid() * C : NULL;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < N * tiles; it++) {
            int64_t i = it / tiles, p0 = (it % tiles) * CLN_TILE, np = P - p0 < CLN_TILE ? P - p0 : CLN_TILE;
            int64_t off = i * C * P + p0;
            cln_tile_backward(xd + off, dy + off, gd, st->mean + i * P + p0, st->rstd + i * P + p0, C, P, np,
                              dx ? dx + off : NULL, true, dg);
        }
    }
    if (pg) t_partials_reduce(pg, threads, C, t_grad_buf(g));
}

Tensor *t_channel_layer_norm(Tensor *x, Tensor *g, float eps) {
    T_NONNULL(x);
    char sx[96], sg[96];
    if (x->ndim != 4 || x->shape[1] < 1 || !gain_ok(g, x->shape[1])) {
        t_error("channel_layer_norm", "input %s must be [N, C, H, W] with gain %s of C elements",
                t_shape_str(x, sx, sizeof sx), g ? t_shape_str(g, sg, sizeof sg) : "none");
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    if (g) g = t_contiguous(g);
    int64_t N = x->shape[0], C = x->shape[1], P = x->shape[2] * x->shape[3];
    int64_t tiles = (P + CLN_TILE - 1) / CLN_TILE;
    Tensor *y = t_new(4, x->shape);
    T_NONNULL(y);
    Tensor *in[2] = {x, g};
    NormStats *st = will_record(in, 2) ? stats_new(N * P) : NULL;
    const float *xd = x->data, *gd = g ? g->data : NULL;
    float *yd = y->data;
#pragma omp parallel for if (N * C * P > T_PAR_MIN) schedule(static)
    for (int64_t it = 0; it < N * tiles; it++) {
        int64_t i = it / tiles, p0 = (it % tiles) * CLN_TILE, np = P - p0 < CLN_TILE ? P - p0 : CLN_TILE;
        int64_t off = i * C * P + p0;
        cln_tile_forward(xd + off, yd + off, gd, C, P, np, eps, st ? st->mean + i * P + p0 : NULL,
                         st ? st->rstd + i * P + p0 : NULL, NULL);
    }
    TNode *node = t_record("channel_layer_norm", y, channel_layer_norm_backward, 2, in);
    if (node) node->saved = st;
    return y;
}

/* ---------------------------------------------------------------- one image, for fused ops (channel_norm.h) */

void t_cln_image_forward(const float *x, float *y, const float *g, int64_t C, int64_t P, float eps, float *mean,
                         float *rstd, const float *add) {
    const int64_t tiles = (P + CLN_TILE - 1) / CLN_TILE;
#pragma omp parallel for schedule(static) if (C * P > T_PAR_MIN)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t p0 = t * CLN_TILE, np = P - p0 < CLN_TILE ? P - p0 : CLN_TILE;
        cln_tile_forward(x + p0, y + p0, g, C, P, np, eps, mean ? mean + p0 : NULL, rstd ? rstd + p0 : NULL,
                         add ? add + p0 : NULL);
    }
}

void t_cln_image_apply(const float *x, float *y, const float *g, int64_t C, int64_t P, const float *mean,
                       const float *rstd) {
    const int64_t tiles = (P + CLN_TILE - 1) / CLN_TILE;
#pragma omp parallel for schedule(static) if (C * P > T_PAR_MIN)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t p0 = t * CLN_TILE, np = P - p0 < CLN_TILE ? P - p0 : CLN_TILE;
        cln_tile_apply(x + p0, y + p0, g, C, P, np, mean + p0, rstd + p0);
    }
}

void t_cln_image_backward(const float *x, const float *dy, const float *g, const float *mean, const float *rstd,
                          int64_t C, int64_t P, float *dx, bool add, float *dg) {
    const int64_t tiles = (P + CLN_TILE - 1) / CLN_TILE;
    size_t mark = t_arena_mark();
    float *part = dg ? t_arena_calloc(sizeof(float) * (size_t)(tiles * C)) : NULL;   /* [tile][C] */
    if (dg && !part) return;   /* out of memory: t_backward reports it */
#pragma omp parallel for schedule(static) if (C * P > T_PAR_MIN)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t p0 = t * CLN_TILE, np = P - p0 < CLN_TILE ? P - p0 : CLN_TILE;
        cln_tile_backward(x + p0, dy + p0, g, mean + p0, rstd + p0, C, P, np, dx ? dx + p0 : NULL, add,
                          part ? part + t * C : NULL);
    }
    if (dg)   /* the tiles' sums in tile order: the same whatever thread computed each */
        for (int64_t c = 0; c < C; c++) {
            float s = 0.0f;
            for (int64_t t = 0; t < tiles; t++) s += part[t * C + c];
            dg[c] += s;
        }
    t_arena_release(mark);
}
