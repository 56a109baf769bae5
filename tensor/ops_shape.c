/* Shape ops: concat, split/chunk (views), 2-D padding (zero / reflect), embedding gather, masked fill,
 * expand. Outputs are contiguous except split/chunk, which are t_slice views. */
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"
#include "tensor/ops.h"

/* ---------------------------------------------------------------- concat */

/* x viewed as [outer, len(axis) * inner]: out rows are the inputs' rows side by side. */
typedef struct {
    int64_t outer, inner, total;   /* total = out's length on axis */
    int64_t *starts;               /* per input: start on axis */
} CatSaved;

static void concat_backward(TNode *n) {
    const CatSaved *s = n->saved;
    const float *g = n->out->grad;
    int64_t row = s->total * s->inner;
    for (int i = 0; i < n->n_in; i++) {
        Tensor *x = n->in[i];
        if (!t_needs_grad(x)) continue;
        int64_t w = x->shape[n->iarg[0]] * s->inner;
        float *gx = t_grad_buf(x);
        if (!gx) return;   /* out of memory: t_backward reports it */
#pragma omp parallel for if (s->outer * w > T_PAR_MIN) schedule(static)
        for (int64_t o = 0; o < s->outer; o++) {
            const float *src = g + o * row + s->starts[i] * s->inner;
            for (int64_t j = 0; j < w; j++) gx[o * w + j] += src[j];
        }
    }
}

Tensor *t_concat(int n, Tensor *const *xs, int axis) {
    if (n < 1) {
        t_error("concat", "needs at least one input");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!xs[i]) return NULL;
    int ax = t_axis(xs[0], axis);
    char s0[96], si[96];
    if (ax < 0) {
        t_error("concat", "axis %d out of range for %s", axis, t_shape_str(xs[0], s0, sizeof s0));
        return NULL;
    }
    int64_t shape[T_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[ax] = 0;
    for (int i = 0; i < n; i++) {
        bool ok = xs[i]->ndim == xs[0]->ndim;
        for (int d = 0; ok && d < xs[0]->ndim; d++) ok = d == ax || xs[i]->shape[d] == xs[0]->shape[d];
        if (!ok) {
            t_error("concat", "input %d has shape %s, input 0 has %s (must match except on axis %d)", i,
                    t_shape_str(xs[i], si, sizeof si), t_shape_str(xs[0], s0, sizeof s0), ax);
            return NULL;
        }
        shape[ax] += xs[i]->shape[ax];
    }
    Tensor *out = t_new(xs[0]->ndim, shape);
    T_NONNULL(out);
    CatSaved cs = {1, 1, shape[ax], t_arena_alloc(sizeof(int64_t) * (size_t)n)};
    Tensor **ins = t_arena_alloc(sizeof(Tensor *) * (size_t)n);
    if (!out || !cs.starts || !ins) return NULL;
    for (int d = 0; d < ax; d++) cs.outer *= shape[d];
    for (int d = ax + 1; d < out->ndim; d++) cs.inner *= shape[d];
    int64_t start = 0, row = cs.total * cs.inner;
    for (int i = 0; i < n; i++) {
        Tensor *x = t_contiguous(xs[i]);
        T_NONNULL(x);
        ins[i] = x;
        cs.starts[i] = start;
        int64_t w = x->shape[ax] * cs.inner;
#pragma omp parallel for if (cs.outer * w > T_PAR_MIN) schedule(static)
        for (int64_t o = 0; o < cs.outer; o++)
            memcpy(out->data + o * row + start * cs.inner, x->data + o * w, sizeof(float) * (size_t)w);
        start += x->shape[ax];
    }
    TNode *nd = t_record("concat", out, concat_backward, n, ins);
    if (nd) {
        CatSaved *sp = t_arena_alloc(sizeof *sp);
        if (sp) *sp = cs;   /* else t_arena_failed(): the backward does not run */
        nd->saved = sp;
        nd->iarg[0] = ax;
    }
    return out;
}

/* ---------------------------------------------------------------- split / chunk (views) */

void t_split(Tensor *x, int axis, int n, const int64_t *sizes, Tensor **out) {
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (!x) return;
    int ax = t_axis(x, axis);
    char s[96];
    if (ax < 0 || n < 1) {
        t_error("split", "axis %d / %d pieces invalid for %s", axis, n, t_shape_str(x, s, sizeof s));
        return;
    }
    int64_t total = 0;
    bool negative = false;
    for (int i = 0; i < n; i++) total += sizes[i], negative |= sizes[i] < 0;
    if (negative || total != x->shape[ax]) {
        t_error("split", "sizes sum to %lld but axis %d of %s has %lld", (long long)total, ax,
                t_shape_str(x, s, sizeof s), (long long)x->shape[ax]);
        return;
    }
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        out[i] = t_slice(x, ax, start, start + sizes[i]);
        start += sizes[i];
    }
}

