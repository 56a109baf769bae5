/* res + x W^T + b as one op, and the row-major linear kernels (tensor/fused_linear.h) that it and the other
 * fused ops of tensor/ops_fused.h are built from. */
#include <string.h>

#include "tensor/fused_linear.h"
#include "tensor/gemm.h"
#include "tensor/ops_fused.h"

void t_linear_rows(float *y, const float *x, const float *w, const float *b, const float *res, int64_t R, int64_t in,
                   int64_t out) {
    if (res && res != y) {
        /* seed the output with the residual and let the GEMM accumulate; the bias is fused into it */
#pragma omp parallel for if (R * out > T_PAR_MIN) schedule(static)
        for (int64_t r = 0; r < R; r++) memcpy(y + r * out, res + r * out, sizeof(float) * (size_t)out);
    }
    t_sgemm_bias(false, true, R, out, in, 1.0f, x, in, w, in, res ? 1.0f : 0.0f, y, out, NULL, b);
}

void t_linear_rows_input_grad_to(float *dx, const float *dy, const float *w, int64_t R, int64_t in, int64_t out) {
    t_sgemm(false, false, R, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

void t_linear_rows_backward(const float *dy, const float *x, const float *w, int64_t R, int64_t in, int64_t out,
                            float *dx, float *dw, bool dw_zero, float *db) {
    if (dx) /* dx[R,in] += dy[R,out] W[out,in] */
        t_sgemm(false, false, R, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    if (dw) /* dW[out,in] (+)= dy^T x */
        t_sgemm(true, false, out, in, R, 1.0f, dy, out, x, in, dw_zero ? 0.0f : 1.0f, dw, in);
    if (db) {
        /* column sums; each thread owns a band of 64 columns, so no two threads write the same db[c] */
#pragma omp parallel for if (R * out > T_PAR_MIN) schedule(static)
        for (int64_t c0 = 0; c0 < out; c0 += 64) {
            int64_t n = out - c0 < 64 ? out - c0 : 64;
            float acc[64] = {0};
            for (int64_t r = 0; r < R; r++) {
                const float *d = dy + r * out + c0;
                for (int64_t c = 0; c < n; c++) acc[c] += d[c];
            }
            for (int64_t c = 0; c < n; c++) db[c0 + c] += acc[c];
        }
    }
}

/* ---- res + linear(x) ---- */

static void linear_add_backward(TNode *n) {
    Tensor *x = n->in[0], *w = n->in[1], *res = n->in[2], *b = n->in[3], *y = n->out;
    int64_t in = w->shape[1], out = w->shape[0], R = t_numel(x) / in;
    const float *dy = y->grad;
    if (t_needs_grad(res)) t_grad_add(res, dy, t_numel(res));
    bool dw_zero;
    float *dw = t_weight_grad_buf(w, &dw_zero), *dx = t_grad_buf_if_needed(x), *db = t_grad_buf_if_needed(b);
    if ((t_needs_grad(w) && !dw) || (t_needs_grad(x) && !dx) || (t_needs_grad(b) && !db)) return;   /* no memory */
    t_linear_rows_backward(dy, x->data, w->data, R, in, out, dx, dw, dw_zero, db);
}

Tensor *t_linear_add(Tensor *x, Tensor *w, Tensor *b, Tensor *res) {
    T_NONNULL(x, w, res);
    char sx[96], sw[96], sr[96];
    if (w->ndim != 2 || w->shape[0] < 1 || w->shape[1] < 1 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1] || res->ndim != x->ndim ||
        res->shape[res->ndim - 1] != w->shape[0] || t_numel(res) / w->shape[0] != t_numel(x) / w->shape[1] ||
        (b && t_numel(b) != w->shape[0])) {
        t_error("linear_add", "input %s, weight %s, residual %s%s", t_shape_str(x, sx, sizeof sx),
                t_shape_str(w, sw, sizeof sw), t_shape_str(res, sr, sizeof sr), b ? " and a bias" : "");
        return NULL;
    }
    x = t_contiguous(x);
    w = t_contiguous(w);
    res = t_contiguous(res);
    T_NONNULL(x, w, res);
    if (b && !(b = t_contiguous(b))) return NULL;
    int64_t in = w->shape[1], out = w->shape[0];
    Tensor *y = t_new(res->ndim, res->shape);
    T_NONNULL(y);
    t_linear_rows(y->data, x->data, w->data, b ? b->data : NULL, res->data, t_numel(x) / in, in, out);
    Tensor *ins[4] = {x, w, res, b};
    t_record("linear_add", y, linear_add_backward, 4, ins);
    return y;
}
