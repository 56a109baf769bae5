/* x[..., :D] · gelu(x[..., D:]) as one op (tensor/ops_fused.h): the gate of the SpatialTransformer's GEGLU
 * feed-forward. */
#include <string.h>

#include "tensor/internal.h"
#include "tensor/ops_fused.h"
#include "tensor/simd.h"
#include "tensor/vmath.h"

#define INV_SQRT2PI 0.39894228040143268f

T_SIMD static void geglu_row_forward(const float *x, float *y, int64_t D) {
    const float *a = x, *g = x + D;
    for (int64_t i = 0; i < D; i++) y[i] = a[i] * g[i] * t_normal_cdf(g[i]);
}

/* d a = dy·gelu(g);  d g = dy·a·gelu'(g),  gelu'(g) = Φ(g) + g·φ(g) */
T_SIMD static void geglu_row_backward(const float *x, const float *dy, float *dx, int64_t D) {
    const float *a = x, *g = x + D;
    for (int64_t i = 0; i < D; i++) {
        float cdf = t_normal_cdf(g[i]), pdf = INV_SQRT2PI * t_expf(-0.5f * g[i] * g[i]);
        dx[i] += dy[i] * g[i] * cdf;
        dx[D + i] += dy[i] * a[i] * (cdf + g[i] * pdf);
    }
}

static void geglu_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    int64_t D = y->shape[y->ndim - 1], R = t_numel(y) / (D ? D : 1);
    float *dx = t_grad_buf(x);
    if (!dx) return;   /* out of memory: t_backward reports it */
#pragma omp parallel for schedule(static) if (R * D > T_PAR_MIN)
    for (int64_t r = 0; r < R; r++) geglu_row_backward(x->data + r * 2 * D, y->grad + r * D, dx + r * 2 * D, D);
}

Tensor *t_geglu(Tensor *x) {
    T_NONNULL(x);
    char sx[96];
    if (x->ndim < 1 || x->shape[x->ndim - 1] % 2) {
        t_error("geglu", "last axis must be even, got %s", t_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    int64_t shape[T_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    int64_t D = shape[x->ndim - 1] / 2;
    shape[x->ndim - 1] = D;
    Tensor *y = t_new(x->ndim, shape);
    T_NONNULL(y);
    int64_t R = t_numel(y) / (D ? D : 1);
#pragma omp parallel for schedule(static) if (R * D > T_PAR_MIN)
    for (int64_t r = 0; r < R; r++) geglu_row_forward(x->data + r * 2 * D, y->data + r * D, D);
    t_record("geglu", y, geglu_backward, 1, &x);
    return y;
}
