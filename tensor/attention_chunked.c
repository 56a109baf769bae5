/* Blocked attention with an online softmax (see attention_chunked.h). Work items are (batch·head, block)
 * pairs run in parallel; inside one, small row-major GEMMs go to sgemm single-threaded (OpenBLAS's OpenMP
 * build runs serially inside a parallel region). */
#include "tensor/attention_chunked.h"

#include <cblas.h>
#include <math.h>

#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/par_reduce.h"

static int64_t chunk_min = T_ATTN_CHUNK_MIN;

int64_t t_attention_set_chunk_min(int64_t lq_times_lk) {
    int64_t prev = chunk_min;
    chunk_min = lq_times_lk;
    return prev;
}

typedef struct {
    int64_t B, H, Lq, Lk, D, Dv;
    int bq, bk;
    float scale;
    float *lse;    /* [B·H, Lq] log-sum-exp of each row's scaled scores */
} ChunkSaved;

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* S[nq, nk] (row stride ldS) = scale · Q[nq, D] K[nk, D]ᵀ */
static void scores(const ChunkSaved *s, const float *Q, const float *K, int64_t nq, int64_t nk, float *S, int ldS) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)s->D, s->scale, Q, (int)s->D, K,
                (int)s->D, 0.0f, S, ldS);
}

/* P = exp(S − lse_i) row by row: the probabilities of a block, recomputed from the saved log-sum-exp */
static void probs_from_lse(float *S, int ldS, int64_t nq, int64_t nk, const float *lse) {
    for (int64_t i = 0; i < nq; i++)
        for (int64_t j = 0; j < nk; j++) S[i * ldS + j] = expf(S[i * ldS + j] - lse[i]);
}

/* One query block of one head: O = softmax(scale Q Kᵀ) V with the running maximum m and sum l per row. */
static void forward_block(const ChunkSaved *s, const float *Q, const float *K, const float *V, int64_t nq, float *O,
                          float *lse, float *S, float *m, float *l) {
    int64_t Lk = s->Lk, Dv = s->Dv;
    for (int64_t i = 0; i < nq; i++) m[i] = -INFINITY, l[i] = 0.0f;
    for (int64_t i = 0; i < nq * Dv; i++) O[i] = 0.0f;
    for (int64_t k0 = 0; k0 < Lk; k0 += s->bk) {
        int64_t nk = min64(s->bk, Lk - k0);
        scores(s, Q, K + k0 * s->D, nq, nk, S, s->bk);
        for (int64_t i = 0; i < nq; i++) {
            float *row = S + i * s->bk, mx = m[i];
            for (int64_t j = 0; j < nk; j++) mx = row[j] > mx ? row[j] : mx;
            /* a row of -inf scores (infinite inputs) keeps weight 0 instead of exp(-inf + inf) = NaN */
            float base = mx == -INFINITY ? 0.0f : mx, alpha = m[i] == -INFINITY ? 0.0f : expf(m[i] - base), sum = 0.0f;
            for (int64_t j = 0; j < nk; j++) sum += row[j] = expf(row[j] - base);
            l[i] = l[i] * alpha + sum;
            m[i] = mx;
            if (alpha != 1.0f)
                for (int64_t d = 0; d < Dv; d++) O[i * Dv + d] *= alpha;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)Dv, (int)nk, 1.0f, S, s->bk,
                    V + k0 * Dv, (int)Dv, 1.0f, O, (int)Dv);
    }
    for (int64_t i = 0; i < nq; i++) {
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        for (int64_t d = 0; d < Dv; d++) O[i * Dv + d] *= inv;
        lse[i] = l[i] > 0.0f ? m[i] + logf(l[i]) : INFINITY;   /* INFINITY: every probability exp(S − lse) = 0 */
    }
}

/* dS = P ⊙ (dO Vᵀ − Δ) for a [nq, nk] block whose probabilities P are in S (overwritten by dS); dP is scratch */
static void block_dscores(const ChunkSaved *s, const float *dO, const float *V, const float *delta, int64_t nq,
                          int64_t nk, float *S, float *dP) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)s->Dv, 1.0f, dO, (int)s->Dv, V,
                (int)s->Dv, 0.0f, dP, s->bk);
    for (int64_t i = 0; i < nq; i++)
        for (int64_t j = 0; j < nk; j++) S[i * s->bk + j] *= dP[i * s->bk + j] - delta[i];
}

