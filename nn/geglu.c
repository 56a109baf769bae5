/* GEGLU feed-forward of the SpatialTransformer: two linear layers around the fused gate (tensor/ops_fused.h). */
#include "nn/geglu.h"

#include "tensor/ops_fused.h"

void geglu_ff_init(FeedForwardGEGLU *f, ParamSet *ps, const char *prefix, int64_t dim, int mult, TRng *r) {
    char p[256];
    int64_t inner = dim * mult;
    linear_init(&f->proj, ps, nn_join(p, sizeof p, prefix, "net.0.proj"), dim, 2 * inner, true, r);
    linear_init(&f->out, ps, nn_join(p, sizeof p, prefix, "net.2"), inner, dim, true, r);
}

Tensor *geglu_ff_forward(const FeedForwardGEGLU *f, Tensor *x) {
    return linear_forward(&f->out, t_geglu(linear_forward(&f->proj, x)));
}

