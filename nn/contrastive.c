#include "nn/contrastive.h"

#include <math.h>
#include <stdlib.h>

#include "tensor/ops.h"

Tensor *nn_l2_normalize(Tensor *x) {
    int last = -1;
    Tensor *sq = t_sum(t_mul(x, x), 1, &last, true);          /* [..., 1] */
    return t_mul(x, t_rsqrt(t_clamp(sq, 1e-24f, INFINITY)));   /* max(||x||, 1e-12) as in F.normalize */
}

Tensor *nn_clip_loss(Tensor *img, Tensor *txt, Tensor *logit_scale, Tensor **logits_out) {
    if (!img || !txt || !logit_scale) return NULL;
    int64_t n = img->shape[0];
    Tensor *i = nn_l2_normalize(img), *t = nn_l2_normalize(txt);    /* [N, D] */
    Tensor *s = t_exp(logit_scale);                                   /* [] */
    Tensor *logits = t_mul(t_matmul(i, t_transpose(t, 0, 1)), s);     /* [N, N] image -> text */
    if (!logits) return NULL;
    int32_t *labels = t_arena_alloc(sizeof(int32_t) * (size_t)n);
    if (!labels) return NULL;
    for (int64_t k = 0; k < n; k++) labels[k] = (int32_t)k;
    Tensor *li = t_cross_entropy(logits, labels);
    Tensor *lt = t_cross_entropy(t_contiguous(t_transpose(logits, 0, 1)), labels);
    if (logits_out) *logits_out = logits;
    return t_axpby(li, 0.5f, lt, 0.5f);
}

double nn_top1_diag(const Tensor *logits) {
    int64_t n = logits->shape[0], m = logits->shape[1];
    int64_t hit = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *row = logits->data + r * logits->stride[0];
        int64_t best = 0;
        for (int64_t c = 1; c < m; c++)
            if (row[c * logits->stride[1]] > row[best * logits->stride[1]]) best = c;
        hit += best == r;
    }
    return n ? (double)hit / (double)n : 0.0;
}
