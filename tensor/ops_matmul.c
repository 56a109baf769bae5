/* Matrix products through t_sgemm (tensor/gemm.h): batched matmul with broadcast batch axes, and the fused linear.
 * A matrix operand whose last two axes are a transposed row-major matrix goes to sgemm with a transpose
 * flag, never copied. Many small products (attention-sized) run in parallel over the batch, each sgemm
 * single-threaded (OpenBLAS's OpenMP build runs serially inside a parallel region). */
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/internal.h"
#include "tensor/ops.h"

/* Below this many flops per product, a batch of products is spread over threads instead of BLAS. */
#define SMALL_GEMM_FLOPS (1 << 22)

typedef struct {
    const float *p;
    bool trans;         /* stored as the transpose of the logical [rows, cols] matrix */
    int64_t ld;
    int64_t bstride[T_MAX_DIMS];  /* per batch axis of the result's batch shape (0 = broadcast) */
} Mat;

/* Describes the last two axes of x as a BLAS matrix, or returns false if neither layout fits. */
static bool mat_layout(const Tensor *x, bool *trans, int64_t *ld) {
    int nd = x->ndim;
    int64_t r = x->shape[nd - 2], c = x->shape[nd - 1], sr = x->stride[nd - 2], sc = x->stride[nd - 1];
    if ((sc == 1 || c == 1) && (sr >= c || r == 1)) {
        *trans = false;
        *ld = (r == 1 && sr < c) ? c : sr;
        if (*ld < 1) *ld = 1;
        return true;
    }
    if ((sr == 1 || r == 1) && (sc >= r || c == 1)) {
        *trans = true;
        *ld = (c == 1 && sc < r) ? r : sc;
        if (*ld < 1) *ld = 1;
        return true;
    }
    return false;
}

/* C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] over the batch shape (nb axes). C never aliases across
 * batches unless accumulate_serial (a broadcast output gradient), in which case products run in order. */
static void gemm_batched(int nb, const int64_t *bshape, int64_t M, int64_t N, int64_t K, const Mat *A,
                         const Mat *B, float *C, int64_t ldc, const int64_t *cstride, float beta,
                         bool accumulate_serial) {
    int64_t batch = 1;
    for (int i = 0; i < nb; i++) batch *= bshape[i];
    if (M == 0 || N == 0) return;
    if (batch == 1) {   /* one product: let OpenBLAS thread it, outside any OpenMP construct */
        t_sgemm(A->trans, B->trans, M, N, K, 1.0f, A->p, A->ld, B->p, B->ld, beta, C, ldc);
        return;
    }
    bool small = (double)M * N * K * 2 < SMALL_GEMM_FLOPS && !accumulate_serial;
#pragma omp parallel for if (small) schedule(static)
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t rem = bi, oa = 0, ob = 0, oc = 0;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t k = rem % bshape[d];
            rem /= bshape[d];
            oa += k * A->bstride[d];
            ob += k * B->bstride[d];
            oc += k * cstride[d];
        }
        t_sgemm(A->trans, B->trans, M, N, K, 1.0f, A->p + oa, A->ld, B->p + ob, B->ld, beta, C + oc, ldc);
    }
}

typedef struct {
    int nb;                            /* batch rank of the result */
    int64_t bshape[T_MAX_DIMS];
    int64_t M, N, K;
} MMShape;

/* Batch strides of x against the result's batch shape (0 where x is broadcast or lacks the axis). */
static void batch_strides(const Tensor *x, int nb, const int64_t *bshape, int64_t *bs, const int64_t *strides) {
    int xb = x->ndim - 2;
    for (int i = 0; i < nb; i++) {
        int ix = xb - nb + i;
        bs[i] = (ix < 0 || x->shape[ix] == 1) ? 0 : strides[ix];
        (void)bshape;
    }
}

