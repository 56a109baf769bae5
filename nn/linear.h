#ifndef DACLIP_NN_LINEAR_H
#define DACLIP_NN_LINEAR_H
/* torch.nn.Linear: y = x W^T + b, parameters "prefix.weight" [out, in] and "prefix.bias" [out]. */
#include <stdbool.h>
#include <stdint.h>

#include "nn/module.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    Tensor *weight;     /* [out, in] */
    Tensor *bias;       /* [out], or NULL */
    int64_t in, out;
} Linear;

/* Registers the parameters with PyTorch's default init: weight and bias ~ U(±1/sqrt(in)). */
void linear_init(Linear *l, ParamSet *ps, const char *prefix, int64_t in, int64_t out, bool bias, TRng *rng);
/* x [..., in] -> [..., out] */
Tensor *linear_forward(const Linear *l, Tensor *x);
/* res + linear(x) as one tape node (t_linear_add: a residual branch's last projection): no separate
 * branch output and no gradient buffer for it. res has the output's shape. */
Tensor *linear_forward_add(const Linear *l, Tensor *x, Tensor *res);

#endif
