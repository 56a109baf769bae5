/* silu(h·(1 + scale) + shift) as one op (tensor/ops_fused.h): the ResBlock's modulation and activation on an
 * existing tensor, with the row kernels the fused convolution applies as it stores (tensor/conv_act.h). */
#include "tensor/conv_act.h"
#include "tensor/internal.h"
#include "tensor/ops_fused.h"

static void scale_shift_silu_backward(TNode *n) {
    Tensor *h = n->in[0], *ss = n->in[1], *y = n->out;
    int64_t N = h->shape[0], C = h->shape[1], P = N && C ? t_numel(h) / (N * C) : 0;
    float *dh = t_needs_grad(h) ? t_grad_buf(h) : NULL;
    float *dss = t_needs_grad(ss) ? t_grad_buf(ss) : NULL;
    if ((t_needs_grad(h) && !dh) || (t_needs_grad(ss) && !dss)) return;   /* out of memory: reported */
#pragma omp parallel for schedule(static) if (N * C * P > T_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t b = nc / C, c = nc % C;
        float dscale, dshift;
        act_sss_backward(h->data + nc * P, y->grad + nc * P, dh ? dh + nc * P : NULL, true, P,
                         1.0f + ss->data[b * 2 * C + c], ss->data[b * 2 * C + C + c], &dscale, &dshift);
        if (dss) {   /* each (b, c) pair is owned by one iteration: no race */
            dss[b * 2 * C + c] += dscale;
            dss[b * 2 * C + C + c] += dshift;
        }
    }
}

Tensor *t_scale_shift_silu(Tensor *h, Tensor *ss) {
    T_NONNULL(h, ss);
    char sh[96], sv[96];
    if (h->ndim < 2 || ss->ndim != 2 || ss->shape[0] != h->shape[0] || ss->shape[1] != 2 * h->shape[1]) {
        t_error("scale_shift_silu", "h %s needs ss [N, 2C], got %s", t_shape_str(h, sh, sizeof sh),
                t_shape_str(ss, sv, sizeof sv));
        return NULL;
    }
    h = t_contiguous(h);
    T_NONNULL(h);
    ss = t_contiguous(ss);
    T_NONNULL(ss);
    int64_t N = h->shape[0], C = h->shape[1], P = N && C ? t_numel(h) / (N * C) : 0;
    Tensor *y = t_new_like(h);
    T_NONNULL(y);
#pragma omp parallel for schedule(static) if (N * C * P > T_PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t b = nc / C, c = nc % C;
        act_sss_forward(h->data + nc * P, y->data + nc * P, P, 1.0f + ss->data[b * 2 * C + c],
                        ss->data[b * 2 * C + C + c]);
    }
    Tensor *in[2] = {h, ss};
    t_record("scale_shift_silu", y, scale_shift_silu_backward, 2, in);
    return y;
}
