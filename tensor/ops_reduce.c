/* Reductions over axes: sum, mean, var (with correction), max (one axis). Each output element is
 * reduced by one thread in a fixed order with a double accumulator, so results do not depend on the
 * thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"
#include "tensor/ops.h"

typedef struct {
    int ndim;                       /* of x */
    bool reduced[T_MAX_DIMS];
    int64_t count;                  /* elements reduced into each output */
    int n_keep, n_red;
    int64_t keep_shape[T_MAX_DIMS], keep_stride[T_MAX_DIMS];  /* x strides of kept axes */
    int64_t red_shape[T_MAX_DIMS], red_stride[T_MAX_DIMS];
} RedPlan;

static int make_plan(const char *op, const Tensor *x, int naxes, const int *axes, bool keepdim, RedPlan *p,
                     int *ondim, int64_t *oshape) {
    memset(p, 0, sizeof *p);
    p->ndim = x->ndim;
    if (naxes == 0)
        for (int i = 0; i < x->ndim; i++) p->reduced[i] = true;
    for (int i = 0; i < naxes; i++) {
        int a = t_axis(x, axes[i]);
        if (a < 0) {
            char s[96];
            t_error(op, "axis %d out of range for %s", axes[i], t_shape_str(x, s, sizeof s));
            return -1;
        }
        p->reduced[a] = true;
    }
    p->count = 1;
    *ondim = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (p->reduced[i]) {
            p->count *= x->shape[i];
            p->red_shape[p->n_red] = x->shape[i];
            p->red_stride[p->n_red++] = x->stride[i];
            if (keepdim) oshape[(*ondim)++] = 1;
        } else {
            p->keep_shape[p->n_keep] = x->shape[i];
            p->keep_stride[p->n_keep++] = x->stride[i];
            oshape[(*ondim)++] = x->shape[i];
        }
    }
    return 0;
}

/* Offset in x of output element o (kept axes in order). */
static inline int64_t keep_offset(const RedPlan *p, int64_t o) {
    int64_t off = 0;
    for (int d = p->n_keep - 1; d >= 0; d--) {
        off += (o % p->keep_shape[d]) * p->keep_stride[d];
        o /= p->keep_shape[d];
    }
    return off;
}

static inline int64_t red_offset(const RedPlan *p, int64_t r) {
    int64_t off = 0;
    for (int d = p->n_red - 1; d >= 0; d--) {
        off += (r % p->red_shape[d]) * p->red_stride[d];
        r /= p->red_shape[d];
    }
    return off;
}

/* out[o] = sum over the reduced sub-space of x (double accumulation). */
static void reduce_sum(const RedPlan *p, const float *x, float *out, int64_t n_out, double scale) {
    bool inner_contig = p->n_red == 1 && p->red_stride[0] == 1;
#pragma omp parallel for if (n_out * p->count > T_PAR_MIN) schedule(static)
    for (int64_t o = 0; o < n_out; o++) {
        const float *base = x + keep_offset(p, o);
        double acc = 0;
        if (inner_contig) {
            for (int64_t r = 0; r < p->count; r++) acc += base[r];
        } else {
            for (int64_t r = 0; r < p->count; r++) acc += base[red_offset(p, r)];
        }
        out[o] = (float)(acc * scale);
    }
}

/* Gradient of x (contiguous, x's logical shape) += coef(x_i) * g[out index of i]; coef NULL means 1. */
typedef struct {
    const float *x;       /* contiguous copy of x, for var */
    const float *mean;    /* per output */
    float factor;
} VarCoef;

static void scatter_grad(Tensor *x, const RedPlan *p, const float *g, float scale, const VarCoef *vc) {
    float *gx = t_grad_buf(x);
    if (!gx) return;   /* out of memory: t_backward reports it */
    int64_t N = t_numel(x);
    /* strides of the (kept-axes) output, laid over x's axes: 0 on reduced axes */
    int64_t os[T_MAX_DIMS], s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        if (p->reduced[i]) {
            os[i] = 0;
        } else {
            os[i] = s;
            s *= x->shape[i];
        }
    }
#pragma omp parallel for if (N > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        int64_t rem = i, o = 0;
        for (int d = x->ndim - 1; d >= 0; d--) {
            o += (rem % x->shape[d]) * os[d];
            rem /= x->shape[d];
        }
        float c = scale;
        if (vc) c *= vc->factor * (vc->x[i] - vc->mean[o]);
        gx[i] += c * g[o];
    }
}

typedef struct {
    RedPlan plan;
    float *mean;     /* var only */
    float *xc;       /* var only */
} RedSaved;

static void sum_backward(TNode *n) {
    Tensor *x = n->in[0];
    if (!t_needs_grad(x)) return;
    const RedSaved *s = n->saved;
    scatter_grad(x, &s->plan, n->out->grad, n->farg[0], NULL);
}

