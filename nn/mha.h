#ifndef DACLIP_NN_MHA_H
#define DACLIP_NN_MHA_H
/* torch.nn.MultiheadAttention (self-attention, batch_first) in PyTorch's parameter layout:
 *   prefix.in_proj_weight [3C, C]  (q, k, v rows in that order)   prefix.in_proj_bias [3C]
 *   prefix.out_proj.weight [C, C]                                 prefix.out_proj.bias [C]
 * out = out_proj(concat_h softmax(q_h k_h^T / sqrt(D) + mask) v_h), D = C / heads.
 * The whole thing is three tape nodes (tensor/ops_fused.h): the fused input projection t_mha_in_proj, one
 * t_attention over all heads, and the output projection t_mha_out_proj (which merges the heads itself, and
 * can add a residual). */
#include <stdint.h>

#include "nn/linear.h"
#include "nn/module.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    Tensor *in_proj_weight;     /* [3C, C], xavier-uniform */
    Tensor *in_proj_bias;       /* [3C], zeros */
    Linear out_proj;            /* C -> C, kaiming-uniform weight, zero bias */
    int64_t dim;                /* C */
    int heads;
    int64_t head_dim;           /* C / heads */
} MultiheadAttention;

/* dim must be divisible by heads (checked: returns -1 through t_error's handler otherwise, else 0). */
int mha_init(MultiheadAttention *m, ParamSet *ps, const char *prefix, int64_t dim, int heads, TRng *rng);
/* x [B, L, C] -> [B, L, C]. mask: NULL or additive [L, L] (e.g. mha_causal_mask), no gradient. */
Tensor *mha_forward(const MultiheadAttention *m, Tensor *x, Tensor *mask);
/* res + mha(x) in one output tensor (the residual branch of a transformer block). */
Tensor *mha_forward_add(const MultiheadAttention *m, Tensor *x, Tensor *mask, Tensor *res);
/* The same with queries only for the first nq tokens (keys and values from all L): -> [B, nq, C], res
 * [B, nq, C], mask [nq, L]. The rows it skips are those mha_forward_add would compute and a caller that
 * reads only the first nq outputs (CLIP's class token) throws away. */
Tensor *mha_forward_add_first(const MultiheadAttention *m, Tensor *x, Tensor *mask, Tensor *res, int64_t nq);
/* Arena [L, L]: 0 on and below the diagonal, -inf above (CLIP's text-tower mask). */
Tensor *mha_causal_mask(int64_t L);

#endif
