/* View ops: reshape, permute, transpose, slice, select, squeeze/unsqueeze, contiguous, detach.
 * A view shares its parent's storage. Its gradient is contiguous in the view's own logical shape; the
 * backward scatters it into the parent's gradient with "gradient strides" that map view indices to
 * the parent's contiguous gradient layout (saved in iarg/saved at record time). */
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"

typedef struct {
    int64_t gstride[T_MAX_DIMS];
    int64_t goffset;
} ViewMap;

static void view_backward(TNode *n) {
    Tensor *x = n->in[0];
    if (!t_needs_grad(x)) return;
    const ViewMap *m = n->saved;
    float *g = t_grad_buf(x);
    if (!g) return;   /* out of memory: t_backward reports it */
    t_strided_add(g + m->goffset, m->gstride, n->out->ndim, n->out->shape, n->out->grad);
}

/* Same logical element order as the input: gradient adds elementwise. */
static void flat_backward(TNode *n) {
    Tensor *x = n->in[0];
    if (t_needs_grad(x)) t_grad_add(x, n->out->grad, t_numel(x));
}

static Tensor *view_header(Tensor *x) {
    Tensor *v = x ? t_arena_calloc(sizeof *v) : NULL;
    if (!v) return NULL;
    *v = *x;
    v->grad = NULL;
    v->grad_stale = false;   /* a parameter's lazy-zero mark is its own, not its views' */
    v->node = NULL;
    v->persistent = false;
    v->requires_grad = false;
    v->name = NULL;
    return v;
}

static void record_view(const char *op, Tensor *v, Tensor *x, const ViewMap *m) {
    TNode *n = t_record(op, v, view_backward, 1, &x);
    if (n) {
        ViewMap *s = t_arena_alloc(sizeof *s);
        if (s) *s = *m;   /* else t_arena_failed(): the backward does not run */
        n->saved = s;
    }
}

Tensor *t_contiguous(Tensor *x) {
    T_NONNULL(x);
    if (t_is_contiguous(x)) return x;
    Tensor *y = t_new(x->ndim, x->shape);
    T_NONNULL(y);
    t_copy_to(x, y->data);
    t_record("contiguous", y, flat_backward, 1, &x);
    return y;
}

Tensor *t_detach(Tensor *x) {
    T_NONNULL(x);
    return view_header(x);
}

Tensor *t_reshape(Tensor *x, int ndim, const int64_t *shape) {
    T_NONNULL(x);
    if (ndim < 0 || ndim > T_MAX_DIMS) {
        t_error("reshape", "rank %d is outside 0..%d", ndim, T_MAX_DIMS);
        return NULL;
    }
    int64_t sh[T_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (sh[i] == -1) {
            if (infer >= 0) {
                t_error("reshape", "more than one -1 in the target shape");
                return NULL;
            }
            infer = i;
        } else {
            known *= sh[i];
        }
    }
    int64_t n = t_numel(x);
    if (infer >= 0) sh[infer] = known ? n / known : 0;
    int64_t m = 1;
    for (int i = 0; i < ndim; i++) m *= sh[i];
    if (m != n) {
        char s[96];
        t_error("reshape", "cannot reshape %s (%lld elements) to %lld elements", t_shape_str(x, s, sizeof s),
                (long long)n, (long long)m);
        return NULL;
    }
    Tensor *c = t_contiguous(x);
    T_NONNULL(c);
    Tensor *v = view_header(c);
    T_NONNULL(v);
    v->ndim = ndim;
    memcpy(v->shape, sh, sizeof(int64_t) * (size_t)ndim);
    t_contig_strides(ndim, sh, v->stride);
    t_record("reshape", v, flat_backward, 1, &c);
    return v;
}

Tensor *t_permute(Tensor *x, const int *perm) {
    T_NONNULL(x);
    int seen[T_MAX_DIMS] = {0};
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]++) {
            t_error("permute", "invalid permutation for rank %d", x->ndim);
            return NULL;
        }
    }
    Tensor *v = view_header(x);
    T_NONNULL(v);
    ViewMap m = {{0}, 0};
    int64_t cs[T_MAX_DIMS];
    t_contig_strides(x->ndim, x->shape, cs);
    for (int i = 0; i < x->ndim; i++) {
        v->shape[i] = x->shape[perm[i]];
        v->stride[i] = x->stride[perm[i]];
        m.gstride[i] = cs[perm[i]];
    }
    record_view("permute", v, x, &m);
    return v;
}

