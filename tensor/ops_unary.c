/* Elementwise unary ops and scalar forms. Each kernel pair is a forward f(x) and a derivative written
 * in terms of x and/or y = f(x); the backward multiplies it by the incoming gradient. */
#include <math.h>

#include "tensor/internal.h"
#include "tensor/ops.h"

enum {
    U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_CLAMP, U_RELU, U_GELU, U_QGELU, U_SILU, U_SIGMOID, U_TANH,
    U_ADDS, U_MULS, U_POWS
};
static const char *unary_names[] = {"neg",  "exp",     "log",        "sqrt", "rsqrt",   "abs",  "clamp",     "relu",
                                    "gelu", "quick_gelu", "silu", "sigmoid", "tanh", "add_scalar", "mul_scalar",
                                    "pow_scalar"};

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT2PI 0.39894228040143267794f

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline float fwd(int op, float x, float p0, float p1) {
    switch (op) {
    case U_NEG: return -x;
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return 1.0f / sqrtf(x);
    case U_ABS: return fabsf(x);
    case U_CLAMP: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case U_RELU: return x > 0 ? x : 0;
    case U_GELU: return 0.5f * x * (1.0f + erff(x * INV_SQRT2));
    case U_QGELU: return x * sigmoidf(1.702f * x);
    case U_SILU: return x * sigmoidf(x);
    case U_SIGMOID: return sigmoidf(x);
    case U_TANH: return tanhf(x);
    case U_ADDS: return x + p0;
    case U_MULS: return x * p0;
    default: return powf(x, p0);
    }
}

/* dy/dx given x and y */
static inline float deriv(int op, float x, float y, float p0, float p1) {
    switch (op) {
    case U_NEG: return -1.0f;
    case U_EXP: return y;
    case U_LOG: return 1.0f / x;
    case U_SQRT: return 0.5f / y;
    case U_RSQRT: return -0.5f * y * y * y;
    case U_ABS: return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f);
    case U_CLAMP: return (x >= p0 && x <= p1) ? 1.0f : 0.0f;
    case U_RELU: return x > 0 ? 1.0f : 0.0f;
    case U_GELU: return 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT2PI * expf(-0.5f * x * x);
    case U_QGELU: {
        float s = sigmoidf(1.702f * x);
        return s + 1.702f * x * s * (1.0f - s);
    }
    case U_SILU: {
        float s = sigmoidf(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case U_SIGMOID: return y * (1.0f - y);
    case U_TANH: return 1.0f - y * y;
    case U_ADDS: return 1.0f;
    case U_MULS: return p0;
    default: return p0 == 0.0f ? 0.0f : p0 * powf(x, p0 - 1.0f);
    }
}

static void unary_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!t_needs_grad(x)) return;
    int op = (int)n->iarg[0];
    float p0 = n->farg[0], p1 = n->farg[1];
    const float *xd = n->saved, *yd = y->data, *gy = y->grad;   /* saved = contiguous x */
    float *gx = t_grad_buf(x);
    int64_t N = t_numel(y);
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) gx[i] += gy[i] * deriv(op, xd[i], yd[i], p0, p1);
}

static Tensor *unary(int op, Tensor *x, float p0, float p1) {
    T_NONNULL(x);
    Tensor *xc = t_is_contiguous(x) ? x : NULL;
    Tensor *y = t_new(x->ndim, x->shape);
    int64_t N = t_numel(y);
    const float *xd;
    if (xc) {
        xd = x->data;
    } else {
        float *tmp = t_arena_alloc(sizeof(float) * (size_t)N);
        t_copy_to(x, tmp);
        xd = tmp;
    }
    float *yd = y->data;
#pragma omp parallel for simd if (N > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) yd[i] = fwd(op, xd[i], p0, p1);
    TNode *n = t_record(unary_names[op], y, unary_backward, 1, &x);
    if (n) {
        n->iarg[0] = op;
        n->farg[0] = p0;
        n->farg[1] = p1;
        n->saved = (void *)xd;
    }
    return y;
}

Tensor *t_neg(Tensor *x) { return unary(U_NEG, x, 0, 0); }
Tensor *t_exp(Tensor *x) { return unary(U_EXP, x, 0, 0); }
Tensor *t_log(Tensor *x) { return unary(U_LOG, x, 0, 0); }
Tensor *t_sqrt(Tensor *x) { return unary(U_SQRT, x, 0, 0); }
Tensor *t_rsqrt(Tensor *x) { return unary(U_RSQRT, x, 0, 0); }
Tensor *t_abs(Tensor *x) { return unary(U_ABS, x, 0, 0); }
Tensor *t_clamp(Tensor *x, float lo, float hi) { return unary(U_CLAMP, x, lo, hi); }
Tensor *t_relu(Tensor *x) { return unary(U_RELU, x, 0, 0); }
Tensor *t_gelu(Tensor *x) { return unary(U_GELU, x, 0, 0); }
Tensor *t_quick_gelu(Tensor *x) { return unary(U_QGELU, x, 0, 0); }
Tensor *t_silu(Tensor *x) { return unary(U_SILU, x, 0, 0); }
Tensor *t_sigmoid(Tensor *x) { return unary(U_SIGMOID, x, 0, 0); }
Tensor *t_tanh(Tensor *x) { return unary(U_TANH, x, 0, 0); }
Tensor *t_add_scalar(Tensor *x, float s) { return unary(U_ADDS, x, s, 0); }
Tensor *t_mul_scalar(Tensor *x, float s) { return unary(U_MULS, x, s, 0); }
Tensor *t_pow_scalar(Tensor *x, float p) { return unary(U_POWS, x, p, 0); }
