/* torch.nn.MultiheadAttention, batch-first self-attention.
 *
 * Layout. The input projection is one GEMM x [R, C] · W^T -> qkv [R, 3C] (R = B·L rows). Read as
 * [B, L, 3, H, D], q/k/v are strided views [B, H, L, D] (row stride 3C) that t_attention consumes
 * without copying. Their gradients, which t_attention writes contiguously in [B, H, L, D] order, are
 * pre-pointed into one packed [3, B, H, L, D] buffer that is the gradient of the projection node, so
 * the split costs no view nodes, no copies and no extra gradient buffers; the projection's backward
 * gathers that buffer back to [R, 3C] rows in a scratch block for its GEMMs. The output projection
 * likewise reads the attention result [B, H, L, D] by gathering heads into [R, C] scratch (released
 * right away) and scatters its input gradient back per head. */
#include "nn/mha.h"

#include <math.h>
#include <string.h>

#include "tensor/ops.h"

#define PAR_MIN 32768

int mha_init(MultiheadAttention *m, ParamSet *ps, const char *prefix, int64_t dim, int heads, TRng *rng) {
    memset(m, 0, sizeof *m);
    if (heads <= 0 || dim <= 0 || dim % heads != 0) {
        t_error("mha", "width %lld is not divisible into %d heads", (long long)dim, heads);
        return -1;
    }
    m->dim = dim;
    m->heads = heads;
    m->head_dim = dim / heads;
    m->in_proj_weight = params_new(ps, prefix, "in_proj_weight", T_SHAPE(3 * dim, dim));
    m->in_proj_bias = params_new(ps, prefix, "in_proj_bias", T_SHAPE(3 * dim));
    /* xavier_uniform_ over the fused [3C, C] matrix: bound sqrt(6 / (fan_in + fan_out)) */
    float bound = sqrtf(6.0f / (float)(dim + 3 * dim));
    t_fill_uniform(m->in_proj_weight, rng, -bound, bound);
    init_const(m->in_proj_bias, 0.0f);
    char name[256];
    linear_init(&m->out_proj, ps, nn_join(name, sizeof name, prefix, "out_proj"), dim, dim, true, rng);
    init_const(m->out_proj.bias, 0.0f);
    return 0;
}

Tensor *mha_causal_mask(int64_t L) {
    Tensor *m = t_new(T_SHAPE(L, L));
    if (!m) return NULL;
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) m->data[i * L + j] = j > i ? -INFINITY : 0.0f;
    return m;
}

/* An arena tensor header over existing data with explicit strides (no node, no grad). */
static Tensor *strided_header(float *data, int ndim, const int64_t *shape, const int64_t *stride) {
    Tensor *t = t_arena_calloc(sizeof *t);
    t->data = data;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->stride, stride, sizeof(int64_t) * (size_t)ndim);
    return t;
}

/* ---- head (un)packing between row layout [B, L, n, H, D] and head-major [n, B, H, L, D] ---- */

/* rows[(b·L + l), i·C + h·D + d] = heads[i, b, h, l, d] */
static void heads_to_rows(float *rows, const float *heads, int64_t n, int64_t B, int64_t L, int64_t H, int64_t D) {
    int64_t C = H * D, nrows = B * L;
#pragma omp parallel for if (nrows * n * C > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < nrows; r++) {
        int64_t b = r / L, l = r % L;
        for (int64_t i = 0; i < n; i++)
            for (int64_t h = 0; h < H; h++)
                memcpy(rows + r * n * C + i * C + h * D, heads + (((i * B + b) * H + h) * L + l) * D,
                       sizeof(float) * (size_t)D);
    }
}

/* heads[0, b, h, l, d] += rows[(b·L + l), h·D + d]  (n = 1) */
static void rows_add_to_heads(float *heads, const float *rows, int64_t B, int64_t L, int64_t H, int64_t D) {
    int64_t C = H * D;
#pragma omp parallel for collapse(2) if (B * L * C > PAR_MIN) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t l = 0; l < L; l++) {
                float *dst = heads + ((b * H + h) * L + l) * D;
                const float *src = rows + (b * L + l) * C + h * D;
                for (int64_t d = 0; d < D; d++) dst[d] += src[d];
            }
}

/* ---- fused input projection: x [B, L, C] -> packed q, k, v ---- */

/* t_attention wrote q's gradient as [B, H, nq, D]; spread it in place to [B, H, L, D] with zero rows
 * past nq (back to front, so no block is overwritten before it moves). */
static void spread_query_grad(float *dq, int64_t BH, int64_t nq, int64_t L, int64_t D) {
    for (int64_t bh = BH - 1; bh >= 0; bh--) {
        memmove(dq + bh * L * D, dq + bh * nq * D, sizeof(float) * (size_t)(nq * D));
        memset(dq + bh * L * D + nq * D, 0, sizeof(float) * (size_t)((L - nq) * D));
    }
}

static void in_proj_backward(TNode *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *qkv = n->out;
    /* qkv: logical [3, B, H, L, D] */
    int64_t B = qkv->shape[1], H = qkv->shape[2], L = qkv->shape[3], D = qkv->shape[4], C = H * D, R = B * L;
    int64_t nq = n->iarg[0];   /* queries: the first nq tokens */
    if (nq < L) spread_query_grad(qkv->grad, B * H, nq, L, D);
    float *dx = x->requires_grad ? t_grad_buf(x) : NULL;
    bool dw_zero;
    float *dw = nn_weight_grad(w, &dw_zero);
    float *db = b && b->requires_grad ? t_grad_buf(b) : NULL;
    size_t mark = t_arena_mark();
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(R * 3 * C));
    heads_to_rows(rows, qkv->grad, 3, B, L, H, D);
    linear_kernel_backward(rows, x->data, w->data, R, C, 3 * C, dx, dw, dw_zero, db);
    t_arena_release(mark);
}