/* The other operand of a product, as a matrix read transposed (Bᵀ for dA, Aᵀ for dB). */
static Mat transposed_operand(const Tensor *x, const MMShape *s) {
    Mat m;
    mat_layout(x, &m.trans, &m.ld);
    m.trans = !m.trans;
    m.p = x->data;
    batch_strides(x, s->nb, s->bshape, m.bstride, x->stride);
    return m;
}

/* grad(x)[rows, cols] += L · R over the batch; x may be broadcast over batch axes, in which case the
 * products accumulate into the same gradient in order. */
static void grad_gemm(Tensor *x, const MMShape *s, int64_t rows, int64_t cols, int64_t inner, const Mat *L,
                      const Mat *R) {
    float *g = t_grad_buf(x);
    if (!g) return;   /* out of memory: t_backward reports it */
    int64_t gs[T_MAX_DIMS], cs[T_MAX_DIMS];
    t_contig_strides(x->ndim, x->shape, gs);
    batch_strides(x, s->nb, s->bshape, cs, gs);
    bool bcast = false;
    for (int i = 0; i < s->nb; i++) bcast |= (cs[i] == 0 && s->bshape[i] > 1);
    gemm_batched(s->nb, s->bshape, rows, cols, inner, L, R, g, cols, cs, 1.0f, bcast);
}

static void matmul_backward(TNode *n) {
    Tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    const MMShape *s = n->saved;
    /* dC as a row-major [M, N] per batch */
    Mat dC = {out->grad, false, s->N, {0}};
    int64_t ocs[T_MAX_DIMS];
    t_contig_strides(out->ndim, out->shape, ocs);
    for (int i = 0; i < s->nb; i++) dC.bstride[i] = ocs[i];
    if (t_needs_grad(a)) { /* dA[M,K] += dC[M,N] · B[K,N]^T */
        Mat bt = transposed_operand(b, s);
        grad_gemm(a, s, s->M, s->K, s->N, &dC, &bt);
    }
    if (t_needs_grad(b)) { /* dB[K,N] += A[M,K]^T · dC[M,N] */
        Mat at = transposed_operand(a, s);
        grad_gemm(b, s, s->K, s->N, s->M, &at, &dC);
    }
}

