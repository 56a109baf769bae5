#ifndef DACLIP_TENSOR_PAR_REDUCE_H
#define DACLIP_TENSOR_PAR_REDUCE_H
/* Deterministic parallel sums of parameter gradients (norm gains, conv weights and biases): each
 * thread accumulates into its own zeroed slice of a [threads, n] arena buffer, then the slices are
 * added into the destination in thread order. For a fixed thread count and a static schedule the
 * result is bit-identical from run to run. */
#include "tensor/internal.h"

#ifdef _OPENMP
#include <omp.h>
static inline int t_par_threads(void) { return omp_get_max_threads(); }
static inline int t_par_tid(void) { return omp_get_thread_num(); }
#else
static inline int t_par_threads(void) { return 1; }
static inline int t_par_tid(void) { return 0; }
#endif

/* Zeroed [threads, n] partial buffer in the arena. */
static inline float *t_partials_new(int threads, int64_t n) {
    return t_arena_calloc(sizeof(float) * (size_t)threads * (size_t)(n > 0 ? n : 1));
}

/* dst[i] += sum over t of part[t*n + i], t in increasing order (nothing when dst is NULL: a gradient
 * buffer that could not be had, which t_backward reports). */
static inline void t_partials_reduce(const float *part, int threads, int64_t n, float *dst) {
    if (!dst || !part) return;
#pragma omp parallel for if (n * threads > T_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int t = 0; t < threads; t++) s += part[(int64_t)t * n + i];
        dst[i] += s;
    }
}

#endif
