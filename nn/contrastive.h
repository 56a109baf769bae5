#ifndef DACLIP_NN_CONTRASTIVE_H
#define DACLIP_NN_CONTRASTIVE_H
/* The CLIP contrastive objective shared by CLIP training (clip/) and DA-CLIP's controller (controller/). */
#include "tensor/tensor.h"

/* x / ||x|| over the last axis (F.normalize with eps 1e-12 on the norm). */
Tensor *nn_l2_normalize(Tensor *x);

/* open_clip's ClipLoss with labels arange(N): (CE(s·I·Tᵀ) + CE(s·T·Iᵀ)) / 2, s = exp(logit_scale).
 * img, txt: [N, D] unnormalised features (normalised here); logit_scale: shape [] parameter.
 * If logits_out is not NULL it receives s·I·Tᵀ [N, N] (image -> text), e.g. for accuracy. */
Tensor *nn_clip_loss(Tensor *img, Tensor *txt, Tensor *logit_scale, Tensor **logits_out);

/* Top-1 accuracy of each row's argmax against arange(N), from a logits matrix [N, N]. */
double nn_top1_diag(const Tensor *logits);

#endif
