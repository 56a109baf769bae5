/* LinearAttention (softmax over channels for q, over positions for k) as one fused op, and its residual
 * pre-norm wrapper. */
#include "nn/linear_attention.h"

#include <math.h>

#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "tensor/par_reduce.h"
#include "tensor/simd.h"
#include "tensor/vmath.h"

void linear_attention_init(LinearAttention *a, ParamSet *ps, const char *prefix, int64_t dim, int heads,
                           int dim_head, TRng *r) {
    char p[256];
    int64_t hidden = (int64_t)heads * dim_head;
    conv2d_init(&a->to_qkv, ps, nn_join(p, sizeof p, prefix, "to_qkv"), dim, 3 * hidden, 1, 1, 0, false, r);
    conv2d_init(&a->to_out, ps, nn_join(p, sizeof p, prefix, "to_out.0"), hidden, dim, 1, 1, 0, true, r);
    channel_layernorm_init(&a->out_norm, ps, nn_join(p, sizeof p, prefix, "to_out.1"), dim);
    a->heads = heads;
    a->dim_head = dim_head;
}

Tensor *linear_attention_forward(const LinearAttention *a, Tensor *x) {
    if (!x) return NULL;
    Tensor *qkv = conv2d_forward(&a->to_qkv, x);                                    /* [B, 3·h·d, H, W] */
    Tensor *out = nn_linear_attention_core(qkv, a->heads, a->dim_head);              /* [B, h·d, H, W] */
    return channel_layernorm_forward(&a->out_norm, conv2d_forward(&a->to_out, out));
}

/* ---------------------------------------------------------------- the fused core
 * Per (image, head), with q, k, v the [d, N] slices of qkv (N = H·W pixels):
 *     ks = softmax over N of each row of k       (row max and 1/sum saved: ks is recomputed in backward)
 *     ctx [d, e] = ks · vᵀ / N                    (saved: d·e floats)
 *     qs = softmax over d of each column of q, times d^-1/2
 *     out [e, N] = ctxᵀ · qs
 * Work goes in tiles of LA_TILE pixels, so ks and qs exist only as cache-resident tiles. Backward:
 *     dctx = qs · doutᵀ;   dqs = ctx · dout;      dq = qs ⊙ (dqs − Σ_d qs ⊙ dqs / scale)
 *     dks = dctx · v / N;  dv = dctxᵀ · ks / N;   dk = ks ⊙ (dks − Σ_n ks ⊙ dks),
 * where Σ_n ks ⊙ dks = Σ_e dctx ⊙ ctx needs no pass over N. Each (image, head) is computed by one thread
 * in a fixed order, so results do not depend on the thread count. */

#define LA_TILE 2048
#define LA_LANES 16

typedef struct {
    int64_t B, heads, d, N;
    float scale;
    float *ctx;          /* [B, heads, d, d] */
    float *kmax, *krs;   /* [B, heads, d]: row max of k and 1 / sum exp(k − max) */
} LaCore;

/* max and 1 / sum exp(x − max) of one row (lanes keep the reduction vectorised and its order fixed) */
T_SIMD static void la_row_stats(const float *x, int64_t n, float *max_out, float *rs_out) {
    float ml[LA_LANES], sl[LA_LANES];
    for (int l = 0; l < LA_LANES; l++) ml[l] = -INFINITY, sl[l] = 0.0f;
    int64_t nb = n / LA_LANES * LA_LANES;
    for (int64_t i = 0; i < nb; i += LA_LANES)
        for (int l = 0; l < LA_LANES; l++) ml[l] = x[i + l] > ml[l] ? x[i + l] : ml[l];
    float m = -INFINITY;
    for (int l = 0; l < LA_LANES; l++) m = ml[l] > m ? ml[l] : m;
    for (int64_t i = nb; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int64_t i = 0; i < nb; i += LA_LANES)
        for (int l = 0; l < LA_LANES; l++) sl[l] += t_expf(x[i + l] - m);
    float s = 0.0f;
    for (int64_t i = nb; i < n; i++) s += t_expf(x[i] - m);
    for (int l = 0; l < LA_LANES; l++) s += sl[l];
    *max_out = m;
    *rs_out = 1.0f / s;
}

/* ks [d, T] = exp(k − max) · rs, row by row (k rows ldk apart) */
T_SIMD static void la_k_tile(const float *k, int64_t ldk, int64_t d, int64_t T, const float *max, const float *rs,
                             float *ks) {
    for (int64_t r = 0; r < d; r++)
        for (int64_t t = 0; t < T; t++) ks[r * T + t] = t_expf(k[r * ldk + t] - max[r]) * rs[r];
}

