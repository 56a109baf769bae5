#ifndef DACLIP_TENSOR_GEMM_PREPACKED_H
#define DACLIP_TENSOR_GEMM_PREPACKED_H
/* The registry of weights packed in place for the kernels (tensor/gemm_prepacked.c), as the GEMM driver
 * (tensor/gemm.c) sees it. The public side is in tensor/gemm.h (t_sgemm_prepack and friends). */
#include <stdbool.h>
#include <stdint.h>

#include "tensor/gemm_kernels.h"

typedef struct {
    const float *base;   /* the packed buffer, once W [N][K] */
    int64_t N, K;
    const GemmIsa *isa;  /* whose panel layout it holds */
} GemmPacked;

/* The packed buffer that ptr points into, if any. */
bool gemm_packed_find(const float *ptr, GemmPacked *out);
/* A malloc'd row-major copy of the original W [N][K], or NULL when memory is short. */
float *gemm_packed_unpacked_copy(const GemmPacked *e);

#endif
