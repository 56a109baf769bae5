/* LinearAttention (module_util.LinearAttention: softmax over channels for q, over positions for k) as one op,
 * and the U-Net's whole Residual(PreNorm(LinearAttention)) block as one op (tensor/ops_fused.h). Both run the
 * same per-(image, head) kernels below. */
#include <math.h>

#include "tensor/channel_norm.h"
#include "tensor/fused_linear.h"
#include "tensor/gemm.h"
#include "tensor/internal.h"
#include "tensor/ops_fused.h"
#include "tensor/par_reduce.h"
#include "tensor/simd.h"
#include "tensor/vmath.h"

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

/* One (image, head): the k statistics and ctx. scratch: d·LA_TILE floats. */
static void la_head_ctx(const LaCore *c, const float *k, const float *v, float *ctx, float *kmax, float *krs,
                        float *scratch) {
    const int64_t d = c->d, N = c->N;
    for (int64_t r = 0; r < d; r++) la_row_stats(k + r * N, N, &kmax[r], &krs[r]);
    for (int64_t n0 = 0; n0 < N; n0 += LA_TILE) {
        int64_t T = N - n0 < LA_TILE ? N - n0 : LA_TILE;
        la_k_tile(k + n0, N, d, T, kmax, krs, scratch);
        t_sgemm(false, true, d, d, T, 1.0f / (float)N, scratch, T, v + n0, N, n0 ? 1.0f : 0.0f, ctx, d);
    }
}

/* One (image, head): out [d, N] (rows N apart) from q and ctx. scratch: d·LA_TILE floats. */
static void la_head_out(const LaCore *c, const float *q, const float *ctx, float *out, float *scratch) {
    const int64_t d = c->d, N = c->N;
    for (int64_t n0 = 0; n0 < N; n0 += LA_TILE) {
        int64_t T = N - n0 < LA_TILE ? N - n0 : LA_TILE;
        la_q_tile(q + n0, N, d, T, c->scale, scratch);
        t_sgemm(true, false, d, T, d, 1.0f, ctx, d, scratch, T, 0.0f, out + n0, N);
    }
}

static void la_head_forward(const LaCore *c, const float *q, const float *k, const float *v, float *ctx, float *kmax,
                            float *krs, float *out, float *scratch) {
    la_head_ctx(c, k, v, ctx, kmax, krs, scratch);
    la_head_out(c, q, ctx, out, scratch);
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
    if (!g) return;   /* out of memory: t_backward reports it */
    add = !add;
    const int64_t hd = c->heads * c->d, BH = c->B * c->heads;
    int threads = t_par_threads();
    size_t mark = t_arena_mark();   /* scratch after the gradient buffer (tensor/tensor.h) */
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(threads * la_scratch_floats(c->d)));
    if (!scratch) {
        t_arena_release(mark);
        return;
    }
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
    t_arena_release(mark);
}

Tensor *t_linear_attention(Tensor *qkv, int heads, int dim_head) {
    T_NONNULL(qkv);
    char sq[96];
    if (qkv->ndim != 4 || heads < 1 || dim_head < 1 || qkv->shape[1] != 3 * (int64_t)heads * dim_head ||
        qkv->shape[2] * qkv->shape[3] < 1) {
        t_error("linear_attention", "qkv %s must be [B, 3·%d·%d, H, W]", t_shape_str(qkv, sq, sizeof sq), heads,
                dim_head);
        return NULL;
    }
    qkv = t_contiguous(qkv);
    T_NONNULL(qkv);
    LaCore *c = t_arena_alloc(sizeof *c);
    if (!c) return NULL;
    *c = (LaCore){.B = qkv->shape[0], .heads = heads, .d = dim_head, .N = qkv->shape[2] * qkv->shape[3],
                  .scale = 1.0f / sqrtf((float)dim_head)};
    const int64_t hd = (int64_t)heads * dim_head, BH = c->B * heads;
    Tensor *y = t_new(T_SHAPE(c->B, hd, qkv->shape[2], qkv->shape[3]));
    T_NONNULL(y);
    /* ctx and the k statistics are saved for backward (and needed by the forward itself) */
    c->ctx = t_arena_alloc(sizeof(float) * (size_t)(BH * c->d * c->d));
    c->kmax = t_arena_alloc(sizeof(float) * (size_t)(BH * c->d));
    c->krs = t_arena_alloc(sizeof(float) * (size_t)(BH * c->d));
    if (!c->ctx || !c->kmax || !c->krs) return NULL;   /* out of memory: reported */
    size_t mark = t_arena_mark();   /* the per-thread tiles are scratch */
    int threads = t_par_threads();
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(threads * la_scratch_floats(c->d)));
    if (!scratch) {
        t_arena_release(mark);
        return NULL;
    }
    const float *x = qkv->data;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / heads, h = bh % heads, q0 = (b * 3 * hd + h * c->d) * c->N;
        la_head_forward(c, x + q0, x + q0 + hd * c->N, x + q0 + 2 * hd * c->N, c->ctx + bh * c->d * c->d,
                        c->kmax + bh * c->d, c->krs + bh * c->d, y->data + (b * hd + h * c->d) * c->N,
                        scratch + (int64_t)t_par_tid() * la_scratch_floats(c->d));
    }
    t_arena_release(mark);
    TNode *node = t_record("linear_attention", y, la_core_backward, 1, &qkv);
    if (node) node->saved = c;
    return y;
}