/* Fills q ([B, H, nq, D]: the first nq tokens), k, v ([B, H, L, D]), strided views of one [B, L, 3C]
 * projection. */
static void in_proj(const MultiheadAttention *m, Tensor *x, int64_t nq, Tensor **q, Tensor **k, Tensor **v) {
    int64_t B = x->shape[0], L = x->shape[1], C = m->dim, H = m->heads, D = m->head_dim, R = B * L;
    float *buf = t_arena_alloc(sizeof(float) * (size_t)(R * 3 * C));
    linear_kernel_forward(buf, x->data, m->in_proj_weight->data, m->in_proj_bias->data, NULL, R, C, 3 * C);
    Tensor *qkv = strided_header(buf, 5, (const int64_t[]){3, B, H, L, D},
                                 (const int64_t[]){C, L * 3 * C, D, 3 * C, 1});
    Tensor *ins[3] = {x, m->in_proj_weight, m->in_proj_bias};
    TNode *node = t_record("mha_in_proj", qkv, in_proj_backward, 3, ins);
    /* the packed gradient exists up front so that t_attention's q/k/v gradients land in it directly */
    if (node) {
        qkv->grad = t_arena_calloc(sizeof(float) * (size_t)(R * 3 * C));
        node->iarg[0] = nq;
    }
    Tensor **out[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        Tensor *t = strided_header(buf + i * C, 4, (const int64_t[]){B, H, i == 0 ? nq : L, D},
                                   (const int64_t[]){L * 3 * C, D, 3 * C, 1});
        t->offset = i * C;
        if (node) {
            t->requires_grad = true;
            t->grad = qkv->grad + i * R * C;
        }
        *out[i] = t;
    }
}

/* ---- output projection: attention [B, H, L, D] -> res + merge_heads(a) W^T + b ---- */

static void out_proj_backward(TNode *n) {
    Tensor *a = n->in[0], *w = n->in[1], *b = n->in[2], *res = n->in[3], *y = n->out;
    int64_t B = a->shape[0], H = a->shape[1], L = a->shape[2], D = a->shape[3], C = H * D, R = B * L;
    const float *dy = y->grad;
    if (res && res->requires_grad) nn_grad_accumulate(res, dy);
    float *da = a->requires_grad ? t_grad_buf(a) : NULL;
    bool dw_zero;
    float *dw = nn_weight_grad(w, &dw_zero);
    float *db = b && b->requires_grad ? t_grad_buf(b) : NULL;
    size_t mark = t_arena_mark();
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(R * C));
    if (dw || db) {
        heads_to_rows(rows, a->data, 1, B, L, H, D);
        linear_kernel_backward(dy, rows, w->data, R, C, C, NULL, dw, dw_zero, db);
    }
    if (da) {
        linear_kernel_input_grad_to(rows, dy, w->data, R, C, C);
        rows_add_to_heads(da, rows, B, L, H, D);
    }
    t_arena_release(mark);
}

static Tensor *out_proj(const MultiheadAttention *m, Tensor *a, Tensor *res) {
    int64_t B = a->shape[0], L = a->shape[2], C = m->dim, R = B * L;
    Tensor *y = t_new(T_SHAPE(B, L, C));
    size_t mark = t_arena_mark();
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(R * C));
    heads_to_rows(rows, a->data, 1, B, L, m->heads, m->head_dim);
    linear_kernel_forward(y->data, rows, m->out_proj.weight->data, m->out_proj.bias ? m->out_proj.bias->data : NULL,
                          res ? res->data : NULL, R, C, C);
    t_arena_release(mark);
    Tensor *ins[4] = {a, m->out_proj.weight, m->out_proj.bias, res};
    t_record("mha_out_proj", y, out_proj_backward, 4, ins);
    return y;
}

Tensor *mha_forward_add_first(const MultiheadAttention *m, Tensor *x, Tensor *mask, Tensor *res, int64_t nq) {
    if (!x || !m->in_proj_weight) return NULL;
    char sx[96], sr[96];
    bool ok = x->ndim == 3 && x->shape[2] == m->dim && nq >= 1 && nq <= x->shape[1];
    if (ok && res) ok = res->ndim == 3 && res->shape[0] == x->shape[0] && res->shape[1] == nq && res->shape[2] == m->dim;
    if (!ok) {
        t_error("mha", "input %s%s%s, %lld queries: want [B, L, %lld]%s", t_shape_str(x, sx, sizeof sx),
                res ? ", residual " : "", res ? t_shape_str(res, sr, sizeof sr) : "", (long long)nq,
                (long long)m->dim, res ? " and [B, queries, C]" : "");
        return NULL;
    }
    x = t_contiguous(x);
    if (res) res = t_contiguous(res);
    Tensor *q, *k, *v;
    in_proj(m, x, nq, &q, &k, &v);
    Tensor *a = t_attention(q, k, v, mask, 1.0f / sqrtf((float)m->head_dim));   /* [B, H, L, D] */
    if (!a) return NULL;
    return out_proj(m, a, res);
}

Tensor *mha_forward_add(const MultiheadAttention *m, Tensor *x, Tensor *mask, Tensor *res) {
    return x ? mha_forward_add_first(m, x, mask, res, x->ndim == 3 ? x->shape[1] : 0) : NULL;
}

Tensor *mha_forward(const MultiheadAttention *m, Tensor *x, Tensor *mask) { return mha_forward_add(m, x, mask, NULL); }