static Tensor *reduce(const char *op, Tensor *x, int naxes, const int *axes, bool keepdim, bool mean) {
    T_NONNULL(x);
    RedSaved tmp;
    int ond;
    int64_t osh[T_MAX_DIMS];
    if (make_plan(op, x, naxes, axes, keepdim, &tmp.plan, &ond, osh)) return NULL;
    Tensor *y = t_new(ond, osh);
    T_NONNULL(y);
    double scale = mean ? 1.0 / (double)(tmp.plan.count ? tmp.plan.count : 1) : 1.0;
    reduce_sum(&tmp.plan, x->data, y->data, t_numel(y), scale);
    TNode *n = t_record(op, y, sum_backward, 1, &x);
    if (n) {
        RedSaved *s = t_arena_alloc(sizeof *s);
        if (s) *s = tmp;   /* else t_arena_failed(): the backward does not run */
        n->saved = s;
        n->farg[0] = (float)scale;
    }
    return y;
}

Tensor *t_sum(Tensor *x, int naxes, const int *axes, bool keepdim) { return reduce("sum", x, naxes, axes, keepdim, false); }
Tensor *t_mean(Tensor *x, int naxes, const int *axes, bool keepdim) { return reduce("mean", x, naxes, axes, keepdim, true); }

static void var_backward(TNode *n) {
    Tensor *x = n->in[0];
    if (!t_needs_grad(x)) return;
    const RedSaved *s = n->saved;
    VarCoef vc = {s->xc, s->mean, n->farg[0]};
    scatter_grad(x, &s->plan, n->out->grad, 1.0f, &vc);
}

Tensor *t_var(Tensor *x, int naxes, const int *axes, bool keepdim, int correction) {
    T_NONNULL(x);
    RedSaved sv;
    int ond;
    int64_t osh[T_MAX_DIMS];
    if (make_plan("var", x, naxes, axes, keepdim, &sv.plan, &ond, osh)) return NULL;
    Tensor *y = t_new(ond, osh);
    T_NONNULL(y);
    int64_t n_out = t_numel(y), cnt = sv.plan.count;
    float *mean = t_arena_alloc(sizeof(float) * (size_t)(n_out ? n_out : 1));
    if (!mean) return NULL;
    reduce_sum(&sv.plan, x->data, mean, n_out, 1.0 / (double)(cnt ? cnt : 1));
    double denom = (double)(cnt - correction);
    const RedPlan *p = &sv.plan;
#pragma omp parallel for if (n_out * cnt > T_PAR_MIN) schedule(static)
    for (int64_t o = 0; o < n_out; o++) {
        const float *base = x->data + keep_offset(p, o);
        double acc = 0, m = mean[o];
        for (int64_t r = 0; r < cnt; r++) {
            double d = base[red_offset(p, r)] - m;
            acc += d * d;
        }
        y->data[o] = (float)(denom > 0 ? acc / denom : NAN);
    }
    TNode *n = t_record("var", y, var_backward, 1, &x);
    if (n) {
        RedSaved *s = t_arena_alloc(sizeof *s);
        float *xc = t_arena_alloc(sizeof(float) * (size_t)t_numel(x));
        if (s && xc) {   /* else t_arena_failed(): the backward does not run */
            *s = sv;
            s->mean = mean;
            s->xc = xc;
            t_copy_to(x, s->xc);
        }
        n->saved = s;
        n->farg[0] = (float)(2.0 / denom);
    }
    return y;
}

/* ---- max over one axis; the gradient goes to the first maximum ---- */

static void max_backward(TNode *n) {
    Tensor *x = n->in[0];
    if (!t_needs_grad(x)) return;
    const int64_t *arg = n->saved;   /* contiguous-x index of each output's maximum */
    float *gx = t_grad_buf(x);
    if (!gx) return;   /* out of memory: t_backward reports it */
    int64_t n_out = t_numel(n->out);
    for (int64_t o = 0; o < n_out; o++) gx[arg[o]] += n->out->grad[o];
}

Tensor *t_max(Tensor *x, int axis, bool keepdim) {
    T_NONNULL(x);
    RedPlan p;
    int ond;
    int64_t osh[T_MAX_DIMS];
    if (make_plan("max", x, 1, &axis, keepdim, &p, &ond, osh)) return NULL;
    if (p.count == 0) {
        char s[96];
        t_error("max", "axis %d of %s is empty", axis, t_shape_str(x, s, sizeof s));
        return NULL;
    }
    Tensor *y = t_new(ond, osh);
    T_NONNULL(y);
    int64_t n_out = t_numel(y);
    int64_t *arg = t_arena_alloc(sizeof(int64_t) * (size_t)(n_out ? n_out : 1));
    if (!arg) return NULL;
    int ax = t_axis(x, axis);
    int64_t cs[T_MAX_DIMS];
    t_contig_strides(x->ndim, x->shape, cs);
    RedPlan pc = p;   /* same plan over x's contiguous layout, for gradient indices */
    for (int i = 0, k = 0; i < x->ndim; i++)
        if (i != ax) pc.keep_stride[k++] = cs[i];
#pragma omp parallel for if (n_out * p.count > T_PAR_MIN) schedule(static)
    for (int64_t o = 0; o < n_out; o++) {
        const float *base = x->data + keep_offset(&p, o);
        int64_t best = 0;
        float bv = base[0];
        for (int64_t r = 1; r < p.count; r++) {
            float v = base[r * p.red_stride[0]];
            if (v > bv || (isnan(v) && !isnan(bv))) bv = v, best = r;
        }
        y->data[o] = bv;
        arg[o] = keep_offset(&pc, o) + best * cs[ax];
    }
    TNode *n = t_record("max", y, max_backward, 1, &x);
    if (n) n->saved = arg;
    return y;
}
