/* Fused scaled-dot-product attention: out = softmax(scale * q k^T + mask) v, one tape node for all heads.
 * Each (batch, head) pair is independent, so forward and backward run in parallel over B*H with
 * single-threaded small GEMMs inside (OpenBLAS's OpenMP build runs serially inside a parallel region).
 * q, k, v may be strided views (e.g. a permuted [B, L, H, D] projection): each head's [L, D] matrix
 * goes to sgemm through its leading dimension or a transpose flag, never copied, as long as one of its
 * two last axes has unit stride. The forward saves the probabilities P [B, H, Lq, Lk]. */
#include <cblas.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/softmax_rows.h"

/* One head's [rows, cols] matrix of a 4-D tensor as sgemm sees it. */
typedef struct {
    const float *base;
    int64_t sb, sh;     /* strides of the batch and head axes */
    bool trans;         /* stored column-major (the transpose is row-major) */
    int ld;
} HeadMat;

static bool head_layout(const Tensor *x, HeadMat *m) {
    int64_t r = x->shape[2], c = x->shape[3], sr = x->stride[2], sc = x->stride[3];
    m->base = x->data;
    m->sb = x->stride[0];
    m->sh = x->stride[1];
    if ((sc == 1 || c == 1) && (sr >= c || r == 1)) {
        m->trans = false;
        m->ld = (int)(r == 1 || sr < 1 ? (c > 0 ? c : 1) : sr);
        return true;
    }
    if ((sr == 1 || r == 1) && (sc >= r || c == 1)) {
        m->trans = true;
        m->ld = (int)(c == 1 || sc < 1 ? (r > 0 ? r : 1) : sc);
        return true;
    }
    return false;
}

static inline const float *head_ptr(const HeadMat *m, int64_t b, int64_t h) { return m->base + b * m->sb + h * m->sh; }
static inline CBLAS_TRANSPOSE as_is(const HeadMat *m) { return m->trans ? CblasTrans : CblasNoTrans; }
static inline CBLAS_TRANSPOSE flipped(const HeadMat *m) { return m->trans ? CblasNoTrans : CblasTrans; }

typedef struct {
    HeadMat q, k, v;
    float *p;           /* probabilities [B*H, Lq, Lk] */
    const float *mask;  /* contiguous [Lq, Lk] or NULL */
    int64_t B, H, Lq, Lk, D, Dv;
    float scale;
} AttnSaved;

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static void attention_backward(TNode *n) {
    const AttnSaved *s = n->saved;
    Tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *mask = n->n_in > 3 ? n->in[3] : NULL;
    int64_t BH = s->B * s->H, Lq = s->Lq, Lk = s->Lk, D = s->D, Dv = s->Dv;
    bool gq = t_needs_grad(q), gk = t_needs_grad(k), gv = t_needs_grad(v), gm = t_needs_grad(mask);
    float *dq = gq ? t_grad_buf(q) : NULL, *dk = gk ? t_grad_buf(k) : NULL, *dv = gv ? t_grad_buf(v) : NULL;
    /* per-thread dS scratch, or one dS per head when the mask needs its gradient (summed below in order) */
    float *ds_all = t_arena_alloc(sizeof(float) * (size_t)((gm ? BH : max_threads()) * Lq * Lk));
    if (!ds_all || (gq && !dq) || (gk && !dk) || (gv && !dv)) return;   /* out of memory: t_backward reports it */
    const float *dout = n->out->grad;
#pragma omp parallel for if (BH > 1) schedule(dynamic, 4)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / s->H, h = bh % s->H;
        const float *P = s->p + bh * Lq * Lk, *dO = dout + bh * Lq * Dv;
        const float *Q = head_ptr(&s->q, b, h), *K = head_ptr(&s->k, b, h), *V = head_ptr(&s->v, b, h);
        if (gv) /* dV[Lk,Dv] += P^T dO */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Lk, (int)Dv, (int)Lq, 1.0f, P, (int)Lk, dO,
                        (int)Dv, 1.0f, dv + bh * Lk * Dv, (int)Dv);
        if (!(gq || gk || gm)) continue;
        float *dS = ds_all + (gm ? bh : thread_id()) * Lq * Lk;
        /* dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) in place */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, flipped(&s->v), (int)Lq, (int)Lk, (int)Dv, 1.0f, dO, (int)Dv, V,
                    s->v.ld, 0.0f, dS, (int)Lk);
        for (int64_t i = 0; i < Lq; i++) t_softmax_row_backward(dS + i * Lk, P + i * Lk, dS + i * Lk, Lk, 0);
        if (gq) /* dQ[Lq,D] += scale * dS K */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, as_is(&s->k), (int)Lq, (int)D, (int)Lk, s->scale, dS, (int)Lk,
                        K, s->k.ld, 1.0f, dq + bh * Lq * D, (int)D);
        if (gk) /* dK[Lk,D] += scale * dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasTrans, as_is(&s->q), (int)Lk, (int)D, (int)Lq, s->scale, dS, (int)Lk, Q,
                        s->q.ld, 1.0f, dk + bh * Lk * D, (int)D);
    }
    if (gm) {
        float *dm = t_grad_buf(mask);
        if (!dm) return;   /* out of memory: t_backward reports it */
        int64_t n_m = Lq * Lk;