/* ---------------------------------------------------------------- the whole block as one op
 * y = x + LN_out(to_out(core(to_qkv(LN_pre(x))))), image by image. Only x, the norms' statistics and the
 * core's ctx/k statistics are kept: the 3·heads·d-channel qkv, the core's output and the norms' outputs
 * are workspace, recomputed in backward (two 1×1 convolutions and the q side of the core, ≈1.5% of a
 * training step) instead of being kept with their gradients (≈1 GB of a batch-4 128² U-Net step). */

typedef struct {
    LaCore core;            /* over all images; ctx/kmax/krs per (image, head) */
    int64_t C;
    float eps1, eps2;
    float *mean1, *rstd1;   /* [B, N]: LN_pre */
    float *mean2, *rstd2;   /* [B, N]: LN_out */
} LaBlock;

/* Inputs of the tape node, in order. */
enum { LB_X, LB_G1, LB_WQKV, LB_WOUT, LB_BOUT, LB_G2, LB_N };

/* The heads of image b in parallel: ctx (unless known) and out [hd, N] from qkv [3·hd, N]. */
static void la_image_core(const LaCore *c, int64_t b, const float *qkv, bool ctx_known, float *out, float *scratch) {
    const int64_t hd = c->heads * c->d, N = c->N;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t h = 0; h < c->heads; h++) {
        int64_t bh = b * c->heads + h;
        const float *q = qkv + h * c->d * N;
        float *ctx = c->ctx + bh * c->d * c->d, *sc = scratch + (int64_t)t_par_tid() * la_scratch_floats(c->d);
        if (!ctx_known) la_head_ctx(c, q + hd * N, q + 2 * hd * N, ctx, c->kmax + bh * c->d, c->krs + bh * c->d, sc);
        la_head_out(c, q, ctx, out + h * c->d * N, sc);
    }
}

/* qkv and the core's output of image b (LN_pre from saved statistics when known) */
static void lb_image_attention(const LaBlock *s, Tensor *const *in, int64_t b, bool stats_known, float *n1,
                               float *qkv, float *a, float *scratch) {
    const int64_t C = s->C, N = s->core.N, hd = s->core.heads * s->core.d;
    const float *xb = in[LB_X]->data + b * C * N, *g1 = in[LB_G1]->data;
    if (stats_known) t_cln_image_apply(xb, n1, g1, C, N, s->mean1 + b * N, s->rstd1 + b * N);
    else t_cln_image_forward(xb, n1, g1, C, N, s->eps1, s->mean1 ? s->mean1 + b * N : NULL,
                             s->rstd1 ? s->rstd1 + b * N : NULL, NULL);
    t_sgemm(false, false, 3 * hd, N, C, 1.0f, in[LB_WQKV]->data, C, n1, N, 0.0f, qkv, N);
    la_image_core(&s->core, b, qkv, stats_known, a, scratch);
}


