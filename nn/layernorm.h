#ifndef DACLIP_NN_LAYERNORM_H
#define DACLIP_NN_LAYERNORM_H
/* torch.nn.LayerNorm over the last axis: parameters "prefix.weight" and "prefix.bias" [dim]. */
#include <stdint.h>

#include "nn/module.h"
#include "tensor/tensor.h"

typedef struct {
    Tensor *weight;     /* [dim], init ones */
    Tensor *bias;       /* [dim], init zeros */
    int64_t dim;
    float eps;          /* 1e-5, PyTorch's default */
} LayerNorm;

void layernorm_init(LayerNorm *ln, ParamSet *ps, const char *prefix, int64_t dim);
/* x [..., dim] -> same shape */
Tensor *layernorm_forward(const LayerNorm *ln, Tensor *x);

#endif
