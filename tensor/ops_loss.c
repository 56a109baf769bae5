/* Losses with mean reduction and a scalar output: l1, mse, and cross-entropy over integer targets with a
 * fused log-softmax. Sums run over fixed blocks (partials in double, added in block order), so the
 * result is the same for every thread count. */
#include <math.h>

#include "tensor/internal.h"
#include "tensor/ops.h"
#include "tensor/softmax_rows.h"

#define BLOCK 4096

enum { LOSS_L1, LOSS_MSE };

/* sum over i < n of term(kind, p[i] - t[i]) */
static double blocked_sum(int kind, const float *p, const float *t, int64_t n) {
    int64_t nb = (n + BLOCK - 1) / BLOCK;
    double *part = t_arena_alloc(sizeof(double) * (size_t)(nb ? nb : 1));
    if (!part) return NAN;   /* out of memory: reported; the loss is NaN */
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t e = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
        double acc = 0;
        for (int64_t i = b * BLOCK; i < e; i++) {
            double d = (double)p[i] - (double)t[i];
            acc += kind == LOSS_L1 ? fabs(d) : d * d;
        }
        part[b] = acc;
    }
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    return s;
}

static void pointwise_backward(TNode *nd) {
    Tensor *p = nd->in[0], *t = nd->in[1];
    int kind = (int)nd->iarg[0];
    int64_t n = t_numel(p);
    float g = nd->out->grad[0] / (float)(n ? n : 1);
    float *gp = t_needs_grad(p) ? t_grad_buf(p) : NULL, *gt = t_needs_grad(t) ? t_grad_buf(t) : NULL;
    const float *pd = p->data, *td = t->data;
#pragma omp parallel for if (n > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d = pd[i] - td[i];
        float c = kind == LOSS_L1 ? (d > 0 ? g : (d < 0 ? -g : 0.0f)) : 2.0f * g * d;
        if (gp) gp[i] += c;
        if (gt) gt[i] -= c;
    }
}

static Tensor *pointwise_loss(const char *op, int kind, Tensor *pred, Tensor *target) {
    T_NONNULL(pred, target);
    if (!t_same_shape(pred, target)) {
        char sp[96], st[96];
        t_error(op, "prediction %s and target %s differ in shape", t_shape_str(pred, sp, sizeof sp),
                t_shape_str(target, st, sizeof st));
        return NULL;
    }
    pred = t_contiguous(pred);
    T_NONNULL(pred);
    target = t_contiguous(target);
    T_NONNULL(target);
    int64_t n = t_numel(pred);
    Tensor *y = t_new(0, NULL);
    T_NONNULL(y);
    y->data[0] = (float)(blocked_sum(kind, pred->data, target->data, n) / (double)n);
    Tensor *in[2] = {pred, target};
    TNode *nd = t_record(op, y, pointwise_backward, 2, in);
    if (nd) nd->iarg[0] = kind;
    return y;
}

Tensor *t_l1_loss(Tensor *pred, Tensor *target) { return pointwise_loss("l1_loss", LOSS_L1, pred, target); }
Tensor *t_mse_loss(Tensor *pred, Tensor *target) { return pointwise_loss("mse_loss", LOSS_MSE, pred, target); }

/* ---------------------------------------------------------------- cross-entropy */

typedef struct {
    float *prob;         /* softmax of the logits [N, C] */
    int32_t *targets;    /* copy of the caller's targets */
} CESaved;

static void cross_entropy_backward(TNode *nd) {
    Tensor *x = nd->in[0];
    if (!t_needs_grad(x)) return;
    const CESaved *s = nd->saved;
    int64_t N = x->shape[0], C = x->shape[1];
    float g = nd->out->grad[0] / (float)(N ? N : 1);
    float *gx = t_grad_buf(x);
    if (!gx) return;   /* out of memory: t_backward reports it */
#pragma omp parallel for if (N * C > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < N; r++) {
        const float *p = s->prob + r * C;
        float *gr = gx + r * C;
        for (int64_t c = 0; c < C; c++) gr[c] += g * p[c];
        gr[s->targets[r]] -= g;
    }
}

Tensor *t_cross_entropy(Tensor *logits, const int32_t *targets) {
    T_NONNULL(logits);
    char s[96];
    if (logits->ndim != 2 || (logits->shape[0] > 0 && !targets)) {
        t_error("cross_entropy", "logits %s must be [N, C] with N targets", t_shape_str(logits, s, sizeof s));
        return NULL;
    }
    int64_t N = logits->shape[0], C = logits->shape[1];
    for (int64_t r = 0; r < N; r++)
        if (targets[r] < 0 || targets[r] >= C) {
            t_error("cross_entropy", "target %d of row %lld is outside [0, %lld) for logits %s", targets[r],
                    (long long)r, (long long)C, t_shape_str(logits, s, sizeof s));
            return NULL;
        }
    Tensor *x = t_contiguous(logits);
    T_NONNULL(x);
    float *prob = t_arena_alloc(sizeof(float) * (size_t)(N * C > 0 ? N * C : 1));
    double *nll = t_arena_alloc(sizeof(double) * (size_t)(N > 0 ? N : 1));
    if (!prob || !nll) return NULL;
#pragma omp parallel for if (N * C > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < N; r++) {
        float lse = t_softmax_row(prob + r * C, x->data + r * C, C);
        nll[r] = (double)lse - (double)x->data[r * C + targets[r]];
    }
    double sum = 0;
    for (int64_t r = 0; r < N; r++) sum += nll[r];
    Tensor *y = t_new(0, NULL);
    T_NONNULL(y);
    y->data[0] = (float)(sum / (double)N);
    TNode *nd = t_record("cross_entropy", y, cross_entropy_backward, 1, &x);
    if (nd) {
        CESaved *sv = t_arena_alloc(sizeof *sv);
        int32_t *tg = t_arena_alloc(sizeof(int32_t) * (size_t)(N > 0 ? N : 1));
        if (sv && tg) {   /* else t_arena_failed(): the backward does not run */
            sv->prob = prob;
            sv->targets = tg;
            memcpy(sv->targets, targets, sizeof(int32_t) * (size_t)N);
        }
        nd->saved = sv;
    }
    return y;
}
