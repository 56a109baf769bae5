/* Self-attention's fused input and output projections (tensor/ops_fused.h).
 *
 * Layout. The input projection is one GEMM x [R, C] · W^T -> [R, 3C] (R = B·L rows). Read as
 * [B, L, 3, H, D], q/k/v are strided views [B, H, L, D] (row stride 3C) that t_attention consumes without
 * copying. The node's output is that product seen as [3, B, H, L, D]; q, k and v are further outputs of the
 * same node (their `node` points at it), and their gradients are the three blocks of the node's gradient
 * buffer, allocated zeroed when the node is recorded, so t_attention's q/k/v gradients (contiguous
 * [B, H, Lq, D]) land in it directly. The backward gathers the blocks back to [R, 3C] rows in scratch for its
 * GEMMs. The output projection reads the attention result [B, H, L, D] by gathering heads into [R, C]
 * scratch (released right away) and scatters its input gradient back per head. */
#include <string.h>

#include "tensor/fused_linear.h"
#include "tensor/ops_fused.h"

/* An arena tensor header over existing data with explicit strides (no node, no gradient). */
static Tensor *strided_header(float *data, int64_t offset, int ndim, const int64_t *shape, const int64_t *stride) {
    Tensor *t = t_arena_calloc(sizeof *t);
    if (!t) return NULL;
    t->data = data;
    t->offset = offset;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->stride, stride, sizeof(int64_t) * (size_t)ndim);
    return t;
}

/* ---- head (un)packing between the row layout [B, L, n, H, D] and head-major blocks ---- */

/* rows[(b·L + l), i·C + h·D + d] = block_i[b, h, l, d] for i < n, where block i starts at heads + i·B·H·L·D
 * and is [B, H, nq, D] for i = 0 and [B, H, L, D] otherwise; rows of block 0 past nq are zero (queries only
 * for the first nq tokens). */
static void heads_to_rows(float *rows, const float *heads, int64_t n, int64_t B, int64_t L, int64_t H, int64_t D,
                          int64_t nq) {
    int64_t C = H * D, nrows = B * L;
#pragma omp parallel for if (nrows * n * C > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < nrows; r++) {
        int64_t b = r / L, l = r % L;
        for (int64_t i = 0; i < n; i++) {
            float *dst = rows + r * n * C + i * C;
            int64_t Li = i == 0 ? nq : L;
            if (l >= Li) {
                memset(dst, 0, sizeof(float) * (size_t)C);
                continue;
            }
            const float *block = heads + i * B * H * L * D;
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + h * D, block + ((b * H + h) * Li + l) * D, sizeof(float) * (size_t)D);
        }
    }
}

/* heads[b, h, l, d] += rows[(b·L + l), h·D + d] */
static void rows_add_to_heads(float *heads, const float *rows, int64_t B, int64_t L, int64_t H, int64_t D) {
    int64_t C = H * D;
#pragma omp parallel for collapse(2) if (B * L * C > T_PAR_MIN) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t l = 0; l < L; l++) {
                float *dst = heads + ((b * H + h) * L + l) * D;
                const float *src = rows + (b * L + l) * C + h * D;
                for (int64_t d = 0; d < D; d++) dst[d] += src[d];
            }
}

/* ---- input projection: x [B, L, C] -> q [B, H, nq, D], k, v [B, H, L, D] ---- */

static void in_proj_backward(TNode *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *qkv = n->out;   /* qkv: logical [3, B, H, L, D] */
    int64_t B = qkv->shape[1], H = qkv->shape[2], L = qkv->shape[3], D = qkv->shape[4], C = H * D, R = B * L;
    float *dx = t_grad_buf_if_needed(x), *db = t_grad_buf_if_needed(b);
    bool dw_zero;
    float *dw = t_weight_grad_buf(w, &dw_zero);
    if ((t_needs_grad(x) && !dx) || (t_needs_grad(w) && !dw) || (t_needs_grad(b) && !db)) return;   /* no memory */
    size_t mark = t_arena_mark();   /* scratch after every gradient buffer (tensor/tensor.h, Memory rules) */
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(R * 3 * C));
    if (rows) {
        heads_to_rows(rows, qkv->grad, 3, B, L, H, D, n->iarg[0]);
        t_linear_rows_backward(rows, x->data, w->data, R, C, 3 * C, dx, dw, dw_zero, db);
    }
    t_arena_release(mark);
}

