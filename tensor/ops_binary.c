/* Elementwise binary ops with NumPy broadcasting: add, sub, mul, div, and the fused axpby.
 * Fast paths: same shape (flat loop), and b broadcast over leading axes of a (bias / residual rows).
 * Backward reduces the broadcast gradient back onto each input's shape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/grad_write.h"
#include "tensor/simd.h"

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };
static const char *op_names[] = {"add", "sub", "mul", "div"};

static inline float apply(int op, float x, float y) {
    switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    default: return x / y;
    }
}

/* o[i] = op(x[i*sx], y[i*sy]) for i < n. The switch sits outside the loops and the unit-stride and
 * scalar-operand cases get their own loops, so each vectorises. */
T_SIMD static void binary_kernel(int op, const float *x, int64_t sx, const float *y, int64_t sy, float *o,
                                 int64_t n) {
    switch (op) {
#define BINARY_LOOPS(OP)                                                                 \
    case OP:                                                                             \
        if (sx == 1 && sy == 1)                                                          \
            for (int64_t i = 0; i < n; i++) o[i] = apply(OP, x[i], y[i]);                \
        else if (sx == 1 && sy == 0)                                                     \
            for (int64_t i = 0; i < n; i++) o[i] = apply(OP, x[i], y[0]);                \
        else if (sx == 0 && sy == 1)                                                     \
            for (int64_t i = 0; i < n; i++) o[i] = apply(OP, x[0], y[i]);                \
        else                                                                             \
            for (int64_t i = 0; i < n; i++) o[i] = apply(OP, x[i * sx], y[i * sy]);      \
        break;
        BINARY_LOOPS(OP_ADD)
        BINARY_LOOPS(OP_SUB)
        BINARY_LOOPS(OP_MUL)
        BINARY_LOOPS(OP_DIV)
#undef BINARY_LOOPS
    }
}

/* Elements per parallel work item of the flat same-shape loop. */
#define BINARY_CHUNK 8192

/* Elementwise over the broadcast shape: out[i] = op(a[ia], b[ib]). */
static void binary_forward(int op, Tensor *out, const Tensor *a, const Tensor *b) {
    int64_t n = t_numel(out);
    float *o = out->data;
    if (t_is_contiguous(a) && t_is_contiguous(b)) {
        int64_t na = t_numel(a), nb = t_numel(b);
        const float *x = a->data, *y = b->data;
        if (na == n && nb == n) {
            int64_t chunks = (n + BINARY_CHUNK - 1) / BINARY_CHUNK;
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
            for (int64_t c = 0; c < chunks; c++) {
                int64_t i0 = c * BINARY_CHUNK;
                binary_kernel(op, x + i0, 1, y + i0, 1, o + i0, n - i0 < BINARY_CHUNK ? n - i0 : BINARY_CHUNK);
            }
            return;
        }
        /* b's shape equals a trailing block of out and a is full: rows of nb */
        bool b_trailing = na == n && nb > 0 && n % nb == 0;
        for (int i = 0, j = out->ndim - b->ndim; b_trailing && i < b->ndim; i++, j++)
            if (b->shape[i] != out->shape[j]) b_trailing = false;
        if (b_trailing) {
            int64_t rows = n / nb;
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
            for (int64_t r = 0; r < rows; r++) binary_kernel(op, x + r * nb, 1, y, 1, o + r * nb, nb);
            return;
        }
    }
    /* general: walk out with broadcast strides of a and b, innermost axis vectorised */
    int nd = out->ndim;
    int64_t sa[T_MAX_DIMS], sb[T_MAX_DIMS];
    t_broadcast_strides(a, nd, out->shape, sa);
    t_broadcast_strides(b, nd, out->shape, sb);
    int64_t inner = nd ? out->shape[nd - 1] : 1, rows = inner ? n / inner : 0;
    int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, oa = 0, ob = 0;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t k = rem % out->shape[d];
            rem /= out->shape[d];
            oa += k * sa[d];
            ob += k * sb[d];
        }
        const float *x = a->data + oa, *y = b->data + ob;
        binary_kernel(op, x, ia, y, ib, o + r * inner, inner);
    }
}

/* Adds `src` (out's shape, contiguous) into x's gradient, summing over x's broadcast axes. */
static void reduce_into_grad(Tensor *x, const Tensor *out, const float *src) {
    int64_t n = t_numel(out);
    if (t_numel(x) == n) {
        bool fresh;
        float *g = t_grad_buf_for_write(x, &fresh);
        if (!g) return;   /* out of memory: t_backward reports it */
        if (fresh) {
            int64_t chunks = (n + BINARY_CHUNK - 1) / BINARY_CHUNK;
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
            for (int64_t c = 0; c < chunks; c++) {
                int64_t i0 = c * BINARY_CHUNK;
                memcpy(g + i0, src + i0, sizeof(float) * (size_t)(n - i0 < BINARY_CHUNK ? n - i0 : BINARY_CHUNK));
            }
        } else {
#pragma omp parallel for simd if (n > T_PAR_MIN) schedule(static)
            for (int64_t i = 0; i < n; i++) g[i] += src[i];
        }
        return;
    }
    float *g = t_grad_buf(x);
    if (!g) return;   /* out of memory: t_backward reports it */
    /* gradient strides of x's contiguous grad, 0 on broadcast axes */
    int nd = out->ndim;
    int64_t cs[T_MAX_DIMS], gs[T_MAX_DIMS];
    t_contig_strides(x->ndim, x->shape, cs);
    for (int i = 0; i < nd; i++) {
        int ix = x->ndim - nd + i;
        gs[i] = (ix < 0 || x->shape[ix] == 1) ? 0 : cs[ix];
    }
    t_strided_add(g, gs, nd, out->shape, src);
}

