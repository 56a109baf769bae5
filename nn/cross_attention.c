/* Multi-head (cross-)attention with separate q/k/v projections, over the fused attention op. */
#include "nn/cross_attention.h"

#include <math.h>

#include "tensor/attention_chunked.h"
#include "tensor/ops.h"

void cross_attention_init(CrossAttention *a, ParamSet *ps, const char *prefix, int64_t query_dim,
                          int64_t context_dim, int heads, int dim_head, TRng *r) {
    char p[256];
    int64_t inner = (int64_t)heads * dim_head;
    if (context_dim <= 0) context_dim = query_dim;
    linear_init(&a->to_q, ps, nn_join(p, sizeof p, prefix, "to_q"), query_dim, inner, false, r);
    linear_init(&a->to_k, ps, nn_join(p, sizeof p, prefix, "to_k"), context_dim, inner, false, r);
    linear_init(&a->to_v, ps, nn_join(p, sizeof p, prefix, "to_v"), context_dim, inner, false, r);
    linear_init(&a->to_out, ps, nn_join(p, sizeof p, prefix, "to_out.0"), inner, query_dim, true, r);
    a->heads = heads;
    a->dim_head = dim_head;
}

/* [B, L, heads·d] -> view [B, heads, L, d] (no copy: t_attention reads strided heads) */
static Tensor *split_heads(Tensor *t, int heads) {
    if (!t) return NULL;
    Tensor *v = t_reshape(t, T_SHAPE(t->shape[0], t->shape[1], heads, t->shape[2] / heads));
    return t_permute(v, (int[]){0, 2, 1, 3});
}

Tensor *cross_attention_single_token(const CrossAttention *a, Tensor *context) {
    return linear_forward(&a->to_out, linear_forward(&a->to_v, context));
}

Tensor *cross_attention_forward(const CrossAttention *a, Tensor *x, Tensor *context) {
    if (!x) return NULL;
    Tensor *c = context ? context : x;
    if (context && context->ndim == 3 && context->shape[1] == 1 && x->ndim == 3) {
        char sx[96];
        if (x->shape[2] != a->to_q.in) {   /* to_q is skipped: keep its shape check */
            t_error("cross_attention", "query %s, to_q expects width %lld", t_shape_str(x, sx, sizeof sx),
                    (long long)a->to_q.in);
            return NULL;
        }
        Tensor *o = cross_attention_single_token(a, context);            /* [B, 1, Cq] */
        return o ? t_expand(o, T_SHAPE(x->shape[0], x->shape[1], o->shape[2])) : NULL;
    }
    Tensor *q = split_heads(linear_forward(&a->to_q, x), a->heads);      /* [B, h, N, d] */
    Tensor *k = split_heads(linear_forward(&a->to_k, c), a->heads);      /* [B, h, M, d] */
    Tensor *v = split_heads(linear_forward(&a->to_v, c), a->heads);      /* [B, h, M, d] */
    /* blocked online softmax for large no-grad inputs (memory linear in tokens), t_attention otherwise */
    Tensor *o = t_attention_auto(q, k, v, 1.0f / sqrtf((float)a->dim_head));   /* [B, h, N, d] */
    if (!o) return NULL;
    o = t_contiguous(t_permute(o, (int[]){0, 2, 1, 3}));                  /* [B, N, h, d] */
    if (!o) return NULL;
    o = t_reshape(o, T_SHAPE(x->shape[0], x->shape[1], (int64_t)a->heads * a->dim_head));
    return linear_forward(&a->to_out, o);
}