static void la_block_backward(TNode *node) {
    const LaBlock *s = node->saved;
    Tensor **in = node->in, *y = node->out;
    const int64_t B = s->core.B, C = s->C, N = s->core.N, hd = s->core.heads * s->core.d;
    float *dx = t_grad_buf_if_needed(in[LB_X]), *dg1 = t_grad_buf_if_needed(in[LB_G1]);
    float *dwq = t_grad_buf_if_needed(in[LB_WQKV]), *dwo = t_grad_buf_if_needed(in[LB_WOUT]);
    float *dbo = t_grad_buf_if_needed(in[LB_BOUT]), *dg2 = t_grad_buf_if_needed(in[LB_G2]);
    float *const grads[LB_N] = {dx, dg1, dwq, dwo, dbo, dg2};
    for (int i = 0; i < LB_N; i++)
        if (t_needs_grad(in[i]) && !grads[i]) return;   /* out of memory: t_backward reports it */
    const float *wq = in[LB_WQKV]->data, *wo = in[LB_WOUT]->data, *bo = in[LB_BOUT] ? in[LB_BOUT]->data : NULL;
    size_t mark = t_arena_mark();   /* scratch after every gradient buffer (tensor/tensor.h) */
    float *n1 = t_arena_alloc(sizeof(float) * (size_t)(C * N)), *qkv = t_arena_alloc(sizeof(float) * (size_t)(3 * hd * N));
    float *a = t_arena_alloc(sizeof(float) * (size_t)(hd * N)), *o = t_arena_alloc(sizeof(float) * (size_t)(C * N));
    float *dout = t_arena_alloc(sizeof(float) * (size_t)(C * N)), *da = t_arena_alloc(sizeof(float) * (size_t)(hd * N));
    float *dqkv = t_arena_alloc(sizeof(float) * (size_t)(3 * hd * N)), *dn1 = t_arena_alloc(sizeof(float) * (size_t)(C * N));
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(t_par_threads() * la_scratch_floats(s->core.d)));
    if (!n1 || !qkv || !a || !o || !dout || !da || !dqkv || !dn1 || !scratch) {   /* out of memory: reported */
        t_arena_release(mark);
        return;
    }
    for (int64_t b = 0; b < B; b++) {
        const float *dy = y->grad + b * C * N, *xb = in[LB_X]->data + b * C * N;
        lb_image_attention(s, in, b, true, n1, qkv, a, scratch);
        t_sgemm_bias(false, false, C, N, hd, 1.0f, wo, hd, a, N, 0.0f, o, N, bo, NULL);
        t_cln_image_backward(o, dy, in[LB_G2]->data, s->mean2 + b * N, s->rstd2 + b * N, C, N, dout, false, dg2);
        if (dx) {   /* the residual */
            float *d = dx + b * C * N;
#pragma omp parallel for schedule(static) if (C * N > T_PAR_MIN)
            for (int64_t i = 0; i < C * N; i++) d[i] += dy[i];
        }
        if (dbo)   /* one thread per channel, pixels in order */
#pragma omp parallel for schedule(static) if (C * N > T_PAR_MIN)
            for (int64_t c = 0; c < C; c++) {
                float sum = 0.0f;
                for (int64_t p = 0; p < N; p++) sum += dout[c * N + p];
                dbo[c] += sum;
            }
        if (dwo) t_sgemm(false, true, C, hd, N, 1.0f, dout, N, a, N, 1.0f, dwo, hd);
        if (!dwq && !dx && !dg1) continue;
        t_sgemm(true, false, hd, N, C, 1.0f, wo, hd, dout, N, 0.0f, da, N);
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t h = 0; h < s->core.heads; h++) {
            const LaCore *c = &s->core;
            int64_t bh = b * c->heads + h, q0 = h * c->d * N;
            la_head_backward(c, qkv + q0, qkv + q0 + hd * N, qkv + q0 + 2 * hd * N, c->ctx + bh * c->d * c->d,
                             c->kmax + bh * c->d, c->krs + bh * c->d, da + h * c->d * N, dqkv + q0, dqkv + q0 + hd * N,
                             dqkv + q0 + 2 * hd * N, false, scratch + (int64_t)t_par_tid() * la_scratch_floats(c->d));
        }
        if (dwq) t_sgemm(false, true, 3 * hd, C, N, 1.0f, dqkv, N, n1, N, 1.0f, dwq, C);
        if (dx || dg1) {
            t_sgemm(true, false, C, N, 3 * hd, 1.0f, wq, C, dqkv, N, 0.0f, dn1, N);
            t_cln_image_backward(xb, dn1, in[LB_G1]->data, s->mean1 + b * N, s->rstd1 + b * N, C, N,
                                 dx ? dx + b * C * N : NULL, true, dg1);
        }
    }
    t_arena_release(mark);
}

/* w is a [rows, cols] matrix, possibly with the trailing 1×1 axes of a 1×1 convolution's weight */
static bool la_rows_of(const Tensor *w, int64_t rows, int64_t cols) {
    return w->ndim >= 2 && w->shape[0] == rows && t_numel(w) == rows * cols;
}

