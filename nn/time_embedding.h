#ifndef DACLIP_NN_TIME_EMBEDDING_H
#define DACLIP_NN_TIME_EMBEDDING_H
/* The U-Net's time conditioning.
 * SinusoidalPosEmb(dim): f_k = exp(-k·ln(10000)/(dim/2 - 1)), k < dim/2; emb = [sin(t·f), cos(t·f)].
 * TimeMLP = ConditionalUNet.time_mlp = Sequential(SinusoidalPosEmb(nf), Linear(nf, D), GELU, Linear(D, D)):
 * keys "prefix.1.{weight,bias}" and "prefix.3.{weight,bias}" (the embedding and GELU have none). */
#include "nn/linear.h"
#include "nn/module.h"

/* [n, dim] embedding of the (real-valued, e.g. integer step) times t[0..n); no parameters, no grad.
 * dim must be even and >= 4. */
Tensor *sinusoidal_embedding(const float *t, int64_t n, int dim);

typedef struct {
    Linear fc1, fc2;   /* time_mlp.1, time_mlp.3 */
    int emb_dim;
} TimeMLP;

void time_mlp_init(TimeMLP *m, ParamSet *ps, const char *prefix, int emb_dim, int64_t time_dim, TRng *r);
/* t[0..n) -> [n, time_dim] */
Tensor *time_mlp_forward(const TimeMLP *m, const float *t, int64_t n);

#endif
