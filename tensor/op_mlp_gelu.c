/* res + c_proj(gelu(c_fc(x))) as one op (tensor/ops_fused.h), with its vectorised exact GELU. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tensor/fused_linear.h"
#include "tensor/ops_fused.h"
#include "tensor/simd.h"

#define CHUNK 16384     /* elements per parallel GELU work item */

/* ---- exact GELU, vectorisable ----
 * erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, the same approximation PyTorch's vectorised
 * CPU kernel uses) with an exp that is plain arithmetic, so the loops below compile to SIMD code;
 * libm's erff/expf would keep them scalar. */

static inline float exp_neg(float x) {   /* e^x for x <= 0 (relative error ~2e-7); branch-free */
    /* clamp to -87 so that 2^n stays a normal float. For x <= 0 the bit pattern read as int32 grows as
     * x decreases, so the clamp is an integer min, which the vectoriser if-converts (a float compare
     * would stay a branch under -ftrapping-math). -inf clamps too. */
    union {
        float f;
        int32_t i;
    } u = {.f = x}, lim = {.f = -87.0f};
    u.i = u.i < lim.i ? u.i : lim.i;
    x = u.f;
    /* n = round(x / ln 2) by the 1.5·2^23 trick (adding it rounds to an integer, and the integer sits in
     * the low mantissa bits), so neither floorf nor a float->int conversion blocks vectorisation */
    union {
        float f;
        int32_t i;
    } t = {.f = x * 1.44269504088896341f + 12582912.0f}, magic = {.f = 12582912.0f};
    float n = t.f - 12582912.0f;
    float r = x - n * 0.693145751953125f - n * 1.42860682030941723e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    union {
        int32_t i;
        float f;
    } scale = {.i = (t.i - magic.i + 127) * (1 << 23)};   /* 2^n, n >= -126 after the clamp */
    return p * scale.f;
}

typedef struct {
    float cdf, pdf;
} Normal;

/* Φ(x) = 0.5 (1 + erf(x / sqrt 2)) and φ(x) = exp(-x²/2) / sqrt(2π) */
static inline Normal normal_at(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float e = exp_neg(-z * z);
    return (Normal){0.5f + 0.5f * __builtin_copysignf(1.0f - poly * e, x), e * 0.39894228040143268f};
}

T_SIMD static void gelu_kernel(float *out, const float *h, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        out[i] = h[i] * normal_at(h[i]).cdf;
    }
}

/* dh[i] = dg[i] * gelu'(h[i]) in place; gelu'(x) = Φ(x) + x φ(x) */
T_SIMD static void gelu_grad_kernel(float *dg, const float *h, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        Normal nd = normal_at(h[i]);
        dg[i] *= nd.cdf + h[i] * nd.pdf;
    }
}

static void gelu_par(float *out, const float *h, int64_t n) {
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < n; c += CHUNK) gelu_kernel(out + c, h + c, n - c < CHUNK ? n - c : CHUNK);
}

static void gelu_grad_par(float *dg, const float *h, int64_t n) {
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < n; c += CHUNK) gelu_grad_kernel(dg + c, h + c, n - c < CHUNK ? n - c : CHUNK);
}

/* ---- res + c_proj(gelu(c_fc(x))) ---- */

static void mlp_gelu_backward(TNode *n) {
    Tensor *x = n->in[0], *wf = n->in[1], *bf = n->in[2], *wp = n->in[3], *bp = n->in[4], *res = n->in[5];
    const float *h = n->saved, *dy = n->out->grad;
    int64_t C = wf->shape[1], M = wf->shape[0], Co = wp->shape[0], R = t_numel(x) / C;
    if (t_needs_grad(res)) t_grad_add(res, dy, t_numel(res));
    float *dx = t_grad_buf_if_needed(x), *dbf = t_grad_buf_if_needed(bf), *dbp = t_grad_buf_if_needed(bp);
    bool dwf_zero, dwp_zero;
    float *dwf = t_weight_grad_buf(wf, &dwf_zero), *dwp = t_weight_grad_buf(wp, &dwp_zero);
    if ((t_needs_grad(x) && !dx) || (t_needs_grad(bf) && !dbf) || (t_needs_grad(bp) && !dbp) ||
        (t_needs_grad(wf) && !dwf) || (t_needs_grad(wp) && !dwp))
        return;   /* no memory */
    size_t mark = t_arena_mark();   /* scratch after every gradient buffer (tensor/tensor.h, Memory rules) */
    float *g = t_arena_alloc(sizeof(float) * (size_t)(R * M));
    if (!g) {
        t_arena_release(mark);
        return;
    }
    if (dwp || dbp) {
        gelu_par(g, h, R * M);   /* recomputed rather than saved */
        t_linear_rows_backward(dy, g, wp->data, R, M, Co, NULL, dwp, dwp_zero, dbp);
    }
    if (dx || dwf || dbf) {
        t_linear_rows_input_grad_to(g, dy, wp->data, R, M, Co);   /* dG = dy Wp */
        gelu_grad_par(g, h, R * M);                                  /* dH */
        t_linear_rows_backward(g, x->data, wf->data, R, C, M, dx, dwf, dwf_zero, dbf);
    }
    t_arena_release(mark);
}