Tensor *t_matmul(Tensor *a, Tensor *b) {
    T_NONNULL(a, b);
    char sa[96], sb[96];
    if (a->ndim < 2 || b->ndim < 2) {
        t_error("matmul", "operands need rank >= 2, got %s and %s", t_shape_str(a, sa, sizeof sa),
                t_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != K) {
        t_error("matmul", "inner sizes differ: %s @ %s", t_shape_str(a, sa, sizeof sa), t_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    bool ta, tb;
    int64_t lda, ldb;
    if (!mat_layout(a, &ta, &lda)) a = t_contiguous(a), mat_layout(a, &ta, &lda);
    if (!mat_layout(b, &tb, &ldb)) b = t_contiguous(b), mat_layout(b, &tb, &ldb);
    /* batch shape: broadcast of the leading axes */
    MMShape s = {0};
    s.M = M, s.N = N, s.K = K;
    s.nb = (a->ndim > b->ndim ? a->ndim : b->ndim) - 2;
    for (int i = 0; i < s.nb; i++) {
        int ia = a->ndim - 2 - s.nb + i, ib = b->ndim - 2 - s.nb + i;
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            t_error("matmul", "batch axes cannot be broadcast: %s @ %s", t_shape_str(a, sa, sizeof sa),
                    t_shape_str(b, sb, sizeof sb));
            return NULL;
        }
        s.bshape[i] = da == 1 ? db : da;
    }
    int64_t oshape[T_MAX_DIMS];
    for (int i = 0; i < s.nb; i++) oshape[i] = s.bshape[i];
    oshape[s.nb] = M;
    oshape[s.nb + 1] = N;
    Tensor *out = t_new(s.nb + 2, oshape);
    T_NONNULL(out);
    Mat A = {a->data, ta, lda, {0}}, B = {b->data, tb, ldb, {0}};
    batch_strides(a, s.nb, s.bshape, A.bstride, a->stride);
    batch_strides(b, s.nb, s.bshape, B.bstride, b->stride);
    /* a batched A against one shared B with A's batches stacked row-major: a single tall GEMM */
    bool b_shared = true;
    for (int i = 0; i < s.nb; i++) b_shared &= (B.bstride[i] == 0);
    if (s.nb > 0 && b_shared && !ta && t_is_contiguous(a)) {
        int64_t rows = t_numel(a) / K;
        t_sgemm(false, tb, rows, N, K, 1.0f, a->data, K, b->data, ldb, 0.0f, out->data, N);
    } else {
        gemm_batched(s.nb, s.bshape, M, N, K, &A, &B, out->data, N, out->stride, 0.0f, false);
    }
    Tensor *in[2] = {a, b};
    TNode *node = t_record("matmul", out, matmul_backward, 2, in);
    if (node) {
        MMShape *sv = t_arena_alloc(sizeof *sv);
        if (sv) *sv = s;   /* else t_arena_failed(): the backward does not run */
        node->saved = sv;
    }
    return out;
}

/* ---------------------------------------------------------------- linear */

static void linear_backward(TNode *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL, *y = n->out;
    int64_t in = w->shape[1], outf = w->shape[0], R = t_numel(x) / in;
    const float *dy = y->grad;
    float *gx = t_needs_grad(x) ? t_grad_buf(x) : NULL, *gw = t_needs_grad(w) ? t_grad_buf(w) : NULL;
    if ((t_needs_grad(x) && !gx) || (t_needs_grad(w) && !gw)) return;   /* out of memory: t_backward reports it */
    if (gx) /* dx[R,in] += dy[R,out] · W[out,in] */
        t_sgemm(false, false, R, in, outf, 1.0f, dy, outf, w->data, in, 1.0f, gx, in);
    if (gw) /* dW[out,in] += dy^T · x */
        t_sgemm(true, false, outf, in, R, 1.0f, dy, outf, x->data, in, 1.0f, gw, in);
    if (t_needs_grad(b)) {
        float *gb = t_grad_buf(b);
        if (!gb) return;   /* out of memory: t_backward reports it */
        /* column sums; each thread owns a range of columns */
#pragma omp parallel for if (R * outf > T_PAR_MIN) schedule(static)
        for (int64_t c0 = 0; c0 < outf; c0 += 64) {
            int64_t c1 = c0 + 64 < outf ? c0 + 64 : outf;
            float acc[64] = {0};
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = c0; c < c1; c++) acc[c - c0] += dy[r * outf + c];
            for (int64_t c = c0; c < c1; c++) gb[c] += acc[c - c0];
        }
    }
}

Tensor *t_linear(Tensor *x, Tensor *w, Tensor *b) {
    T_NONNULL(x, w);
    char sx[96], sw[96];
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1] ||
        (b && (t_numel(b) != w->shape[0]))) {
        t_error("linear", "input %s, weight %s%s", t_shape_str(x, sx, sizeof sx), t_shape_str(w, sw, sizeof sw),
                b ? " and a bias of another size" : "");
        return NULL;
    }
    x = t_contiguous(x);
    T_NONNULL(x);
    w = t_contiguous(w);
    T_NONNULL(w);
    if (b) b = t_contiguous(b);
    int64_t in = w->shape[1], outf = w->shape[0], R = t_numel(x) / in;
    int64_t oshape[T_MAX_DIMS];
    memcpy(oshape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    oshape[x->ndim - 1] = outf;
    Tensor *y = t_new(x->ndim, oshape);   /* [..., out] */
    T_NONNULL(y);
    /* [R, out]: the bias is added in the GEMM's write-back */
    t_sgemm_bias(false, true, R, outf, in, 1.0f, x->data, in, w->data, in, 0.0f, y->data, outf, NULL,
                 b ? b->data : NULL);
    Tensor *ins[3] = {x, w, b};
    t_record("linear", y, linear_backward, b ? 3 : 2, ins);
    return y;
}
