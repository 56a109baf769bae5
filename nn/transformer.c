/* open_clip's ResidualAttentionBlock and Transformer stack, plus the fused GELU MLP they use. */
#include "nn/transformer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"
#include "tensor/simd.h"

#define PAR_MIN 32768
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
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t c = 0; c < n; c += CHUNK) gelu_kernel(out + c, h + c, n - c < CHUNK ? n - c : CHUNK);
}

static void gelu_grad_par(float *dg, const float *h, int64_t n) {
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t c = 0; c < n; c += CHUNK) gelu_grad_kernel(dg + c, h + c, n - c < CHUNK ? n - c : CHUNK);
}

/* ---- fused MLP: res + c_proj(gelu(c_fc(x))) ---- */

static void mlp_backward(TNode *n) {
    Tensor *x = n->in[0], *wf = n->in[1], *bf = n->in[2], *wp = n->in[3], *bp = n->in[4], *res = n->in[5];
    const float *h = n->saved, *dy = n->out->grad;
    int64_t C = wf->shape[1], M = wf->shape[0], Co = wp->shape[0], R = t_numel(x) / C;
    if (res && res->requires_grad) nn_grad_accumulate(res, dy);
    float *dx = x->requires_grad ? t_grad_buf(x) : NULL;   /* arena: allocate before the scratch mark */
    bool dwf_zero, dwp_zero;
    float *dwf = nn_weight_grad(wf, &dwf_zero), *dbf = bf && bf->requires_grad ? t_grad_buf(bf) : NULL;
    float *dwp = nn_weight_grad(wp, &dwp_zero), *dbp = bp && bp->requires_grad ? t_grad_buf(bp) : NULL;
    size_t mark = t_arena_mark();
    float *g = t_arena_alloc(sizeof(float) * (size_t)(R * M));
    if (dwp || dbp) {
        gelu_par(g, h, R * M);   /* recomputed rather than saved */
        linear_kernel_backward(dy, g, wp->data, R, M, Co, NULL, dwp, dwp_zero, dbp);
    }
    if (dx || dwf || dbf) {
        linear_kernel_input_grad_to(g, dy, wp->data, R, M, Co);   /* dG = dy Wp */
        gelu_grad_par(g, h, R * M);                                          /* dH */
        linear_kernel_backward(g, x->data, wf->data, R, C, M, dx, dwf, dwf_zero, dbf);
    }
    t_arena_release(mark);
}