static void chunked_backward(TNode *n) {
    const ChunkSaved *s = n->saved;
    Tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    bool gq = t_needs_grad(q), gk = t_needs_grad(k), gv = t_needs_grad(v);
    int64_t BH = s->B * s->H, Lq = s->Lq, Lk = s->Lk, D = s->D, Dv = s->Dv;
    if (Lk == 0 || Lq == 0) return;
    float *dq = gq ? t_grad_buf(q) : NULL, *dk = gk ? t_grad_buf(k) : NULL, *dv = gv ? t_grad_buf(v) : NULL;
    const float *dout = n->out->grad, *out = n->out->data;
    /* Δ_i = Σ_d dO_id O_id, the row term of the softmax backward */
    float *delta = t_arena_alloc(sizeof(float) * (size_t)(BH * Lq));
    size_t per = (size_t)2 * s->bq * s->bk;
    float *work = t_arena_alloc(sizeof(float) * per * (size_t)t_par_threads());
    if (!delta || !work || (gq && !dq) || (gk && !dk) || (gv && !dv)) return;   /* out of memory: reported */
#pragma omp parallel for if (BH * Lq * Dv > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < BH * Lq; r++) {
        float acc = 0.0f;
        for (int64_t d = 0; d < Dv; d++) acc += dout[r * Dv + d] * out[r * Dv + d];
        delta[r] = acc;
    }
    int64_t nqb = (Lq + s->bq - 1) / s->bq, nkb = (Lk + s->bk - 1) / s->bk;
    if (gq) {
#pragma omp parallel for if (BH * nqb > 1) schedule(dynamic, 1)
        for (int64_t task = 0; task < BH * nqb; task++) {
            int64_t bh = task / nqb, q0 = (task % nqb) * s->bq, nq = min64(s->bq, Lq - q0);
            float *S = work + per * (size_t)t_par_tid(), *dP = S + (size_t)s->bq * s->bk;
            const float *Q = q->data + (bh * Lq + q0) * D, *dO = dout + (bh * Lq + q0) * Dv;
            for (int64_t k0 = 0; k0 < Lk; k0 += s->bk) {
                int64_t nk = min64(s->bk, Lk - k0);
                const float *K = k->data + (bh * Lk + k0) * D, *V = v->data + (bh * Lk + k0) * Dv;
                scores(s, Q, K, nq, nk, S, s->bk);
                probs_from_lse(S, s->bk, nq, nk, s->lse + bh * Lq + q0);
                block_dscores(s, dO, V, delta + bh * Lq + q0, nq, nk, S, dP);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)nk, s->scale, S, s->bk, K,
                            (int)D, 1.0f, dq + (bh * Lq + q0) * D, (int)D);
            }
        }
    }
    if (gk || gv) {
#pragma omp parallel for if (BH * nkb > 1) schedule(dynamic, 1)
        for (int64_t task = 0; task < BH * nkb; task++) {
            int64_t bh = task / nkb, k0 = (task % nkb) * s->bk, nk = min64(s->bk, Lk - k0);
            float *S = work + per * (size_t)t_par_tid(), *dP = S + (size_t)s->bq * s->bk;
            const float *K = k->data + (bh * Lk + k0) * D, *V = v->data + (bh * Lk + k0) * Dv;
            for (int64_t q0 = 0; q0 < Lq; q0 += s->bq) {
                int64_t nq = min64(s->bq, Lq - q0);
                const float *Q = q->data + (bh * Lq + q0) * D, *dO = dout + (bh * Lq + q0) * Dv;
                scores(s, Q, K, nq, nk, S, s->bk);
                probs_from_lse(S, s->bk, nq, nk, s->lse + bh * Lq + q0);
                if (gv) /* dV[nk, Dv] += Pᵀ dO */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)Dv, (int)nq, 1.0f, S, s->bk, dO,
                                (int)Dv, 1.0f, dv + (bh * Lk + k0) * Dv, (int)Dv);
                if (!gk) continue;
                block_dscores(s, dO, V, delta + bh * Lq + q0, nq, nk, S, dP);
                /* dK[nk, D] += scale · dSᵀ Q */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)D, (int)nq, s->scale, S, s->bk, Q,
                            (int)D, 1.0f, dk + (bh * Lk + k0) * D, (int)D);
            }
        }
    }
}

