#ifndef DACLIP_TENSOR_GRAD_WRITE_H
#define DACLIP_TENSOR_GRAD_WRITE_H
/* First-writer gradients. Backward functions add into gradient buffers, which t_grad_buf zero-fills on
 * first use. A backward that covers every element of an input's gradient can instead ask for the buffer
 * "for writing": if the input has no gradient yet (and lives in the arena), it gets an uninitialised
 * buffer and *fresh = true, and stores (=) where it would have added (+=), saving the zero fill and a
 * read of the buffer: one pass over memory instead of three on the memory-bound ops. */
#include "tensor/internal.h"

static inline float *t_grad_buf_for_write(Tensor *t, bool *fresh) {
    *fresh = !t->grad && !t->persistent;
    if (*fresh) t->grad = t_arena_alloc(sizeof(float) * (size_t)(t_numel(t) > 0 ? t_numel(t) : 1));
    return *fresh ? t->grad : t_grad_buf(t);
}

#endif
