/* silu(a) + r as one op (tensor/ops_fused.h): the ResBlock's second activation and its residual add on existing
 * tensors, with the row kernels the fused convolution applies as it stores (tensor/conv_act.h). */
#include "tensor/conv_act.h"
#include "tensor/internal.h"
#include "tensor/ops_fused.h"

#define SILU_CHUNK 16384   /* elements per parallel work item */

static void silu_add_backward(TNode *n) {
    Tensor *a = n->in[0], *r = n->in[1], *y = n->out;
    int64_t total = t_numel(y);
    float *da = t_needs_grad(a) ? t_grad_buf(a) : NULL;
    float *dr = t_needs_grad(r) ? t_grad_buf(r) : NULL;
    if ((t_needs_grad(a) && !da) || (t_needs_grad(r) && !dr)) return;   /* out of memory: reported */
    if (da) {
#pragma omp parallel for schedule(static) if (total > T_PAR_MIN)
        for (int64_t c = 0; c < total; c += SILU_CHUNK)
            act_silu_backward(a->data + c, y->grad + c, da + c, true, total - c < SILU_CHUNK ? total - c : SILU_CHUNK);
    }
    if (dr) {
#pragma omp parallel for schedule(static) if (total > T_PAR_MIN)
        for (int64_t i = 0; i < total; i++) dr[i] += y->grad[i];
    }
}

Tensor *t_silu_add(Tensor *a, Tensor *r) {
    T_NONNULL(a, r);
    char sa[96], sr[96];
    if (!t_same_shape(a, r)) {
        t_error("silu_add", "shapes differ: %s and %s", t_shape_str(a, sa, sizeof sa), t_shape_str(r, sr, sizeof sr));
        return NULL;
    }
    a = t_contiguous(a);
    T_NONNULL(a);
    r = t_contiguous(r);
    T_NONNULL(r);
    Tensor *y = t_new_like(a);
    T_NONNULL(y);
    int64_t total = t_numel(y);
#pragma omp parallel for schedule(static) if (total > T_PAR_MIN)
    for (int64_t c = 0; c < total; c += SILU_CHUNK)
        act_silu_add_forward(a->data + c, r->data + c, y->data + c, total - c < SILU_CHUNK ? total - c : SILU_CHUNK);
    Tensor *in[2] = {a, r};
    t_record("silu_add", y, silu_add_backward, 2, in);
    return y;
}
