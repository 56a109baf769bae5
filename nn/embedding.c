/* torch.nn.Embedding; the gather and its scatter-add backward are t_embedding. */
#include "nn/embedding.h"

#include "tensor/ops.h"

void embedding_init(Embedding *e, ParamSet *ps, const char *prefix, int64_t num, int64_t dim, TRng *rng) {
    e->num = num;
    e->dim = dim;
    e->weight = params_new(ps, prefix, "weight", T_SHAPE(num, dim));
    init_normal(e->weight, rng, 1.0f);
}

Tensor *embedding_forward(const Embedding *e, const int32_t *ids, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim >= T_MAX_DIMS) {
        t_error("embedding", "ids of rank %d (at most %d)", ndim, T_MAX_DIMS - 1);
        return NULL;
    }
    int64_t n = 1, oshape[T_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            t_error("embedding", "negative size %lld in the ids' shape", (long long)shape[i]);
            return NULL;
        }
        n *= shape[i];
        oshape[i] = shape[i];
    }
    oshape[ndim] = e->dim;
    Tensor *rows = t_embedding(e->weight, ids, n);     /* [n, dim]; checks every id against num */
    return t_reshape(rows, ndim + 1, oshape);
}
