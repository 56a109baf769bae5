/* torch.nn.Linear. */
#include "nn/linear.h"

#include "tensor/ops.h"
#include "tensor/ops_fused.h"

void linear_init(Linear *l, ParamSet *ps, const char *prefix, int64_t in, int64_t out, bool bias, TRng *rng) {
    l->in = in;
    l->out = out;
    l->weight = params_new(ps, prefix, "weight", T_SHAPE(out, in));
    init_kaiming_uniform(l->weight, rng, in);
    l->bias = NULL;
    if (bias) {
        l->bias = params_new(ps, prefix, "bias", T_SHAPE(out));
        init_uniform_fan_in(l->bias, rng, in);
    }
}

Tensor *linear_forward(const Linear *l, Tensor *x) { return t_linear(x, l->weight, l->bias); }

Tensor *linear_forward_add(const Linear *l, Tensor *x, Tensor *res) { return t_linear_add(x, l->weight, l->bias, res); }