/* PyTorch's chunk: pieces of ceil(len / n); trailing pieces are shorter, or empty when len is small. */
void t_chunk(Tensor *x, int axis, int n, Tensor **out) {
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (!x) return;
    int ax = t_axis(x, axis);
    if (ax < 0 || n < 1) {
        char s[96];
        t_error("chunk", "axis %d / %d pieces invalid for %s", axis, n, t_shape_str(x, s, sizeof s));
        return;
    }
    int64_t len = x->shape[ax], c = (len + n - 1) / n;
    for (int i = 0; i < n; i++) {
        int64_t a = i * c < len ? i * c : len, b = (i + 1) * c < len ? (i + 1) * c : len;
        out[i] = t_slice(x, ax, a, b);
    }
}

/* ---------------------------------------------------------------- pad2d */

/* Source index of padded position p (on an axis of length len with `before` padding); -1 = zero. */
static inline int64_t pad_src(int64_t p, int64_t before, int64_t len, int mode) {
    int64_t i = p - before;
    if (i >= 0 && i < len) return i;
    if (mode == T_PAD_ZERO) return -1;
    return i < 0 ? -i : 2 * (len - 1) - i;   /* reflect without repeating the edge */
}

static void pad_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!t_needs_grad(x)) return;
    int nd = x->ndim, mode = (int)n->iarg[2];
    int64_t H = x->shape[nd - 2], W = x->shape[nd - 1], Ho = y->shape[nd - 2], Wo = y->shape[nd - 1];
    int64_t top = n->iarg[0], left = n->iarg[1], planes = H * W > 0 ? t_numel(x) / (H * W) : 0;
    float *gx = t_grad_buf(x);
    if (!gx) return;   /* out of memory: t_backward reports it */
    const float *gy = y->grad;
    /* one plane per iteration: reflected positions add into the same plane in a fixed order */
#pragma omp parallel for if (t_numel(y) > T_PAR_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < Ho; i++) {
            int64_t si = pad_src(i, top, H, mode);
            if (si < 0) continue;
            for (int64_t j = 0; j < Wo; j++) {
                int64_t sj = pad_src(j, left, W, mode);
                if (sj >= 0) gx[(p * H + si) * W + sj] += gy[(p * Ho + i) * Wo + j];
            }
        }
}

