#ifndef DACLIP_NN_GROUPNORM_H
#define DACLIP_NN_GROUPNORM_H
/* torch.nn.GroupNorm(groups, C, eps, affine=True): "prefix.weight" (ones) and "prefix.bias" (zeros), [C]. */
#include "nn/module.h"

typedef struct {
    Tensor *weight, *bias;   /* [C] */
    int groups;
    float eps;
} GroupNorm;

void groupnorm_init(GroupNorm *g, ParamSet *ps, const char *prefix, int groups, int64_t channels, float eps);
/* x [N, C, *] -> same shape */
Tensor *groupnorm_forward(const GroupNorm *g, Tensor *x);

#endif
