#ifndef DACLIP_NN_CHANNEL_LAYERNORM_H
#define DACLIP_NN_CHANNEL_LAYERNORM_H
/* The IR-SDE U-Net's LayerNorm (module_util.LayerNorm): over C at each pixel of [N, C, H, W], population
 * variance, eps 1e-5, gain only: "prefix.g" [1, C, 1, 1], ones. Also PreNorm's norm ("….fn.norm.g"). */
#include "nn/module.h"

typedef struct {
    Tensor *g;   /* [1, C, 1, 1] */
    float eps;
} ChannelLayerNorm;

void channel_layernorm_init(ChannelLayerNorm *n, ParamSet *ps, const char *prefix, int64_t channels);
Tensor *channel_layernorm_forward(const ChannelLayerNorm *n, Tensor *x);

#endif
