/* Elementwise unary ops and scalar forms. Each kernel pair is a forward f(x) and a derivative written
 * in terms of x and/or y = f(x); the backward multiplies it by the incoming gradient. */
#include <math.h>

#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/grad_write.h"
#include "tensor/simd.h"
#include "tensor/vmath.h"

enum {
    U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_CLAMP, U_RELU, U_GELU, U_QGELU, U_SILU, U_SIGMOID, U_TANH,
    U_ADDS, U_MULS, U_POWS
};
static const char *unary_names[] = {"neg",  "exp",     "log",        "sqrt", "rsqrt",   "abs",  "clamp",     "relu",
                                    "gelu", "quick_gelu", "silu", "sigmoid", "tanh", "add_scalar", "mul_scalar",
                                    "pow_scalar"};

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT2PI 0.39894228040143267794f

static inline float sigmoidf(float x) { return 1.0f / (1.0f + t_expf(-x)); }

/* GELU through erfc(|x|/sqrt 2) = t poly(t) exp(-x^2/2) (Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7
 * absolute; the same approximation PyTorch's vectorised erf uses): one exp and one division per element,
 * shared by the forward gelu(x) = x Phi(x) and the derivative Phi(x) + x phi(x). */
static inline float gelu_half_erfc(float x, float *e) {
    float a = fabsf(x) * INV_SQRT2, t = 1.0f / (1.0f + 0.3275911f * a);
    *e = t_expf(-a * a);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    return 0.5f * poly * *e;   /* 0.5 erfc(|x|/sqrt 2) = Phi(-|x|) */
}

static inline float gelu_f(float x) {
    float e, h = gelu_half_erfc(x, &e);
    return x >= 0.0f ? x - x * h : x * h;
}

static inline float gelu_deriv_f(float x) {
    float e, h = gelu_half_erfc(x, &e);
    return (x >= 0.0f ? 1.0f - h : h) + x * INV_SQRT2PI * e;
}

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
    case U_GELU: return gelu_f(x);
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
    case U_GELU: return gelu_deriv_f(x);
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

/* One loop per op (op is a constant inside each case), so the branch-free ones vectorise. */
#define UNARY_CASES(X) X(U_NEG) X(U_EXP) X(U_LOG) X(U_SQRT) X(U_RSQRT) X(U_ABS) X(U_CLAMP) X(U_RELU) \
    X(U_GELU) X(U_QGELU) X(U_SILU) X(U_SIGMOID) X(U_TANH) X(U_ADDS) X(U_MULS) X(U_POWS)

T_SIMD static void fwd_kernel(int op, const float *x, float *y, int64_t n, float p0, float p1) {
    switch (op) {
#define FWD_CASE(OP)                                                \
    case OP:                                                        \
        for (int64_t i = 0; i < n; i++) y[i] = fwd(OP, x[i], p0, p1); \
        break;
        UNARY_CASES(FWD_CASE)
#undef FWD_CASE
    }
}

/* gx (+)= gy * f'(x); `store` when gx is a fresh buffer (see tensor/grad_write.h) */
T_SIMD static void bwd_kernel(int op, const float *x, const float *y, const float *gy, float *gx, int64_t n, float p0,
                              float p1, bool store) {
    switch (op) {
#define BWD_CASE(OP)                                                                          \
    case OP:                                                                                  \
        if (store)                                                                            \
            for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * deriv(OP, x[i], y[i], p0, p1);    \
        else                                                                                  \
            for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * deriv(OP, x[i], y[i], p0, p1);   \
        break;
        UNARY_CASES(BWD_CASE)
#undef BWD_CASE
    }
}

/* Elements per parallel work item: big enough to amortise the call, small enough to balance. */
#define UNARY_CHUNK 8192

static void unary_backward(TNode *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!t_needs_grad(x)) return;
    int op = (int)n->iarg[0];
    float p0 = n->farg[0], p1 = n->farg[1];
    const float *xd = n->saved, *yd = y->data, *gy = y->grad;   /* saved = contiguous x */
    bool fresh;
    float *gx = t_grad_buf_for_write(x, &fresh);
    if (!gx) return;   /* out of memory: t_backward reports it */
    int64_t N = t_numel(y), chunks = (N + UNARY_CHUNK - 1) / UNARY_CHUNK;
#pragma omp parallel for if (N > T_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t i0 = c * UNARY_CHUNK, m = N - i0 < UNARY_CHUNK ? N - i0 : UNARY_CHUNK;
        bwd_kernel(op, xd + i0, yd + i0, gy + i0, gx + i0, m, p0, p1, fresh);
    }
}

static Tensor *unary(int op, Tensor *x, float p0, float p1) {
    T_NONNULL(x);
    Tensor *xc = t_is_contiguous(x) ? x : NULL;
    Tensor *y = t_new(x->ndim, x->shape);
    T_NONNULL(y);
    int64_t N = t_numel(y);
    const float *xd;
    if (xc) {
        xd = x->data;
    } else {
        float *tmp = t_arena_alloc(sizeof(float) * (size_t)N);
        if (!tmp) return NULL;
        t_copy_to(x, tmp);
        xd = tmp;
    }
    float *yd = y->data;
    int64_t chunks = (N + UNARY_CHUNK - 1) / UNARY_CHUNK;
#pragma omp parallel for if (N > T_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t i0 = c * UNARY_CHUNK, m = N - i0 < UNARY_CHUNK ? N - i0 : UNARY_CHUNK;
        fwd_kernel(op, xd + i0, yd + i0, m, p0, p1);
    }
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
