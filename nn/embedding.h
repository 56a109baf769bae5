#ifndef DACLIP_NN_EMBEDDING_H
#define DACLIP_NN_EMBEDDING_H
/* torch.nn.Embedding: parameter "prefix.weight" [num, dim], rows looked up by integer id. */
#include <stdint.h>

#include "nn/module.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    Tensor *weight;     /* [num, dim], init N(0, 1) as in PyTorch */
    int64_t num, dim;
} Embedding;

void embedding_init(Embedding *e, ParamSet *ps, const char *prefix, int64_t num, int64_t dim, TRng *rng);
/* ids of shape (ndim, shape) -> [*shape, dim]. An id outside [0, num) is an error (NULL through the
 * error handler), never an out-of-bounds read. */
Tensor *embedding_forward(const Embedding *e, const int32_t *ids, int ndim, const int64_t *shape);

#endif
