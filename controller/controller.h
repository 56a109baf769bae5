#ifndef DACLIP_CONTROLLER_CONTROLLER_H
#define DACLIP_CONTROLLER_CONTROLLER_H
/* DA-CLIP's controller (reference §1.2–1.5): a trainable copy of the frozen CLIP image tower whose blocks
 * each feed a zero-initialised Linear(W, W). Its outputs:
 *   - the degradation embedding  ln_post(CLS) @ proj of the controller itself, [B, E], unnormalised;
 *   - one control per block, c_i = zero_modules[i](h_i) [B, L, W], added to the frozen encoder's residual
 *     stream after block j = L−1−i (the reversed pairing of §1.3: the official encoder pops the list);
 *   - through the frozen tower, the content embedding [B, E], unnormalised.
 * Parameter names (the official DaCLIP state dict):
 *   visual_control.{conv1.weight, class_embedding, positional_embedding, ln_pre.*, ln_post.*, proj}
 *   visual_control.transformer.transformer.resblocks.N.*       (the copied blocks)
 *   visual_control.transformer.zero_modules.N.{weight, bias}   ([W, W], [W])
 *   logit_scale                                                 (DA-CLIP's own temperature, [])
 * The frozen tower is any nn/ VisionTransformer of the same configuration (clip/'s "clip.visual"):
 * controller/ never includes clip/. */
#include <stdbool.h>

#include "nn/linear.h"
#include "nn/module.h"
#include "nn/vision_transformer.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef struct {
    VisionTransformer visual;   /* "visual_control.*" */
    Linear *zero_modules;       /* [layers] */
    Tensor *logit_scale;        /* [] */
} DaclipController;

/* Registers the controller's parameters in ps (zero layers at zero, logit_scale = ln(1/0.07)).
 * Returns 0, or -1 for an invalid configuration (t_error). */
int controller_init(DaclipController *c, ParamSet *ps, const VisionConfig *cfg, TRng *rng);
void controller_free(DaclipController *c);

/* For inference only: the controller's linear weights (its blocks and zero layers) packed in place for the
 * GEMM kernels (transformer_prepack; the same results). */
void controller_prepack(const DaclipController *c);

/* Starts the controller from the frozen tower: every tower weight copied, the zero layers zeroed, the
 * temperature set to clip_logit_scale. With official_quirk, reproduces DaCLIP.initial_controller as run
 * by the official training (§1.5): zero_modules.0.weight gets every row = the tower's ln_post.weight and
 * zero_modules.0.bias = ln_post.bias, and the controller's ln_post stays at its fresh init (1, 0).
 * -1 if the configurations differ (t_error). */
int controller_start_from(DaclipController *c, const VisionTransformer *frozen, float clip_logit_scale,
                          bool official_quirk);

/* The controller pass. Returns the degradation embedding [B, E]; controls[j] (room for `layers`) receives the
 * control the frozen encoder adds after its block j, i.e. zero_modules[L−1−j](h_{L−1−j}) [B, L, W].
 * cls_only_last: the frozen encoder's last block keeps only the class token (vit_forward without hidden),
 * so the control it receives, c_0, is computed for that token only ([B, 1, W]). */
Tensor *controller_forward(const DaclipController *c, Tensor *img, Tensor **controls, bool cls_only_last);

/* DaCLIP.encode_image(control=True): img [B, 3, S, S] CLIP-normalised -> *content [B, E] (the frozen tower
 * steered by the controls) and *degradation [B, E], both unnormalised. Returns 0 or -1. */
int daclip_encode_image(const DaclipController *c, const VisionTransformer *frozen, Tensor *img, Tensor **content,
                        Tensor **degradation);

#endif
