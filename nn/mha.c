/* torch.nn.MultiheadAttention, batch-first self-attention: three ops, the fused input projection
 * (t_mha_in_proj: one GEMM, q/k/v as strided views of it), t_attention over all heads, and the output
 * projection that merges the heads and adds the residual (t_mha_out_proj). Layouts: tensor/op_mha_proj.c. */
#include "nn/mha.h"

#include <math.h>
#include <string.h>

#include "tensor/ops.h"
#include "tensor/ops_fused.h"

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

Tensor *mha_forward_add_first(const MultiheadAttention *m, Tensor *x, Tensor *mask, Tensor *res, int64_t nq) {
    if (!x || !m->in_proj_weight) return NULL;
    Tensor *qkv[3];   /* q [B, H, nq, D], k, v [B, H, L, D] */
    if (t_mha_in_proj(x, m->in_proj_weight, m->in_proj_bias, m->heads, nq, qkv) != 0) return NULL;
    Tensor *a = t_attention(qkv[0], qkv[1], qkv[2], mask, 1.0f / sqrtf((float)m->head_dim));   /* [B, H, nq, D] */
    return t_mha_out_proj(a, m->out_proj.weight, m->out_proj.bias, res);
}

Tensor *mha_forward_add(const MultiheadAttention *m, Tensor *x, Tensor *mask, Tensor *res) {
    return x ? mha_forward_add_first(m, x, mask, res, x->ndim == 3 ? x->shape[1] : 0) : NULL;
}

Tensor *mha_forward(const MultiheadAttention *m, Tensor *x, Tensor *mask) { return mha_forward_add(m, x, mask, NULL); }