Tensor *t_pad2d(Tensor *x, int left, int right, int top, int bottom, int mode) {
    T_NONNULL(x);
    char s[96];
    if (x->ndim < 2 || left < 0 || right < 0 || top < 0 || bottom < 0 || (mode != T_PAD_ZERO && mode != T_PAD_REFLECT)) {
        t_error("pad2d", "cannot pad %s by (%d, %d, %d, %d) in mode %d", t_shape_str(x, s, sizeof s), left, right,
                top, bottom, mode);
        return NULL;
    }
    int nd = x->ndim;
    int64_t H = x->shape[nd - 2], W = x->shape[nd - 1];
    if (mode == T_PAD_REFLECT && (left >= W || right >= W || top >= H || bottom >= H)) {
        t_error("pad2d", "reflect padding (%d, %d, %d, %d) must be smaller than the padded axes of %s", left, right,
                top, bottom, t_shape_str(x, s, sizeof s));
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    int64_t shape[T_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    int64_t Ho = H + top + bottom, Wo = W + left + right;
    shape[nd - 2] = Ho;
    shape[nd - 1] = Wo;
    Tensor *y = t_new(nd, shape);
    T_NONNULL(y);
    int64_t planes = H * W > 0 ? t_numel(x) / (H * W) : 0;
    const float *xd = x->data;
#pragma omp parallel for if (t_numel(y) > T_PAR_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < Ho; i++) {
            float *yr = y->data + (p * Ho + i) * Wo;
            int64_t si = pad_src(i, top, H, mode);
            if (si < 0) {
                memset(yr, 0, sizeof(float) * (size_t)Wo);
                continue;
            }
            const float *xr = xd + (p * H + si) * W;
            for (int64_t j = 0; j < left; j++) yr[j] = mode == T_PAD_ZERO ? 0.0f : xr[left - j];
            memcpy(yr + left, xr, sizeof(float) * (size_t)W);
            for (int64_t j = 0; j < right; j++) yr[left + W + j] = mode == T_PAD_ZERO ? 0.0f : xr[W - 2 - j];
        }
    TNode *n = t_record("pad2d", y, pad_backward, 1, &x);
    if (n) {
        n->iarg[0] = top;
        n->iarg[1] = left;
        n->iarg[2] = mode;
    }
    return y;
}

/* ---------------------------------------------------------------- embedding */

static void embedding_backward(TNode *n) {
    Tensor *w = n->in[0];
    if (!t_needs_grad(w)) return;
    const int32_t *ids = n->saved;
    int64_t rows = n->iarg[0], D = w->shape[1];
    float *gw = t_grad_buf(w);
    if (!gw) return;   /* out of memory: t_backward reports it */
    const float *g = n->out->grad;
    /* threads own column blocks and walk the ids in order: repeated ids add in a fixed order, no races */
#pragma omp parallel for if (rows * D > T_PAR_MIN) schedule(static)
    for (int64_t c0 = 0; c0 < D; c0 += 64) {
        int64_t c1 = c0 + 64 < D ? c0 + 64 : D;
        for (int64_t r = 0; r < rows; r++) {
            float *dst = gw + (int64_t)ids[r] * D;
            const float *src = g + r * D;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

Tensor *t_embedding(Tensor *weight, const int32_t *ids, int64_t n) {
    T_NONNULL(weight);
    char s[96];
    if (weight->ndim != 2 || n < 0 || (n > 0 && !ids)) {
        t_error("embedding", "weight %s must be [V, D] with %lld ids", t_shape_str(weight, s, sizeof s), (long long)n);
        return NULL;
    }
    int64_t V = weight->shape[0], D = weight->shape[1];
    for (int64_t r = 0; r < n; r++)
        if (ids[r] < 0 || ids[r] >= V) {
            t_error("embedding", "id %d at position %lld is outside [0, %lld) of weight %s", ids[r], (long long)r,
                    (long long)V, t_shape_str(weight, s, sizeof s));
            return NULL;
        }
    Tensor *y = t_new(T_SHAPE(n, D));
    T_NONNULL(y);
    const float *wd = weight->data;
    int64_t sr = weight->stride[0], sc = weight->stride[1];
#pragma omp parallel for if (n * D > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < n; r++) {
        const float *src = wd + (int64_t)ids[r] * sr;
        float *dst = y->data + r * D;
        if (sc == 1)
            memcpy(dst, src, sizeof(float) * (size_t)D);
        else
            for (int64_t c = 0; c < D; c++) dst[c] = src[c * sc];
    }
    TNode *nd = t_record("embedding", y, embedding_backward, 1, &weight);
    if (nd) {
        int32_t *copy = t_arena_alloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        if (n && copy) memcpy(copy, ids, sizeof(int32_t) * (size_t)n);
        nd->saved = copy;
        nd->iarg[0] = n;
    }
    return y;
}

/* ---------------------------------------------------------------- masked fill, expand */

/* Checks that x broadcasts to (ndim, shape) without changing it. */
static bool broadcasts_to(const Tensor *x, int ndim, const int64_t *shape) {
    if (x->ndim > ndim) return false;
    for (int i = 0; i < x->ndim; i++) {
        int64_t d = x->shape[i], t = shape[ndim - x->ndim + i];
        if (d != t && d != 1) return false;
    }
    return true;
}

/* Strides of x's contiguous gradient over (ndim, shape): 0 on broadcast axes. */
static void grad_strides(const Tensor *x, int ndim, const int64_t *shape, int64_t *gs) {
    int64_t cs[T_MAX_DIMS];
    t_contig_strides(x->ndim, x->shape, cs);
    for (int i = 0; i < ndim; i++) {
        int ix = x->ndim - ndim + i;
        gs[i] = (ix < 0 || x->shape[ix] != shape[i]) ? 0 : cs[ix];
    }
}

static void masked_fill_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!t_needs_grad(x)) return;
    const unsigned char *keep = n->saved;
    float *gx = t_grad_buf(x);
    if (!gx) return;   /* out of memory: t_backward reports it */
    const float *g = y->grad;
    int64_t N = t_numel(y);
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) gx[i] += keep[i] ? g[i] : 0.0f;
}

