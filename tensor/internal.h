#ifndef DACLIP_TENSOR_INTERNAL_H
#define DACLIP_TENSOR_INTERNAL_H
/* Shared helpers for op implementations inside tensor/ (not part of the public API). */
#include "tensor/tensor.h"
#include <string.h>

/* Below this many elements an elementwise/norm kernel runs on one thread (fork/join costs ~1-2 us). */
#define T_PAR_MIN 32768

/* Returns NULL from the enclosing op if any listed input is NULL (error propagation). */
#define T_NONNULL(...)                                                       \
    do {                                                                     \
        const Tensor *t_in_[] = {__VA_ARGS__};                               \
        for (size_t t_i_ = 0; t_i_ < sizeof t_in_ / sizeof t_in_[0]; t_i_++) \
            if (!t_in_[t_i_]) return NULL;                                   \
    } while (0)

static inline bool t_needs_grad(const Tensor *t) { return t && t->requires_grad; }

/* Contiguous strides for shape. */
void t_contig_strides(int ndim, const int64_t *shape, int64_t *stride);
/* Broadcast result shape of a and b; returns -1 (and reports through t_error(op)) when incompatible. */
int t_broadcast_shape(const char *op, const Tensor *a, const Tensor *b, int *ndim, int64_t *shape);
/* Strides that read `x` as if broadcast to (ndim, shape): 0 on broadcast axes. */
void t_broadcast_strides(const Tensor *x, int ndim, const int64_t *shape, int64_t *stride);
/* dst[i] += src at strided positions: dst is indexed by (dstride, doffset), src is contiguous in shape.
 * Used to scatter a view's gradient into its parent's gradient. Single-threaded over outer rows if
 * dst positions may alias (broadcast strides 0). */
void t_strided_add(float *dst, const int64_t *dstride, int ndim, const int64_t *shape, const float *src);
/* dst contiguous = src strided. */
void t_strided_copy(float *dst, const float *src, const int64_t *sstride, int ndim, const int64_t *shape);
/* Header-only tensor in the arena with the given shape and contiguous strides, data = NULL. */
Tensor *t_header(int ndim, const int64_t *shape);
/* Clears t's lazy-zero mark and takes it off the list of marked gradients (nothing if unmarked). */
void t_grad_forget(Tensor *t);
/* Adds n floats from src into t's gradient (allocated on demand). */
void t_grad_add(Tensor *t, const float *src, int64_t n);

/* Marks the 2 MiB-aligned interior of [p, p + bytes) for transparent huge pages (a no-op where the
 * kernel lacks them). Large streamed buffers — weights, gradients, the activation arena — then cost the
 * TLB a few entries instead of thousands. */
void t_advise_huge_pages(void *p, size_t bytes);

/* The tape's side of the arena (autograd.c): releasing the arena to `mark` drops the nodes recorded after
 * it; a reset drops them all. */
void t_tape_truncate_to(size_t mark);
void t_tape_clear(void);

#endif
