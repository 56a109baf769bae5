/* torch.nn.Linear and the shared GEMM kernels of nn/'s fused layers. */
#include "nn/linear.h"

#include <string.h>

#include "tensor/gemm.h"
#include "tensor/ops.h"

/* Elementwise loops below this size stay on one thread (fork/join costs more than the work). */
#define PAR_MIN 32768

void linear_init(Linear *l, ParamSet *ps, const char *prefix, int64_t in, int64_t out, bool bias, TRng *rng) {
    l->in = in;
    l->out = out;
    l->weight = params_new(ps, prefix, "weight", T_SHAPE(out, in));
    init_kaiming_uniform(l->weight, rng, in);
    l->bias = NULL;
    if (bias) {
        l->bias = params_new(ps, prefix, "bias", T_SHAPE(out));
        init_uniform_fan_in(l->bias, rng, in);
    }
}

Tensor *linear_forward(const Linear *l, Tensor *x) { return t_linear(x, l->weight, l->bias); }

void linear_kernel_forward(float *y, const float *x, const float *w, const float *b, const float *res, int64_t R,
                           int64_t in, int64_t out) {
    float beta = 0.0f;
    if (res && res != y) {
        /* seed the output with the residual and let the GEMM accumulate; the bias is fused into it */
#pragma omp parallel for if (R * out > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < R; r++) memcpy(y + r * out, res + r * out, sizeof(float) * (size_t)out);
    }
    if (res) beta = 1.0f;
    t_sgemm_bias(false, true, R, out, in, 1.0f, x, in, w, in, beta, y, out, NULL, b);
}

void linear_kernel_input_grad_to(float *dx, const float *dy, const float *w, int64_t R, int64_t in, int64_t out) {
    t_sgemm(false, false, R, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

float *nn_weight_grad(Tensor *w, bool *zero) {
    *zero = false;
    return w->requires_grad ? t_grad_buf_overwrite(w, zero) : NULL;
}

void linear_kernel_backward(const float *dy, const float *x, const float *w, int64_t R, int64_t in, int64_t out,
                            float *dx, float *dw, bool dw_zero, float *db) {
    if (dx) /* dx[R,in] += dy[R,out] W[out,in] */
        t_sgemm(false, false, R, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    if (dw) /* dW[out,in] (+)= dy^T x */
        t_sgemm(true, false, out, in, R, 1.0f, dy, out, x, in, dw_zero ? 0.0f : 1.0f, dw, in);
    if (db) {
        /* column sums; each thread owns a band of 64 columns, so no two threads write the same db[c] */
#pragma omp parallel for if (R * out > PAR_MIN) schedule(static)
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

void nn_grad_accumulate(Tensor *t, const float *src) {
    float *g = t_grad_buf(t);
    int64_t n = t_numel(t);
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] += src[i];
}

/* ---- res + linear(x) ---- */

static void linear_add_backward(TNode *n) {
    Tensor *x = n->in[0], *w = n->in[1], *res = n->in[2], *b = n->n_in > 3 ? n->in[3] : NULL, *y = n->out;
    int64_t in = w->shape[1], out = w->shape[0], R = t_numel(x) / in;
    const float *dy = y->grad;
    if (res->requires_grad) nn_grad_accumulate(res, dy);
    bool dw_zero;
    float *dw = nn_weight_grad(w, &dw_zero);
    linear_kernel_backward(dy, x->data, w->data, R, in, out, x->requires_grad ? t_grad_buf(x) : NULL, dw, dw_zero,
                           b && b->requires_grad ? t_grad_buf(b) : NULL);
}

Tensor *linear_forward_add(const Linear *l, Tensor *x, Tensor *res) {
    if (!x || !res) return NULL;
    char sx[96], sr[96];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != l->in || res->ndim != x->ndim ||
        res->shape[res->ndim - 1] != l->out || t_numel(res) / l->out != t_numel(x) / l->in) {
        t_error("linear_add", "input %s, residual %s, layer %lld -> %lld", t_shape_str(x, sx, sizeof sx),
                t_shape_str(res, sr, sizeof sr), (long long)l->in, (long long)l->out);
        return NULL;
    }
    x = t_contiguous(x);
    res = t_contiguous(res);
    Tensor *y = t_new(res->ndim, res->shape);
    int64_t R = t_numel(x) / l->in;
    linear_kernel_forward(y->data, x->data, l->weight->data, l->bias ? l->bias->data : NULL, res->data, R, l->in,
                          l->out);
    Tensor *ins[4] = {x, l->weight, res, l->bias};
    t_record("linear_add", y, linear_add_backward, l->bias ? 4 : 3, ins);
    return y;
}
