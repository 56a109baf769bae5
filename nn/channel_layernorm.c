/* Channel LayerNorm layer over t_channel_layer_norm. */
#include "nn/channel_layernorm.h"

#include "tensor/ops.h"

void channel_layernorm_init(ChannelLayerNorm *n, ParamSet *ps, const char *prefix, int64_t channels) {
    n->g = params_new(ps, prefix, "g", T_SHAPE(1, channels, 1, 1));
    init_const(n->g, 1.0f);
    n->eps = 1e-5f;   /* the fp32 value; the official code uses 1e-3 only for half precision */
}

Tensor *channel_layernorm_forward(const ChannelLayerNorm *n, Tensor *x) { return t_channel_layer_norm(x, n->g, n->eps); }
