/* torch.nn.LayerNorm(dim) with elementwise affine, eps 1e-5; the fused kernel is t_layer_norm. */
#include "nn/layernorm.h"

#include "tensor/ops.h"

void layernorm_init(LayerNorm *ln, ParamSet *ps, const char *prefix, int64_t dim) {
    ln->dim = dim;
    ln->eps = 1e-5f;
    ln->weight = params_new(ps, prefix, "weight", T_SHAPE(dim));
    ln->bias = params_new(ps, prefix, "bias", T_SHAPE(dim));
    init_const(ln->weight, 1.0f);
    init_const(ln->bias, 0.0f);
}

Tensor *layernorm_forward(const LayerNorm *ln, Tensor *x) {
    if (!x) return NULL;
    if (x->ndim < 1 || x->shape[x->ndim - 1] != ln->dim) {
        char s[96];
        t_error("layernorm", "input %s does not end in the normalised size %lld", t_shape_str(x, s, sizeof s),
                (long long)ln->dim);
        return NULL;
    }
    return t_layer_norm(x, ln->weight, ln->bias, ln->eps);
}