Tensor *t_linear_attention_block(const LinearAttnBlockArgs *a) {
    T_NONNULL(a->x, a->norm_g, a->w_qkv, a->w_out, a->out_g);
    Tensor *x = a->x;
    const int64_t hd = (int64_t)a->heads * a->dim_head;
    char sx[96], sq[96], so[96];
    if (x->ndim != 4 || a->heads < 1 || a->dim_head < 1 || x->shape[2] * x->shape[3] < 1 ||
        t_numel(a->norm_g) != x->shape[1] || t_numel(a->out_g) != x->shape[1] ||
        !la_rows_of(a->w_qkv, 3 * hd, x->shape[1]) || !la_rows_of(a->w_out, x->shape[1], hd) ||
        (a->b_out && t_numel(a->b_out) != x->shape[1])) {
        t_error("linear_attention", "input %s with %lld-channel norms, to_qkv %s, to_out %s%s, %d heads of %d",
                t_shape_str(x, sx, sizeof sx), (long long)t_numel(a->norm_g), t_shape_str(a->w_qkv, sq, sizeof sq),
                t_shape_str(a->w_out, so, sizeof so), a->b_out ? " with a bias" : "", a->heads, a->dim_head);
        return NULL;
    }
    x = t_contiguous(x);
    Tensor *g1 = t_contiguous(a->norm_g), *wq = t_contiguous(a->w_qkv), *wo = t_contiguous(a->w_out);
    Tensor *g2 = t_contiguous(a->out_g), *bo = a->b_out ? t_contiguous(a->b_out) : NULL;
    T_NONNULL(x, g1, wq, wo, g2);
    if (a->b_out && !bo) return NULL;
    Tensor *in[LB_N] = {x, g1, wq, wo, bo, g2};
    bool taped = false;
    if (t_grad_enabled())
        for (int i = 0; i < LB_N; i++) taped = taped || t_needs_grad(in[i]);
    const int64_t B = x->shape[0], C = x->shape[1], N = x->shape[2] * x->shape[3];
    Tensor *y = t_new(4, x->shape);
    T_NONNULL(y);
    LaBlock *s = t_arena_alloc(sizeof *s);
    if (!s) return NULL;
    *s = (LaBlock){.core = {.B = B, .heads = a->heads, .d = a->dim_head, .N = N,
                            .scale = 1.0f / sqrtf((float)a->dim_head)},
                   .C = C, .eps1 = a->norm_eps, .eps2 = a->out_eps};
    s->core.ctx = t_arena_alloc(sizeof(float) * (size_t)(B * a->heads * a->dim_head * a->dim_head));
    s->core.kmax = t_arena_alloc(sizeof(float) * (size_t)(B * hd));
    s->core.krs = t_arena_alloc(sizeof(float) * (size_t)(B * hd));
    if (!s->core.ctx || !s->core.kmax || !s->core.krs) return NULL;   /* out of memory: reported */
    if (taped) {   /* the norms' statistics are saved for backward */
        s->mean1 = t_arena_alloc(sizeof(float) * (size_t)(B * N));
        s->rstd1 = t_arena_alloc(sizeof(float) * (size_t)(B * N));
        s->mean2 = t_arena_alloc(sizeof(float) * (size_t)(B * N));
        s->rstd2 = t_arena_alloc(sizeof(float) * (size_t)(B * N));
        if (!s->mean1 || !s->rstd1 || !s->mean2 || !s->rstd2) return NULL;
    }
    size_t mark = t_arena_mark();   /* the rest is workspace */
    float *n1 = t_arena_alloc(sizeof(float) * (size_t)(C * N)), *qkv = t_arena_alloc(sizeof(float) * (size_t)(3 * hd * N));
    float *at = t_arena_alloc(sizeof(float) * (size_t)(hd * N)), *o = t_arena_alloc(sizeof(float) * (size_t)(C * N));
    float *scratch = t_arena_alloc(sizeof(float) * (size_t)(t_par_threads() * la_scratch_floats(a->dim_head)));
    if (!n1 || !qkv || !at || !o || !scratch) {
        t_arena_release(mark);
        return NULL;
    }
    for (int64_t b = 0; b < B; b++) {
        lb_image_attention(s, in, b, false, n1, qkv, at, scratch);
        t_sgemm_bias(false, false, C, N, hd, 1.0f, wo->data, hd, at, N, 0.0f, o, N, bo ? bo->data : NULL, NULL);
        t_cln_image_forward(o, y->data + b * C * N, g2->data, C, N, s->eps2, s->mean2 ? s->mean2 + b * N : NULL,
                            s->rstd2 ? s->rstd2 + b * N : NULL, x->data + b * C * N);
    }
    t_arena_release(mark);
    TNode *node = t_record("linear_attention_block", y, la_block_backward, LB_N, in);
    if (node) node->saved = s;
    return y;
}