Tensor *t_transpose(Tensor *x, int d0, int d1) {
    T_NONNULL(x);
    int a = t_axis(x, d0), b = t_axis(x, d1);
    if (a < 0 || b < 0) {
        t_error("transpose", "axes %d, %d out of range for rank %d", d0, d1, x->ndim);
        return NULL;
    }
    int perm[T_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return t_permute(x, perm);
}

Tensor *t_slice(Tensor *x, int axis, int64_t start, int64_t end) {
    T_NONNULL(x);
    int ax = t_axis(x, axis);
    if (ax < 0) {
        t_error("slice", "axis %d out of range for rank %d", axis, x->ndim);
        return NULL;
    }
    int64_t len = x->shape[ax];
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (end > len) end = len;
    if (start < 0 || start > end) {
        char s[96];
        t_error("slice", "range [%lld, %lld) invalid for axis %d of %s", (long long)start, (long long)end, ax,
                t_shape_str(x, s, sizeof s));
        return NULL;
    }
    Tensor *v = view_header(x);
    T_NONNULL(v);
    v->shape[ax] = end - start;
    v->data = x->data + start * x->stride[ax];
    v->offset = x->offset + start * x->stride[ax];
    ViewMap m = {{0}, 0};
    t_contig_strides(x->ndim, x->shape, m.gstride);
    m.goffset = start * m.gstride[ax];
    record_view("slice", v, x, &m);
    return v;
}

Tensor *t_select(Tensor *x, int axis, int64_t index) {
    T_NONNULL(x);
    int ax = t_axis(x, axis);
    if (ax < 0 || index < -x->shape[ax] || index >= x->shape[ax]) {
        char s[96];
        t_error("select", "index %lld on axis %d out of range for %s", (long long)index, axis, t_shape_str(x, s, sizeof s));
        return NULL;
    }
    if (index < 0) index += x->shape[ax];
    Tensor *v = view_header(x);
    T_NONNULL(v);
    int64_t cs[T_MAX_DIMS];
    t_contig_strides(x->ndim, x->shape, cs);
    ViewMap m = {{0}, index * cs[ax]};
    v->data = x->data + index * x->stride[ax];
    v->offset = x->offset + index * x->stride[ax];
    v->ndim = x->ndim - 1;
    for (int i = 0, j = 0; i < x->ndim; i++) {
        if (i == ax) continue;
        v->shape[j] = x->shape[i];
        v->stride[j] = x->stride[i];
        m.gstride[j] = cs[i];
        j++;
    }
    record_view("select", v, x, &m);
    return v;
}

Tensor *t_unsqueeze(Tensor *x, int axis) {
    T_NONNULL(x);
    if (axis < 0) axis += x->ndim + 1;
    if (axis < 0 || axis > x->ndim || x->ndim == T_MAX_DIMS) {
        t_error("unsqueeze", "axis %d out of range for rank %d", axis, x->ndim);
        return NULL;
    }
    Tensor *v = view_header(x);
    T_NONNULL(v);
    v->ndim = x->ndim + 1;
    for (int i = 0, j = 0; i < v->ndim; i++) {
        if (i == axis) {
            v->shape[i] = 1;
            v->stride[i] = (j < x->ndim) ? x->stride[j] * x->shape[j] : 1;
        } else {
            v->shape[i] = x->shape[j];
            v->stride[i] = x->stride[j];
            j++;
        }
    }
    t_record("unsqueeze", v, flat_backward, 1, &x);
    return v;
}

Tensor *t_squeeze(Tensor *x, int axis) {
    T_NONNULL(x);
    int ax = t_axis(x, axis);
    if (ax < 0 || x->shape[ax] != 1) {
        t_error("squeeze", "axis %d is not of size 1", axis);
        return NULL;
    }
    Tensor *v = view_header(x);
    T_NONNULL(v);
    v->ndim = x->ndim - 1;
    for (int i = 0, j = 0; i < x->ndim; i++) {
        if (i == ax) continue;
        v->shape[j] = x->shape[i];
        v->stride[j] = x->stride[i];
        j++;
    }
    t_record("squeeze", v, flat_backward, 1, &x);
    return v;
}