static void binary_backward(TNode *n) {
    Tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    int op = (int)n->iarg[0];
    const float *g = out->grad;
    int64_t N = t_numel(out);
    bool ga = t_needs_grad(a), gb = t_needs_grad(b);
    if (op == OP_ADD || op == OP_SUB) {
        if (ga) reduce_into_grad(a, out, g);
        if (gb) {
            if (op == OP_ADD) {
                reduce_into_grad(b, out, g);
            } else {
                float *t = t_arena_alloc(sizeof(float) * (size_t)N);
                if (!t) return;   /* out of memory: t_backward reports it */
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
                for (int64_t i = 0; i < N; i++) t[i] = -g[i];
                reduce_into_grad(b, out, t);
            }
        }
        return;
    }
    /* mul / div need the other operand broadcast to out's shape */
    Tensor *tmp = t_header(out->ndim, out->shape);
    if (!tmp || !(tmp->data = t_arena_alloc(sizeof(float) * (size_t)N))) return;
    Tensor gt = *tmp;
    gt.data = (float *)g;
    if (ga) {
        /* mul: g*b ; div: g/b */
        binary_forward(op == OP_MUL ? OP_MUL : OP_DIV, tmp, &gt, b);
        reduce_into_grad(a, out, tmp->data);
    }
    if (gb) {
        if (op == OP_MUL) {
            binary_forward(OP_MUL, tmp, &gt, a);
        } else {
            /* d(a/b)/db = -out/b */
            binary_forward(OP_DIV, tmp, out, b);
            float *t = tmp->data;
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
            for (int64_t i = 0; i < N; i++) t[i] = -t[i] * g[i];
        }
        reduce_into_grad(b, out, tmp->data);
    }
}

static Tensor *binary(int op, Tensor *a, Tensor *b) {
    T_NONNULL(a, b);
    int nd;
    int64_t shape[T_MAX_DIMS];
    if (t_broadcast_shape(op_names[op], a, b, &nd, shape)) return NULL;
    Tensor *out = t_new(nd, shape);
    T_NONNULL(out);
    binary_forward(op, out, a, b);
    Tensor *in[2] = {a, b};
    TNode *node = t_record(op_names[op], out, binary_backward, 2, in);
    if (node) node->iarg[0] = op;
    return out;
}

Tensor *t_add(Tensor *a, Tensor *b) { return binary(OP_ADD, a, b); }
Tensor *t_sub(Tensor *a, Tensor *b) { return binary(OP_SUB, a, b); }
Tensor *t_mul(Tensor *a, Tensor *b) { return binary(OP_MUL, a, b); }
Tensor *t_div(Tensor *a, Tensor *b) { return binary(OP_DIV, a, b); }

/* ---- a*alpha + b*beta, b broadcast to a's shape ---- */

static void axpby_backward(TNode *n) {
    Tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    float alpha = n->farg[0], beta = n->farg[1];
    int64_t N = t_numel(out);
    const float *g = out->grad;
    float *t = t_arena_alloc(sizeof(float) * (size_t)N);
    if (!t) return;
    if (t_needs_grad(a)) {
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < N; i++) t[i] = alpha * g[i];
        reduce_into_grad(a, out, t);
    }
    if (t_needs_grad(b)) {
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < N; i++) t[i] = beta * g[i];
        reduce_into_grad(b, out, t);
    }
}

Tensor *t_axpby(Tensor *a, float alpha, Tensor *b, float beta) {
    T_NONNULL(a, b);
    int nd;
    int64_t shape[T_MAX_DIMS];
    if (t_broadcast_shape("axpby", a, b, &nd, shape)) return NULL;
    Tensor *out = t_new(nd, shape);
    T_NONNULL(out);
    int64_t n = t_numel(out);
    if (t_is_contiguous(a) && t_is_contiguous(b) && t_numel(a) == n && t_numel(b) == n) {
        const float *x = a->data, *y = b->data;
        float *o = out->data;
#pragma omp parallel for simd if (n > T_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) o[i] = alpha * x[i] + beta * y[i];
    } else {
        Tensor *sa = t_mul_scalar(t_detach(a), alpha), *sb = t_mul_scalar(t_detach(b), beta);
        bool prev = t_set_grad_enabled(false);
        binary_forward(OP_ADD, out, sa, sb);
        t_set_grad_enabled(prev);
    }
    Tensor *in[2] = {a, b};
    TNode *node = t_record("axpby", out, axpby_backward, 2, in);
    if (node) {
        node->farg[0] = alpha;
        node->farg[1] = beta;
    }
    return out;
}
