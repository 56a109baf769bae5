#ifndef DACLIP_NN_CONV2D_H
#define DACLIP_NN_CONV2D_H
/* torch.nn.Conv2d: parameters "prefix.weight" [Cout, Cin, k, k] and, when bias is on, "prefix.bias" [Cout].
 * PyTorch's default init: weight and bias U(±1/sqrt(Cin·k·k)). */
#include <stdbool.h>

#include "nn/module.h"

typedef struct {
    Tensor *weight;      /* [Cout, Cin, k, k] */
    Tensor *bias;        /* [Cout] or NULL */
    int stride, pad;
} Conv2d;

void conv2d_init(Conv2d *c, ParamSet *ps, const char *prefix, int64_t cin, int64_t cout, int k, int stride, int pad,
                 bool bias, TRng *r);
/* x [N, Cin, H, W] -> [N, Cout, H', W'] */
Tensor *conv2d_forward(const Conv2d *c, Tensor *x);

#endif