Tensor *t_masked_fill(Tensor *x, Tensor *mask, float value) {
    T_NONNULL(x, mask);
    if (!broadcasts_to(mask, x->ndim, x->shape)) {
        char sx[96], sm[96];
        t_error("masked_fill", "mask %s does not broadcast to input %s", t_shape_str(mask, sm, sizeof sm),
                t_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    Tensor *y = t_new(x->ndim, x->shape);
    T_NONNULL(y);
    int64_t N = t_numel(y);
    float *m = t_arena_alloc(sizeof(float) * (size_t)N);   /* the mask broadcast to x's shape */
    unsigned char *keep = t_arena_alloc((size_t)N);
    if (!m || !keep) return NULL;
    int64_t ms[T_MAX_DIMS];
    t_broadcast_strides(mask, x->ndim, x->shape, ms);
    t_strided_copy(m, mask->data, ms, x->ndim, x->shape);
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        keep[i] = m[i] == 0.0f;
        y->data[i] = keep[i] ? x->data[i] : value;
    }
    TNode *n = t_record("masked_fill", y, masked_fill_backward, 1, &x);
    if (n) n->saved = keep;
    return y;
}

static void expand_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!t_needs_grad(x)) return;
    int64_t gs[T_MAX_DIMS];
    grad_strides(x, y->ndim, y->shape, gs);
    float *gx = t_grad_buf(x);
    if (gx) t_strided_add(gx, gs, y->ndim, y->shape, y->grad);   /* else out of memory: t_backward reports it */
}

Tensor *t_expand(Tensor *x, int ndim, const int64_t *shape) {
    T_NONNULL(x);
    int64_t sh[T_MAX_DIMS];
    bool ok = ndim >= x->ndim && ndim <= T_MAX_DIMS;
    for (int i = 0; ok && i < ndim; i++) {
        int ix = x->ndim - ndim + i;
        sh[i] = shape[i] == -1 && ix >= 0 ? x->shape[ix] : shape[i];   /* -1 keeps the size */
        ok = sh[i] >= 0;
    }
    if (!ok || !broadcasts_to(x, ndim, sh)) {
        char sx[96];
        Tensor tmp = {.ndim = ndim > T_MAX_DIMS || ndim < 0 ? 0 : ndim};
        for (int i = 0; i < tmp.ndim; i++) tmp.shape[i] = shape[i];
        char st[96];
        t_error("expand", "cannot expand %s to %s", t_shape_str(x, sx, sizeof sx), t_shape_str(&tmp, st, sizeof st));
        return NULL;
    }
    Tensor *y = t_new(ndim, sh);
    T_NONNULL(y);
    int64_t bs[T_MAX_DIMS];
    t_broadcast_strides(x, ndim, sh, bs);
    t_strided_copy(y->data, x->data, bs, ndim, sh);
    t_record("expand", y, expand_backward, 1, &x);
    return y;
}