/* qs [d, T] = softmax over the d rows of each column of q (rows ldq apart), times scale */
T_SIMD static void la_q_tile(const float *q, int64_t ldq, int64_t d, int64_t T, float scale, float *qs) {
    float m[LA_TILE], s[LA_TILE];
    for (int64_t t = 0; t < T; t++) m[t] = q[t], s[t] = 0.0f;
    for (int64_t r = 1; r < d; r++)
        for (int64_t t = 0; t < T; t++) m[t] = q[r * ldq + t] > m[t] ? q[r * ldq + t] : m[t];
    for (int64_t r = 0; r < d; r++)
        for (int64_t t = 0; t < T; t++) {
            float e = t_expf(q[r * ldq + t] - m[t]);
            qs[r * T + t] = e;
            s[t] += e;
        }
    for (int64_t t = 0; t < T; t++) s[t] = scale / s[t];
    for (int64_t r = 0; r < d; r++)
        for (int64_t t = 0; t < T; t++) qs[r * T + t] *= s[t];
}

/* dq (+)= qs ⊙ (dqs − c / scale), c = Σ_d qs ⊙ dqs per column; dq rows ldq apart */
T_SIMD static void la_q_backward(const float *qs, const float *dqs, int64_t d, int64_t T, float scale, float *dq,
                                 int64_t ldq, bool add) {
    float c[LA_TILE];
    for (int64_t t = 0; t < T; t++) c[t] = 0.0f;
    for (int64_t r = 0; r < d; r++)
        for (int64_t t = 0; t < T; t++) c[t] += qs[r * T + t] * dqs[r * T + t];
    float inv = 1.0f / scale;
    for (int64_t t = 0; t < T; t++) c[t] *= inv;
    for (int64_t r = 0; r < d; r++)
        for (int64_t t = 0; t < T; t++) {
            float g = qs[r * T + t] * (dqs[r * T + t] - c[t]);
            dq[r * ldq + t] = add ? dq[r * ldq + t] + g : g;
        }
}

/* dk (+)= ks ⊙ (dks − rowdot) */
T_SIMD static void la_k_backward(const float *ks, const float *dks, const float *rowdot, int64_t d, int64_t T,
                                 float *dk, int64_t ldk, bool add) {
    for (int64_t r = 0; r < d; r++)
        for (int64_t t = 0; t < T; t++) {
            float g = ks[r * T + t] * (dks[r * T + t] - rowdot[r]);
            dk[r * ldk + t] = add ? dk[r * ldk + t] + g : g;
        }
}

/* One (image, head): the k statistics, ctx, and out [d, N] (rows N apart). scratch: d·LA_TILE floats. */
static void la_head_forward(const LaCore *c, const float *q, const float *k, const float *v, float *ctx, float *kmax,
                            float *krs, float *out, float *scratch) {
    const int64_t d = c->d, N = c->N;
    for (int64_t r = 0; r < d; r++) la_row_stats(k + r * N, N, &kmax[r], &krs[r]);
    for (int64_t n0 = 0; n0 < N; n0 += LA_TILE) {
        int64_t T = N - n0 < LA_TILE ? N - n0 : LA_TILE;
        la_k_tile(k + n0, N, d, T, kmax, krs, scratch);
        t_sgemm(false, true, d, d, T, 1.0f / (float)N, scratch, T, v + n0, N, n0 ? 1.0f : 0.0f, ctx, d);
    }
    for (int64_t n0 = 0; n0 < N; n0 += LA_TILE) {
        int64_t T = N - n0 < LA_TILE ? N - n0 : LA_TILE;
        la_q_tile(q + n0, N, d, T, c->scale, scratch);
        t_sgemm(true, false, d, T, d, 1.0f, ctx, d, scratch, T, 0.0f, out + n0, N);
    }
}

/* One (image, head) of the backward; dq, dk, dv rows N apart, stored (add = false) or added.
 * scratch: 2·d·LA_TILE + 2·d·d floats. */
static void la_head_backward(const LaCore *c, const float *q, const float *k, const float *v, const float *ctx,
                             const float *kmax, const float *krs, const float *dout, float *dq, float *dk, float *dv,
                             bool add, float *scratch) {
    const int64_t d = c->d, N = c->N;
    float *t1 = scratch, *t2 = scratch + d * LA_TILE, *dctx = t2 + d * LA_TILE, *rowdot = dctx + d * d;
    for (int64_t n0 = 0; n0 < N; n0 += LA_TILE) {
        int64_t T = N - n0 < LA_TILE ? N - n0 : LA_TILE;
        la_q_tile(q + n0, N, d, T, c->scale, t1);
        t_sgemm(false, true, d, d, T, 1.0f, t1, T, dout + n0, N, n0 ? 1.0f : 0.0f, dctx, d);   /* qs · doutᵀ */
        t_sgemm(false, false, d, T, d, 1.0f, ctx, d, dout + n0, N, 0.0f, t2, T);                 /* ctx · dout */
        la_q_backward(t1, t2, d, T, c->scale, dq + n0, N, add);
    }
    for (int64_t r = 0; r < d; r++) {
        float s = 0.0f;
        for (int64_t e = 0; e < d; e++) s += dctx[r * d + e] * ctx[r * d + e];
        rowdot[r] = s;
    }
    for (int64_t n0 = 0; n0 < N; n0 += LA_TILE) {
        int64_t T = N - n0 < LA_TILE ? N - n0 : LA_TILE;
        la_k_tile(k + n0, N, d, T, kmax, krs, t1);
        t_sgemm(false, false, d, T, d, 1.0f / (float)N, dctx, d, v + n0, N, 0.0f, t2, T);       /* dctx · v / N */
        la_k_backward(t1, t2, rowdot, d, T, dk + n0, N, add);
        t_sgemm(true, false, d, T, d, 1.0f / (float)N, dctx, d, t1, T, add ? 1.0f : 0.0f, dv + n0, N);
    }
}

