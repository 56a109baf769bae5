/* Fused normalisations: layer_norm (last axis), group_norm ([N, C, *]) and the channel layer norm of the
 * IR-SDE U-Net ([N, C, H, W], over C per pixel, gain only). Each forward computes the statistics in two
 * passes (mean, then squared deviations: no cancellation), saves mean and rstd = 1/sqrt(var + eps), and
 * writes the output. The backward uses the standard closed form
 *     dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),   dxhat = dy * gain,
 * and sums the gain/bias gradients through per-thread partials (deterministic for a fixed thread count). */
#include <math.h>

#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/par_reduce.h"
#include "tensor/simd.h"

typedef struct {
    float *mean, *rstd;   /* one per normalised group */
} NormStats;

static NormStats *stats_new(int64_t groups) {
    NormStats *s = t_arena_alloc(sizeof *s);
    s->mean = t_arena_alloc(sizeof(float) * (size_t)(groups > 0 ? groups : 1));
    s->rstd = t_arena_alloc(sizeof(float) * (size_t)(groups > 0 ? groups : 1));
    return s;
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
    if (w) w = t_contiguous(w);
    if (b) b = t_contiguous(b);
    int64_t R = t_numel(x) / D;
    Tensor *y = t_new(x->ndim, x->shape);
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