#pragma omp parallel for if (n_m * BH > T_PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n_m; i++) {
            float acc = 0.0f;
            for (int64_t bh = 0; bh < BH; bh++) acc += ds_all[bh * n_m + i];
            dm[i] += acc;
        }
    }
}

Tensor *t_attention(Tensor *q, Tensor *k, Tensor *v, Tensor *mask, float scale) {
    T_NONNULL(q, k, v);
    char sq[96], sk[96], sv[96], sm[96];
    t_shape_str(q, sq, sizeof sq);
    t_shape_str(k, sk, sizeof sk);
    t_shape_str(v, sv, sizeof sv);
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] ||
        k->shape[1] != q->shape[1] || v->shape[1] != q->shape[1] || k->shape[3] != q->shape[3] ||
        v->shape[2] != k->shape[2]) {
        t_error("attention", "q %s, k %s, v %s: want q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv]", sq, sk, sv);
        return NULL;
    }
    int64_t B = q->shape[0], H = q->shape[1], Lq = q->shape[2], D = q->shape[3], Lk = k->shape[2], Dv = v->shape[3];
    if (mask) {
        bool ok = mask->ndim >= 2 && mask->shape[mask->ndim - 2] == Lq && mask->shape[mask->ndim - 1] == Lk &&
                  t_numel(mask) == Lq * Lk;
        if (!ok) {
            t_error("attention", "mask %s does not match [Lq, Lk] = [%lld, %lld] (q %s, k %s)",
                    t_shape_str(mask, sm, sizeof sm), (long long)Lq, (long long)Lk, sq, sk);
            return NULL;
        }
        mask = t_contiguous(mask);
        T_NONNULL(mask);
    }
    AttnSaved s = {.B = B, .H = H, .Lq = Lq, .Lk = Lk, .D = D, .Dv = Dv, .scale = scale};
    if (!head_layout(q, &s.q)) q = t_contiguous(q), head_layout(q, &s.q);
    if (!head_layout(k, &s.k)) k = t_contiguous(k), head_layout(k, &s.k);
    if (!head_layout(v, &s.v)) v = t_contiguous(v), head_layout(v, &s.v);
    s.mask = mask ? mask->data : NULL;
    Tensor *out = t_new(T_SHAPE(B, H, Lq, Dv));
    T_NONNULL(out);
    int64_t BH = B * H;
    Tensor *in[4] = {q, k, v, mask};
    bool keep = t_grad_enabled() && (t_needs_grad(q) || t_needs_grad(k) || t_needs_grad(v) || t_needs_grad(mask));
    /* the probabilities are saved for backward; without a tape each thread reuses one [Lq, Lk] buffer */
    s.p = t_arena_alloc(sizeof(float) * (size_t)((keep ? BH : max_threads()) * Lq * Lk));
    if (!s.p) return NULL;
    if (Lk == 0) {
        for (int64_t i = 0; i < t_numel(out); i++) out->data[i] = 0.0f;
    } else {
#pragma omp parallel for if (BH > 1) schedule(dynamic, 4)
        for (int64_t bh = 0; bh < BH; bh++) {
            int64_t b = bh / H, h = bh % H;
            float *P = s.p + (keep ? bh : thread_id()) * Lq * Lk;
            /* S = scale * Q K^T */
            cblas_sgemm(CblasRowMajor, as_is(&s.q), flipped(&s.k), (int)Lq, (int)Lk, (int)D, scale,
                        head_ptr(&s.q, b, h), s.q.ld, head_ptr(&s.k, b, h), s.k.ld, 0.0f, P, (int)Lk);
            for (int64_t i = 0; i < Lq; i++) {
                float *row = P + i * Lk;
                if (s.mask)
                    for (int64_t j = 0; j < Lk; j++) row[j] += s.mask[i * Lk + j];
                t_softmax_row(row, row, Lk);
            }
            /* O = P V */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, as_is(&s.v), (int)Lq, (int)Dv, (int)Lk, 1.0f, P, (int)Lk,
                        head_ptr(&s.v, b, h), s.v.ld, 0.0f, out->data + bh * Lq * Dv, (int)Dv);
        }
    }
    TNode *n = keep ? t_record("attention", out, attention_backward, mask ? 4 : 3, in) : NULL;
    if (n) {
        AttnSaved *sp = t_arena_alloc(sizeof *sp);
        if (sp) *sp = s;   /* else t_arena_failed(): the backward does not run */
        n->saved = sp;
    }
    return out;
}