static int64_t la_scratch_floats(int64_t d) { return 2 * d * LA_TILE + 2 * d * d; }

static void la_core_backward(TNode *n) {
    Tensor *qkv = n->in[0], *y = n->out;
    const LaCore *c = n->saved;
    bool add;
    float *g = t_grad_buf_overwrite(qkv, &add);
    add = !add;
    const int64_t hd = c->heads * c->d, BH = c->B * c->heads;
    int threads = t_par_threads();
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(threads * la_scratch_floats(c->d)));
    const float *x = qkv->data, *dy = y->grad;
    /* every pair in one parallel loop, never with `if`: a GEMM then always runs on its own thread, so the
     * results do not depend on the thread count */
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / c->heads, h = bh % c->heads, q0 = (b * 3 * hd + h * c->d) * c->N;
        la_head_backward(c, x + q0, x + q0 + hd * c->N, x + q0 + 2 * hd * c->N, c->ctx + bh * c->d * c->d,
                         c->kmax + bh * c->d, c->krs + bh * c->d, dy + (b * hd + h * c->d) * c->N, g + q0,
                         g + q0 + hd * c->N, g + q0 + 2 * hd * c->N, add,
                         scratch + (int64_t)t_par_tid() * la_scratch_floats(c->d));
    }
}

Tensor *nn_linear_attention_core(Tensor *qkv, int heads, int dim_head) {
    if (!qkv) return NULL;
    char sq[96];
    if (qkv->ndim != 4 || heads < 1 || dim_head < 1 || qkv->shape[1] != 3 * (int64_t)heads * dim_head ||
        qkv->shape[2] * qkv->shape[3] < 1) {
        t_error("linear_attention", "qkv %s must be [B, 3·%d·%d, H, W]", t_shape_str(qkv, sq, sizeof sq), heads,
                dim_head);
        return NULL;
    }
    qkv = t_contiguous(qkv);
    LaCore *c = t_arena_alloc(sizeof *c);
    *c = (LaCore){.B = qkv->shape[0], .heads = heads, .d = dim_head, .N = qkv->shape[2] * qkv->shape[3],
                  .scale = 1.0f / sqrtf((float)dim_head)};
    const int64_t hd = (int64_t)heads * dim_head, BH = c->B * heads;
    Tensor *y = t_new(T_SHAPE(c->B, hd, qkv->shape[2], qkv->shape[3]));
    c->ctx = t_arena_alloc(sizeof(float) * (size_t)(BH * c->d * c->d));
    c->kmax = t_arena_alloc(sizeof(float) * (size_t)(BH * c->d));
    c->krs = t_arena_alloc(sizeof(float) * (size_t)(BH * c->d));
    int threads = t_par_threads();
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(threads * la_scratch_floats(c->d)));
    const float *x = qkv->data;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / heads, h = bh % heads, q0 = (b * 3 * hd + h * c->d) * c->N;
        la_head_forward(c, x + q0, x + q0 + hd * c->N, x + q0 + 2 * hd * c->N, c->ctx + bh * c->d * c->d,
                        c->kmax + bh * c->d, c->krs + bh * c->d, y->data + (b * hd + h * c->d) * c->N,
                        scratch + (int64_t)t_par_tid() * la_scratch_floats(c->d));
    }
    TNode *node = t_record("linear_attention", y, la_core_backward, 1, &qkv);
    if (node) node->saved = c;
    return y;
}

void linear_attn_block_init(LinearAttnBlock *b, ParamSet *ps, const char *prefix, int64_t dim, TRng *r) {
    char p[256];
    /* PreNorm registers fn before norm */
    linear_attention_init(&b->attn, ps, nn_join(p, sizeof p, prefix, "fn.fn"), dim, 4, 32, r);
    channel_layernorm_init(&b->norm, ps, nn_join(p, sizeof p, prefix, "fn.norm"), dim);
}

Tensor *linear_attn_block_forward(const LinearAttnBlock *b, Tensor *x) {
    return t_add(linear_attention_forward(&b->attn, channel_layernorm_forward(&b->norm, x)), x);
}
