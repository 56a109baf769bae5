/* Sinusoidal time embedding and the time MLP of the IR-SDE U-Net. */
#include "nn/time_embedding.h"

#include <math.h>

#include "tensor/ops.h"

Tensor *sinusoidal_embedding(const float *t, int64_t n, int dim) {
    if (dim < 4 || dim % 2) {
        t_error("sinusoidal_embedding", "dim must be even and >= 4, got %d", dim);
        return NULL;
    }
    int half = dim / 2;
    Tensor *e = t_new(T_SHAPE(n, dim));
    if (!e) return NULL;
    /* float32 throughout, as torch computes it: f = exp(k * -(ln 1e4 / (half-1))), arg = t * f */
    float step = -(float)(log(10000.0) / (half - 1));
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < half; k++) {
            float a = t[i] * expf((float)k * step);
            e->data[i * dim + k] = sinf(a);
            e->data[i * dim + half + k] = cosf(a);
        }
    return e;
}

void time_mlp_init(TimeMLP *m, ParamSet *ps, const char *prefix, int emb_dim, int64_t time_dim, TRng *r) {
    char p[256];
    linear_init(&m->fc1, ps, nn_join(p, sizeof p, prefix, "1"), emb_dim, time_dim, true, r);
    linear_init(&m->fc2, ps, nn_join(p, sizeof p, prefix, "3"), time_dim, time_dim, true, r);
    m->emb_dim = emb_dim;
}

Tensor *time_mlp_forward(const TimeMLP *m, const float *t, int64_t n) {
    Tensor *e = sinusoidal_embedding(t, n, m->emb_dim);    /* [n, nf] */
    return linear_forward(&m->fc2, t_gelu(linear_forward(&m->fc1, e)));
}
