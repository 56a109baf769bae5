/* softmax and log_softmax over any axis. The input is viewed as [outer, n, inner] with the softmax axis
 * in the middle: the last axis (inner == 1) runs row by row; other axes run over blocks of up to
 * COLS inner positions at once so the loads along `inner` stay contiguous and vectorise.
 * Numerically stable (max subtracted); the backward uses only the saved output. */
#include <math.h>

#include "tensor/internal.h"
#include "tensor/simd.h"
#include "tensor/vmath.h"
#include "tensor/ops.h"
#include "tensor/softmax_rows.h"

#define COLS 64

/* 16 independent lanes for max and sum, so the loops vectorise without -ffast-math (which would let the
 * compiler reassociate everywhere); the lane order is fixed, so results do not depend on threads. */
#define SM_LANES 16

T_SIMD float t_softmax_row(float *y, const float *x, int64_t n) {
    float ml[SM_LANES];
    for (int l = 0; l < SM_LANES; l++) ml[l] = -INFINITY;
    int64_t nb = n / SM_LANES * SM_LANES;
    for (int64_t i = 0; i < nb; i += SM_LANES)
        for (int l = 0; l < SM_LANES; l++) ml[l] = x[i + l] > ml[l] ? x[i + l] : ml[l];
    float m = -INFINITY;
    for (int l = 0; l < SM_LANES; l++) m = ml[l] > m ? ml[l] : m;
    for (int64_t i = nb; i < n; i++) m = x[i] > m ? x[i] : m;
    if (m == -INFINITY) {
        for (int64_t i = 0; i < n; i++) y[i] = 0.0f;
        return -INFINITY;
    }
    float sl[SM_LANES] = {0};
    for (int64_t i = 0; i < nb; i += SM_LANES)
        for (int l = 0; l < SM_LANES; l++) {
            float e = t_expf(x[i + l] - m);
            y[i + l] = e;
            sl[l] += e;
        }
    float s = 0.0f;
    for (int64_t i = nb; i < n; i++) {
        y[i] = t_expf(x[i] - m);
        s += y[i];
    }
    for (int l = 0; l < SM_LANES; l++) s += sl[l];
    float inv = 1.0f / s;
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
    return m + logf(s);
}

T_SIMD void t_softmax_row_backward(float *dx, const float *y, const float *g, int64_t n, int accumulate) {
    float dl[SM_LANES] = {0};
    int64_t nb = n / SM_LANES * SM_LANES;
    for (int64_t i = 0; i < nb; i += SM_LANES)
        for (int l = 0; l < SM_LANES; l++) dl[l] += g[i + l] * y[i + l];
    float dot = 0.0f;
    for (int64_t i = nb; i < n; i++) dot += g[i] * y[i];
    for (int l = 0; l < SM_LANES; l++) dot += dl[l];
    if (accumulate)
        for (int64_t i = 0; i < n; i++) dx[i] += y[i] * (g[i] - dot);
    else
        for (int64_t i = 0; i < n; i++) dx[i] = y[i] * (g[i] - dot);
}

typedef struct {
    int64_t outer, n, inner;
} Geo;

static Geo geometry(const Tensor *x, int ax) {
    Geo g = {1, x->shape[ax], 1};
    for (int i = 0; i < ax; i++) g.outer *= x->shape[i];
    for (int i = ax + 1; i < x->ndim; i++) g.inner *= x->shape[i];
    return g;
}

/* One block of w <= COLS columns of a [n, inner] plane, starting at x (stride `inner` between rows). */
static void forward_cols(float *y, const float *x, int64_t n, int64_t inner, int64_t w, int log_mode) {
    float m[COLS], s[COLS];
    for (int64_t c = 0; c < w; c++) m[c] = -INFINITY, s[c] = 0.0f;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < w; c++) m[c] = x[i * inner + c] > m[c] ? x[i * inner + c] : m[c];
    for (int64_t c = 0; c < w; c++)
        if (m[c] == -INFINITY) m[c] = 0.0f;   /* fully masked column: exp(-inf) = 0 everywhere */
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < w; c++) {
            float e = t_expf(x[i * inner + c] - m[c]);
            s[c] += e;
            if (!log_mode) y[i * inner + c] = e;
        }
    if (log_mode) {
        for (int64_t c = 0; c < w; c++) s[c] = m[c] + logf(s[c]);
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < w; c++) y[i * inner + c] = x[i * inner + c] - s[c];
    } else {
        for (int64_t c = 0; c < w; c++) s[c] = s[c] > 0 ? 1.0f / s[c] : 0.0f;
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < w; c++) y[i * inner + c] *= s[c];
    }
}