Tensor *t_mlp_gelu_add(Tensor *x, Tensor *w_fc, Tensor *b_fc, Tensor *w_proj, Tensor *b_proj, Tensor *res) {
    T_NONNULL(x, w_fc, w_proj);
    char sx[96], sf[96], sp[96], sr[96];
    bool ok = x->ndim >= 1 && w_fc->ndim == 2 && w_proj->ndim == 2 && w_fc->shape[0] >= 1 && w_fc->shape[1] >= 1 &&
              w_proj->shape[0] >= 1 && x->shape[x->ndim - 1] == w_fc->shape[1] && w_proj->shape[1] == w_fc->shape[0] &&
              (!b_fc || t_numel(b_fc) == w_fc->shape[0]) && (!b_proj || t_numel(b_proj) == w_proj->shape[0]);
    if (ok && res)
        ok = res->ndim == x->ndim && res->shape[res->ndim - 1] == w_proj->shape[0] &&
             t_numel(res) / w_proj->shape[0] == t_numel(x) / w_fc->shape[1];
    if (!ok) {
        t_error("mlp_gelu", "input %s, c_fc %s, c_proj %s%s%s", t_shape_str(x, sx, sizeof sx),
                t_shape_str(w_fc, sf, sizeof sf), t_shape_str(w_proj, sp, sizeof sp), res ? ", residual " : "",
                res ? t_shape_str(res, sr, sizeof sr) : "");
        return NULL;
    }
    x = t_contiguous(x);
    w_fc = t_contiguous(w_fc);
    w_proj = t_contiguous(w_proj);
    T_NONNULL(x, w_fc, w_proj);
    if ((b_fc && !(b_fc = t_contiguous(b_fc))) || (b_proj && !(b_proj = t_contiguous(b_proj))) ||
        (res && !(res = t_contiguous(res))))
        return NULL;
    int64_t C = w_fc->shape[1], M = w_fc->shape[0], Co = w_proj->shape[0], R = t_numel(x) / C, oshape[T_MAX_DIMS];
    memcpy(oshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    oshape[x->ndim - 1] = Co;
    Tensor *y = t_new(x->ndim, oshape);
    T_NONNULL(y);
    Tensor *ins[6] = {x, w_fc, b_fc, w_proj, b_proj, res};
    bool keep = t_grad_enabled();   /* the condition under which t_record will record a node */
    if (keep) {
        keep = false;
        for (int i = 0; i < 6; i++) keep |= t_needs_grad(ins[i]);
    }
    /* h = c_fc(x) is saved when there is a tape (allocated before the mark); otherwise it is scratch like the
     * GELU output */
    float *h = keep ? t_arena_alloc(sizeof(float) * (size_t)(R * M)) : NULL;
    if (keep && !h) return NULL;
    size_t mark = t_arena_mark();
    if (!h) h = t_arena_alloc(sizeof(float) * (size_t)(R * M));
    float *g = keep ? t_arena_alloc(sizeof(float) * (size_t)(R * M)) : h;   /* in place without a tape */
    if (!g) {
        t_arena_release(mark);
        return NULL;
    }
    const float *bf = b_fc ? b_fc->data : NULL, *bp = b_proj ? b_proj->data : NULL;
    t_linear_rows(h, x->data, w_fc->data, bf, NULL, R, C, M);
    gelu_par(g, h, R * M);
    t_linear_rows(y->data, g, w_proj->data, bp, res ? res->data : NULL, R, M, Co);
    t_arena_release(mark);
    if (keep) {
        TNode *n = t_record("mlp_gelu", y, mlp_gelu_backward, 6, ins);
        if (n) n->saved = h;
    }
    return y;
}
