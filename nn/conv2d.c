/* Conv2d layer: parameter registration and PyTorch-default init over t_conv2d. */
#include "nn/conv2d.h"

#include "tensor/ops.h"

void conv2d_init(Conv2d *c, ParamSet *ps, const char *prefix, int64_t cin, int64_t cout, int k, int stride, int pad,
                 bool bias, TRng *r) {
    int64_t fan_in = cin * k * k;
    c->weight = params_new(ps, prefix, "weight", T_SHAPE(cout, cin, k, k));
    init_kaiming_uniform(c->weight, r, fan_in);
    c->bias = NULL;
    if (bias) {
        c->bias = params_new(ps, prefix, "bias", T_SHAPE(cout));
        init_uniform_fan_in(c->bias, r, fan_in);
    }
    c->stride = stride;
    c->pad = pad;
}

Tensor *conv2d_forward(const Conv2d *c, Tensor *x) { return t_conv2d(x, c->weight, c->bias, c->stride, c->pad); }
