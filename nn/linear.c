/* torch.nn.Linear and the shared GEMM kernels of nn/'s fused layers. */
#include "nn/linear.h"

#include <stdlib.h>
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

Tensor *linear_forward(const Linear *l, Tensor *x) {
    if (l->weight->gemm_packed) {
        t_error("linear", "%s is packed for inference; only the fused layers (attention, MLP, linear_add) read it",
                l->weight->name ? l->weight->name : "the weight");
        return NULL;
    }
    return t_linear(x, l->weight, l->bias);
}

void linear_kernel_forward(float *y, const float *x, const Tensor *w, const float *b, const float *res, int64_t R,
                           int64_t in, int64_t out) {
    float beta = 0.0f;
    if (res && res != y) {
        /* seed the output with the residual and let the GEMM accumulate; the bias is fused into it */
#pragma omp parallel for if (R * out > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < R; r++) memcpy(y + r * out, res + r * out, sizeof(float) * (size_t)out);
    }
    if (res) beta = 1.0f;
    if (w->gemm_packed)
        t_sgemm_prepacked(R, out, in, x, in, w->data, beta, y, out, b);
    else
        t_sgemm_bias(false, true, R, out, in, 1.0f, x, in, w->data, in, beta, y, out, NULL, b);
}

bool nn_packed_blocks_grad(const char *op, const Tensor *w, Tensor *const *ins, int n) {
    if (!w->gemm_packed || !t_grad_enabled()) return false;
    for (int i = 0; i < n; i++)
        if (ins[i] && ins[i]->requires_grad) {
            t_error(op, "%s is packed for inference (nn_pack_linear_weight) and cannot be differentiated: run "
                        "this forward with gradients off, or keep the weights unpacked",
                    w->name ? w->name : "a weight");
            return true;
        }
    return false;
}

int nn_pack_linear_weight(Tensor *w) {
    if (w->gemm_packed) return 1;
    if (!w->persistent || w->ndim != 2 || !t_is_contiguous(w) || w->offset != 0) {
        char s[96];
        t_error("pack", "%s %s: only a whole [out, in] parameter can be packed", w->name ? w->name : "tensor",
                t_shape_str(w, s, sizeof s));
        return -1;
    }
    int64_t N = w->shape[0], K = w->shape[1];
    float *dst = t_param_storage_alloc(t_sgemm_packed_bt_size(N, K));
    if (!dst) {
        t_error("pack", "out of memory packing %s", w->name ? w->name : "a weight");
        return -1;
    }
    if (!t_sgemm_pack_bt(N, K, w->data, dst)) {   /* no packed kernel here: keep the plain layout */
        free(dst);
        return 0;
    }
    free(w->data);
    free(w->grad);   /* an inference-only weight has no gradient */
    w->grad = NULL;
    w->data = dst;
    w->gemm_packed = true;
    w->requires_grad = false;
    return 1;
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
    Tensor *ins[4] = {x, l->weight, res, l->bias};
    if (nn_packed_blocks_grad("linear_add", l->weight, ins, 4)) return NULL;
    x = ins[0] = t_contiguous(x);
    res = ins[2] = t_contiguous(res);
    Tensor *y = t_new(res->ndim, res->shape);
    int64_t R = t_numel(x) / l->in;
    linear_kernel_forward(y->data, x->data, l->weight, l->bias ? l->bias->data : NULL, res->data, R, l->in,
                          l->out);
    t_record("linear_add", y, linear_add_backward, l->bias ? 4 : 3, ins);
    return y;
}