Tensor *t_attention_chunked(Tensor *q, Tensor *k, Tensor *v, float scale, int block_q, int block_k) {
    T_NONNULL(q, k, v);
    char sq[96], sk[96], sv[96];
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] ||
        k->shape[1] != q->shape[1] || v->shape[1] != q->shape[1] || k->shape[3] != q->shape[3] ||
        v->shape[2] != k->shape[2]) {
        t_error("attention_chunked", "q %s, k %s, v %s: want q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv]",
                t_shape_str(q, sq, sizeof sq), t_shape_str(k, sk, sizeof sk), t_shape_str(v, sv, sizeof sv));
        return NULL;
    }
    q = t_contiguous(q), k = t_contiguous(k), v = t_contiguous(v);
    T_NONNULL(q);
    ChunkSaved s = {.B = q->shape[0], .H = q->shape[1], .Lq = q->shape[2], .Lk = k->shape[2], .D = q->shape[3],
                    .Dv = v->shape[3], .scale = scale};
    s.bq = block_q > 0 ? block_q : T_ATTN_BLOCK_Q;
    s.bk = block_k > 0 ? block_k : T_ATTN_BLOCK_K;
    if (s.Lq > 0 && s.bq > s.Lq) s.bq = (int)s.Lq;
    if (s.Lk > 0 && s.bk > s.Lk) s.bk = (int)s.Lk;
    int64_t BH = s.B * s.H, nqb = (s.Lq + s.bq - 1) / s.bq;
    Tensor *out = t_new(T_SHAPE(s.B, s.H, s.Lq, s.Dv));
    T_NONNULL(out);
    s.lse = t_arena_alloc(sizeof(float) * (size_t)(BH * s.Lq > 0 ? BH * s.Lq : 1));
    size_t per = (size_t)s.bq * s.bk + (size_t)2 * s.bq;
    float *work = t_arena_alloc(sizeof(float) * per * (size_t)t_par_threads());
    if (!s.lse || !work) return NULL;
#pragma omp parallel for if (BH * nqb > 1) schedule(dynamic, 1)
    for (int64_t task = 0; task < BH * nqb; task++) {
        int64_t bh = task / nqb, q0 = (task % nqb) * s.bq, nq = min64(s.bq, s.Lq - q0);
        float *S = work + per * (size_t)t_par_tid(), *m = S + (size_t)s.bq * s.bk, *l = m + s.bq;
        forward_block(&s, q->data + (bh * s.Lq + q0) * s.D, k->data + bh * s.Lk * s.D, v->data + bh * s.Lk * s.Dv, nq,
                      out->data + (bh * s.Lq + q0) * s.Dv, s.lse + bh * s.Lq + q0, S, m, l);
    }
    Tensor *in[3] = {q, k, v};
    TNode *n = t_record("attention_chunked", out, chunked_backward, 3, in);
    if (n) {
        ChunkSaved *sp = t_arena_alloc(sizeof *sp);
        if (sp) *sp = s;   /* else t_arena_failed(): the backward does not run */
        n->saved = sp;
    }
    return out;
}

Tensor *t_attention_auto(Tensor *q, Tensor *k, Tensor *v, float scale) {
    T_NONNULL(q, k, v);
    bool taped = t_grad_enabled() && (t_needs_grad(q) || t_needs_grad(k) || t_needs_grad(v));
    bool large = q->ndim == 4 && k->ndim == 4 && q->shape[2] * k->shape[2] >= chunk_min;
    return !taped && large ? t_attention_chunked(q, k, v, scale, 0, 0) : t_attention(q, k, v, NULL, scale);
}
