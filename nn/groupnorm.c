/* GroupNorm layer over t_group_norm. */
#include "nn/groupnorm.h"

#include "tensor/ops.h"

void groupnorm_init(GroupNorm *g, ParamSet *ps, const char *prefix, int groups, int64_t channels, float eps) {
    if (groups <= 0 || channels % groups != 0)
        t_error("groupnorm_init", "%lld channels cannot be split into %d groups (%s)", (long long)channels, groups,
                prefix ? prefix : "");
    g->weight = params_new(ps, prefix, "weight", T_SHAPE(channels));
    g->bias = params_new(ps, prefix, "bias", T_SHAPE(channels));
    init_const(g->weight, 1.0f);
    g->groups = groups;
    g->eps = eps;
}

Tensor *groupnorm_forward(const GroupNorm *g, Tensor *x) {
    return t_group_norm(x, g->groups, g->weight, g->bias, g->eps);
}