Tensor *mlp_gelu_forward_add(const Linear *c_fc, const Linear *c_proj, Tensor *x, Tensor *res) {
    if (!x) return NULL;
    char sx[96], sr[96];
    int64_t C = c_fc->in, M = c_fc->out, Co = c_proj->out;
    bool ok = x->ndim >= 1 && x->shape[x->ndim - 1] == C && c_proj->in == M;
    if (ok && res) ok = res->ndim == x->ndim && res->shape[res->ndim - 1] == Co && t_numel(res) / Co == t_numel(x) / C;
    if (!ok) {
        t_error("mlp", "input %s%s%s for %lld -> %lld -> %lld", t_shape_str(x, sx, sizeof sx), res ? ", residual " : "",
                res ? t_shape_str(res, sr, sizeof sr) : "", (long long)C, (long long)M, (long long)c_proj->out);
        return NULL;
    }
    x = t_contiguous(x);
    if (res) res = t_contiguous(res);
    int64_t R = t_numel(x) / C, oshape[T_MAX_DIMS];
    memcpy(oshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    oshape[x->ndim - 1] = Co;
    Tensor *y = t_new(x->ndim, oshape);
    Tensor *ins[6] = {x, c_fc->weight, c_fc->bias, c_proj->weight, c_proj->bias, res};
    bool keep = t_grad_enabled();
    if (keep) {
        keep = false;
        for (int i = 0; i < 6; i++) keep |= ins[i] && ins[i]->requires_grad;
    }
    /* h = c_fc(x) is saved when there is a tape; otherwise it is scratch like the GELU output */
    float *h = keep ? t_arena_alloc(sizeof(float) * (size_t)(R * M)) : NULL;
    size_t mark = t_arena_mark();
    if (!h) h = t_arena_alloc(sizeof(float) * (size_t)(R * M));
    const float *bf = c_fc->bias ? c_fc->bias->data : NULL, *bp = c_proj->bias ? c_proj->bias->data : NULL;
    linear_kernel_forward(h, x->data, c_fc->weight->data, bf, NULL, R, C, M);
    float *g = keep ? t_arena_alloc(sizeof(float) * (size_t)(R * M)) : h;   /* in place without a tape */
    gelu_par(g, h, R * M);
    linear_kernel_forward(y->data, g, c_proj->weight->data, bp, res ? res->data : NULL, R, M, Co);
    t_arena_release(mark);
    if (keep) {
        TNode *n = t_record("mlp_gelu", y, mlp_backward, 6, ins);
        if (n) n->saved = h;
    }
    return y;
}

/* ---- ResidualAttentionBlock ---- */

int res_attn_block_init(ResidualAttentionBlock *blk, ParamSet *ps, const char *prefix, int64_t width, int heads,
                  double mlp_ratio, TRng *rng) {
    char name[256];
    int64_t mlp_width = (int64_t)(width * mlp_ratio);
    layernorm_init(&blk->ln_1, ps, nn_join(name, sizeof name, prefix, "ln_1"), width);
    if (mha_init(&blk->attn, ps, nn_join(name, sizeof name, prefix, "attn"), width, heads, rng) != 0) return -1;
    layernorm_init(&blk->ln_2, ps, nn_join(name, sizeof name, prefix, "ln_2"), width);
    linear_init(&blk->mlp.c_fc, ps, nn_join(name, sizeof name, prefix, "mlp.c_fc"), width, mlp_width, true, rng);
    linear_init(&blk->mlp.c_proj, ps, nn_join(name, sizeof name, prefix, "mlp.c_proj"), mlp_width, width, true, rng);
    return 0;
}

Tensor *res_attn_block_forward(const ResidualAttentionBlock *blk, Tensor *x, Tensor *mask) {
    x = mha_forward_add(&blk->attn, layernorm_forward(&blk->ln_1, x), mask, x);
    return mlp_gelu_forward_add(&blk->mlp.c_fc, &blk->mlp.c_proj, layernorm_forward(&blk->ln_2, x), x);
}

Tensor *res_attn_block_forward_first(const ResidualAttentionBlock *blk, Tensor *x, Tensor *mask, int64_t nq) {
    if (!x) return NULL;
    if (x->ndim != 3 || nq < 1 || nq >= x->shape[1]) return res_attn_block_forward(blk, x, mask);
    Tensor *res = t_contiguous(t_slice(x, 1, 0, nq));                                  /* [B, nq, C] */
    if (mask) mask = t_contiguous(t_slice(mask, mask->ndim - 2, 0, nq));                /* [nq, L] */
    x = mha_forward_add_first(&blk->attn, layernorm_forward(&blk->ln_1, x), mask, res, nq);  /* [B, nq, C] */
    return mlp_gelu_forward_add(&blk->mlp.c_fc, &blk->mlp.c_proj, layernorm_forward(&blk->ln_2, x), x);
}

/* ---- Transformer ---- */

int transformer_init(Transformer *tf, ParamSet *ps, const char *prefix, int64_t width, int layers, int heads,
                     double mlp_ratio, TRng *rng) {
    memset(tf, 0, sizeof *tf);
    if (layers < 0) {
        t_error("transformer", "negative layer count %d", layers);
        return -1;
    }
    tf->resblocks = calloc((size_t)(layers > 0 ? layers : 1), sizeof *tf->resblocks);
    if (!tf->resblocks) {
        t_error("transformer", "out of memory for %d blocks", layers);
        return -1;
    }
    tf->width = width;
    tf->layers = layers;
    tf->heads = heads;
    char name[256], idx[32];
    for (int i = 0; i < layers; i++) {
        snprintf(idx, sizeof idx, "resblocks.%d", i);
        if (res_attn_block_init(&tf->resblocks[i], ps, nn_join(name, sizeof name, prefix, idx), width, heads, mlp_ratio,
                          rng) != 0) {
            transformer_free(tf);
            return -1;
        }
    }
    return 0;
}

void transformer_free(Transformer *tf) {
    if (!tf) return;
    free(tf->resblocks);
    tf->resblocks = NULL;
    tf->layers = 0;
}

Tensor *transformer_forward_first(const Transformer *tf, Tensor *x, Tensor *mask, Tensor *const *control,
                                  Tensor **hidden, int64_t last_rows) {
    for (int i = 0; i < tf->layers; i++) {
        bool last = i == tf->layers - 1 && last_rows > 0;
        x = last ? res_attn_block_forward_first(&tf->resblocks[i], x, mask, last_rows)
                 : res_attn_block_forward(&tf->resblocks[i], x, mask);
        if (control && control[i]) {
            Tensor *c = control[i];   /* per token: only the rows the block kept */
            if (x && x->ndim == 3 && c->ndim == 3 && c->shape[1] > x->shape[1]) c = t_slice(c, 1, 0, x->shape[1]);
            x = t_add(x, c);
        }
        if (hidden) hidden[i] = x;
    }
    return x;
}

Tensor *transformer_forward(const Transformer *tf, Tensor *x, Tensor *mask, Tensor *const *control, Tensor **hidden) {
    return transformer_forward_first(tf, x, mask, control, hidden, 0);
}