int t_mha_in_proj(Tensor *x, Tensor *w, Tensor *b, int heads, int64_t nq, Tensor *out[3]) {
    out[0] = out[1] = out[2] = NULL;
    if (!x || !w) return -1;
    char sx[96], sw[96], sb[96];
    int64_t C = x->ndim == 3 ? x->shape[2] : 0, L = x->ndim == 3 ? x->shape[1] : 0;
    bool ok = x->ndim == 3 && heads > 0 && C > 0 && C % heads == 0 && w->ndim == 2 && w->shape[0] == 3 * C &&
              w->shape[1] == C && (!b || t_numel(b) == 3 * C);
    if (!ok) {
        t_error("mha_in_proj", "input %s, weight %s, bias %s, %d heads: want x [B, L, C], weight [3C, C], bias [3C]",
                t_shape_str(x, sx, sizeof sx), t_shape_str(w, sw, sizeof sw), b ? t_shape_str(b, sb, sizeof sb) : "none",
                heads);
        return -1;
    }
    if (nq < 1 || nq > L) {
        t_error("mha_in_proj", "%lld queries for input %s: want 1..%lld", (long long)nq, t_shape_str(x, sx, sizeof sx),
                (long long)L);
        return -1;
    }
    x = t_contiguous(x);
    w = t_contiguous(w);
    if (!x || !w || (b && !(b = t_contiguous(b)))) return -1;
    int64_t B = x->shape[0], H = heads, D = C / heads, R = B * L;
    float *buf = t_arena_alloc(sizeof(float) * (size_t)(R * 3 * C));
    if (!buf) return -1;
    t_linear_rows(buf, x->data, w->data, b ? b->data : NULL, NULL, R, C, 3 * C);
    Tensor *qkv = strided_header(buf, 0, 5, (const int64_t[]){3, B, H, L, D},
                                 (const int64_t[]){C, L * 3 * C, D, 3 * C, 1});
    if (!qkv) return -1;
    Tensor *ins[3] = {x, w, b};
    TNode *node = t_record("mha_in_proj", qkv, in_proj_backward, 3, ins);
    if (node) {
        qkv->grad = t_arena_calloc(sizeof(float) * (size_t)(R * 3 * C));
        if (!qkv->grad) return -1;
        node->iarg[0] = nq;
    }
    Tensor *views[3];
    for (int i = 0; i < 3; i++) {
        Tensor *t = strided_header(buf + i * C, i * C, 4, (const int64_t[]){B, H, i == 0 ? nq : L, D},
                                   (const int64_t[]){L * 3 * C, D, 3 * C, 1});
        if (!t) return -1;
        if (node) {   /* an output of the node, its gradient a block of the node's */
            t->requires_grad = true;
            t->node = node;
            t->grad = qkv->grad + i * R * C;
        }
        views[i] = t;
    }
    for (int i = 0; i < 3; i++) out[i] = views[i];
    return 0;
}

/* ---- output projection: attention [B, H, L, D] -> res + merge_heads(a) W^T + b ---- */

static void out_proj_backward(TNode *n) {
    Tensor *a = n->in[0], *w = n->in[1], *b = n->in[2], *res = n->in[3], *y = n->out;
    int64_t B = a->shape[0], H = a->shape[1], L = a->shape[2], D = a->shape[3], C = H * D, Co = w->shape[0], R = B * L;
    const float *dy = y->grad;
    if (t_needs_grad(res)) t_grad_add(res, dy, t_numel(res));
    float *da = t_grad_buf_if_needed(a), *db = t_grad_buf_if_needed(b);
    bool dw_zero;
    float *dw = t_weight_grad_buf(w, &dw_zero);
    if ((t_needs_grad(a) && !da) || (t_needs_grad(w) && !dw) || (t_needs_grad(b) && !db)) return;   /* no memory */
    size_t mark = t_arena_mark();   /* scratch after every gradient buffer */
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(R * C));
    if (rows && (dw || db)) {
        heads_to_rows(rows, a->data, 1, B, L, H, D, L);
        t_linear_rows_backward(dy, rows, w->data, R, C, Co, NULL, dw, dw_zero, db);
    }
    if (rows && da) {
        t_linear_rows_input_grad_to(rows, dy, w->data, R, C, Co);
        rows_add_to_heads(da, rows, B, L, H, D);
    }
    t_arena_release(mark);
}

Tensor *t_mha_out_proj(Tensor *a, Tensor *w, Tensor *b, Tensor *res) {
    T_NONNULL(a, w);
    char sa[96], sw[96], sr[96];
    bool ok = a->ndim == 4 && w->ndim == 2 && w->shape[0] >= 1 && w->shape[1] == a->shape[1] * a->shape[3] &&
              (!b || t_numel(b) == w->shape[0]);
    if (ok && res)
        ok = res->ndim == 3 && res->shape[0] == a->shape[0] && res->shape[1] == a->shape[2] &&
             res->shape[2] == w->shape[0];
    if (!ok) {
        t_error("mha_out_proj", "attention %s, weight %s%s%s%s: want a [B, H, L, D], weight [C, H·D]%s",
                t_shape_str(a, sa, sizeof sa), t_shape_str(w, sw, sizeof sw), b ? " with a bias" : "",
                res ? ", residual " : "", res ? t_shape_str(res, sr, sizeof sr) : "", res ? ", residual [B, L, C]" : "");
        return NULL;
    }
    a = t_contiguous(a);
    w = t_contiguous(w);
    T_NONNULL(a, w);
    if ((b && !(b = t_contiguous(b))) || (res && !(res = t_contiguous(res)))) return NULL;
    int64_t B = a->shape[0], H = a->shape[1], L = a->shape[2], D = a->shape[3], C = H * D, Co = w->shape[0], R = B * L;
    Tensor *y = t_new(T_SHAPE(B, L, Co));
    T_NONNULL(y);
    size_t mark = t_arena_mark();
    float *rows = t_arena_alloc(sizeof(float) * (size_t)(R * C));
    if (!rows) return NULL;
    heads_to_rows(rows, a->data, 1, B, L, H, D, L);
    t_linear_rows(y->data, rows, w->data, b ? b->data : NULL, res ? res->data : NULL, R, C, Co);
    t_arena_release(mark);
    Tensor *ins[4] = {a, w, b, res};
    t_record("mha_out_proj", y, out_proj_backward, 4, ins);
    return y;
}