/* dx += backward for a block of columns. softmax: y*(g - sum(g*y)); log_softmax: g - exp(y)*sum(g). */
static void backward_cols(float *dx, const float *y, const float *g, int64_t n, int64_t inner, int64_t w,
                          int log_mode) {
    float d[COLS];
    for (int64_t c = 0; c < w; c++) d[c] = 0.0f;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < w; c++) d[c] += log_mode ? g[i * inner + c] : g[i * inner + c] * y[i * inner + c];
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < w; c++) {
            int64_t k = i * inner + c;
            dx[k] += log_mode ? g[k] - t_expf(y[k]) * d[c] : y[k] * (g[k] - d[c]);
        }
}

static void log_softmax_row(float *y, const float *x, int64_t n) {
    float lse = t_softmax_row(y, x, n);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] - lse;
}

static void softmax_backward(TNode *nd) {
    Tensor *x = nd->in[0], *y = nd->out;
    if (!t_needs_grad(x)) return;
    int log_mode = (int)nd->iarg[1];
    Geo g = geometry(y, (int)nd->iarg[0]);
    float *dx = t_grad_buf(x);
    if (!dx) return;   /* out of memory: t_backward reports it */
    const float *yd = y->data, *gy = y->grad;
    int64_t N = t_numel(y);
    if (g.inner == 1) {
#pragma omp parallel for if (N > T_PAR_MIN) schedule(static)
        for (int64_t r = 0; r < g.outer; r++) {
            const float *yr = yd + r * g.n, *gr = gy + r * g.n;
            float *dr = dx + r * g.n;
            if (log_mode) {
                float s = 0.0f;
                for (int64_t i = 0; i < g.n; i++) s += gr[i];
                for (int64_t i = 0; i < g.n; i++) dr[i] += gr[i] - t_expf(yr[i]) * s;
            } else {
                t_softmax_row_backward(dr, yr, gr, g.n, 1);
            }
        }
        return;
    }
    int64_t nblk = (g.inner + COLS - 1) / COLS;
#pragma omp parallel for if (N > T_PAR_MIN) schedule(static)
    for (int64_t b = 0; b < g.outer * nblk; b++) {
        int64_t o = b / nblk, c0 = (b % nblk) * COLS, w = g.inner - c0 < COLS ? g.inner - c0 : COLS;
        int64_t off = o * g.n * g.inner + c0;
        backward_cols(dx + off, yd + off, gy + off, g.n, g.inner, w, log_mode);
    }
}

static Tensor *softmax_impl(const char *op, Tensor *x, int axis, int log_mode) {
    T_NONNULL(x);
    int ax = t_axis(x, axis);
    if (ax < 0) {
        char s[96];
        t_error(op, "axis %d out of range for %s", axis, t_shape_str(x, s, sizeof s));
        return NULL;
    }
    Tensor *xc = t_contiguous(x);   /* records a copy node when x is a strided view */
    T_NONNULL(xc);
    Tensor *y = t_new(x->ndim, x->shape);
    T_NONNULL(y);
    Geo g = geometry(x, ax);
    int64_t N = t_numel(y);
    const float *xd = xc->data;
    float *yd = y->data;
    if (g.inner == 1) {
#pragma omp parallel for if (N > T_PAR_MIN) schedule(static)
        for (int64_t r = 0; r < g.outer; r++) {
            if (log_mode)
                log_softmax_row(yd + r * g.n, xd + r * g.n, g.n);
            else
                t_softmax_row(yd + r * g.n, xd + r * g.n, g.n);
        }
    } else {
        int64_t nblk = (g.inner + COLS - 1) / COLS;
#pragma omp parallel for if (N > T_PAR_MIN) schedule(static)
        for (int64_t b = 0; b < g.outer * nblk; b++) {
            int64_t o = b / nblk, c0 = (b % nblk) * COLS, w = g.inner - c0 < COLS ? g.inner - c0 : COLS;
            int64_t off = o * g.n * g.inner + c0;
            forward_cols(yd + off, xd + off, g.n, g.inner, w, log_mode);
        }
    }
    TNode *nd = t_record(op, y, softmax_backward, 1, &xc);
    if (nd) {
        nd->iarg[0] = ax;
        nd->iarg[1] = log_mode;
    }
    return y;
}

Tensor *t_softmax(Tensor *x, int axis) { return softmax_impl("softmax", x, axis, 0); }
Tensor *t_log_softmax(Tensor *x, int axis) { return softmax_impl("log_softmax", x, axis, 1); }
