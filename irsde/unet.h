#ifndef DACLIP_IRSDE_UNET_H
#define DACLIP_IRSDE_UNET_H
/* The IR-SDE noise network: daclip-uir's ConditionalUNet (reference §5; DenoisingUNet_arch.py), steered
 * by DA-CLIP through the degradation embedding (a learned prompt added to the time embedding) and the
 * content embedding (the cross-attention context of the SpatialTransformers).
 *
 *   x = cat(x_t − μ, μ), reflect-padded right/bottom to a multiple of 2^depth; init_conv 7×7 (kept for the
 *   long skip); t = time_mlp(time) [+ prompt_mlp(softmax(text_mlp(d)) ⊙ prompt)];
 *   down level i: ResBlock, ResBlock, attention, Downsample (the deepest: 3×3 conv, no halving);
 *   mid: ResBlock, attention, ResBlock; up levels deepest first, each ResBlock taking a skip by concat;
 *   final ResBlock on cat(x, stem) and a 3×3 conv; cropped back to H×W: the predicted noise ε̂.
 *   Attention is LinearAttention(4 heads × 32) except, with use_image_context, levels >= 3 and mid, which
 *   are SpatialTransformers (C/32 heads of 32, GroupNorm(32)) attending to the content embedding.
 *
 * Parameter names are the state-dict keys of universal-ir.pth (prompt, init_conv.weight, time_mlp.1/3,
 * text_mlp.0/2, prompt_mlp, downs.L.{0,1,2,3}…, mid_block1, mid_attn.fn…, mid_block2, final_res_block,
 * final_conv), registered in state_dict order. The universal config has 224 tensors, 48,975,747 values.
 *
 * Configurations the official constructor accepts build the identical model. One generalisation: the
 * official code computes dim/32 heads at every level and divides by it, refusing nf < 32; here heads are
 * only needed where a SpatialTransformer is built, so small models (nf 8, 16) work when those levels have
 * multiples of 32 channels (GroupNorm(32) needs that anyway). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/linear_attention.h"
#include "nn/module.h"
#include "nn/resblock.h"
#include "nn/spatial_transformer.h"
#include "nn/time_embedding.h"
#include "nn/updown.h"
#include "tensor/safetensors.h"

#define UNET_MAX_DEPTH 8
#define UNET_HEAD_CHANNELS 32        /* num_head_channels = dim_head of the SpatialTransformers */
#define UNET_FIRST_SPATIAL_LEVEL 3   /* with image context, levels >= 3 use SpatialTransformer */
#define UNET_FORMAT "daclip-irsde-unet"

/* The official options (options/train.yml network_G.setting). */
typedef struct {
    int in_nc, out_nc;          /* image channels (3); the network sees 2·in_nc */
    int nf;                     /* base width; time_dim = 4·nf */
    int depth;                  /* len(ch_mult) */
    int ch_mult[UNET_MAX_DEPTH];
    int context_dim;            /* DA-CLIP embedding width (512); 0 = none (the official None) */
    bool use_degra_context;     /* the prompt module (degradation embedding) */
    bool use_image_context;     /* SpatialTransformers with the content embedding */
} UNetConfig;

/* "universal" (the released model: nf 64, ch_mult 1,2,4,8, context 512, both contexts),
 * "small" (nf 16, ch_mult 1,2,2,4, context 512, both contexts: trainable on 2 cores),
 * "plain" (the universal layout without DA-CLIP: no prompt, LinearAttention everywhere).
 * -1 for another name. */
int unet_config_preset(const char *name, UNetConfig *c);
/* Every field positive and bounded, and consistent (a context needs context_dim > 0; SpatialTransformer
 * levels need multiples of 32 channels; nf even). 0, or -1 with t_errmsg() naming the field. */
int unet_config_validate(const UNetConfig *c);
int unet_time_dim(const UNetConfig *c);      /* 4·nf */
int unet_pad_multiple(const UNetConfig *c);  /* 2^depth: inputs are reflect-padded to a multiple of it */

/* Metadata of a U-Net model file: a flat JSON object of strings with the official option names,
 * {"format":"daclip-irsde-unet","in_nc":"3","out_nc":"3","nf":"64","ch_mult":"[1, 2, 4, 8]",
 *  "context_dim":"512","use_degra_context":"true","use_image_context":"true"}.
 * to_json returns -1 if buf is too small. */
int unet_config_to_json(const UNetConfig *c, char *buf, size_t n);
/* Parses such an object (other keys are ignored; "format", when present, must be UNET_FORMAT; ch_mult
 * also as "1,2,4,8"; booleans true/false/True/False/1/0; context_dim "none"/"null" = 0) and validates it.
 * `source` names the file in errors. 0, or -1 with t_errmsg(). */
int unet_config_from_json(const char *json, const char *source, UNetConfig *c);
int unet_config_from_file(const StFile *f, UNetConfig *c);

/* Residual(PreNorm(dim, attention)) of one level: LinearAttention or SpatialTransformer. */
typedef struct {
    bool spatial;
    LinearAttnBlock linear;
    SpatialTransformerBlock st;
} UNetAttention;

typedef enum { UNET_RESAMPLE_CONV, UNET_RESAMPLE_DOWN, UNET_RESAMPLE_UP } UNetResample;

/* downs.L / ups.L: [ResBlock, ResBlock, attention, resample] = keys .0 .1 .2 .3 */
typedef struct {
    ResBlock block1, block2;
    UNetAttention attn;
    UNetResample resample;
    Conv2d conv;            /* UNET_RESAMPLE_CONV: 3×3, no bias (deepest down, level-0 up) */
    Downsample down;        /* 4×4 stride 2 */
    Upsample up;            /* nearest ×2 + 3×3 */
} UNetLevel;

typedef struct {
    UNetConfig cfg;
    Tensor *prompt;                     /* [1, time_dim] (use_degra_context) */
    Conv2d init_conv;
    TimeMLP time_mlp;
    Linear text_mlp0, text_mlp2, prompt_mlp;
    UNetLevel downs[UNET_MAX_DEPTH];    /* downs[i]: level i */
    UNetLevel ups[UNET_MAX_DEPTH];      /* ups[j]: level depth−1−j (official order: deepest first) */
    ResBlock mid_block1, mid_block2;
    UNetAttention mid_attn;
    ResBlock final_res_block;
    Conv2d final_conv;
} ConditionalUNet;

/* Validates cfg and registers every parameter under prefix ("" for a plain state dict), initialised as
 * PyTorch does (default Linear/Conv init, prompt U[0,1), proj_out zero). 0, or -1 with t_errmsg(). */
int unet_init(ConditionalUNet *u, ParamSet *ps, const char *prefix, const UNetConfig *cfg, TRng *rng);

/* ε̂ = UNet(x_t, μ, t, d, c).
 *   xt, cond  [B, in_nc, H, W]  (cond = μ = the LQ image)
 *   time      B floats: the step t, or t·T/sample_T when sampling with fewer steps (irsde_time_input)
 *   degra     [B, context_dim] degradation embedding, or NULL (no prompt; ignored without use_degra_context)
 *   content   [B, context_dim] content embedding: required with use_image_context, ignored without
 * -> [B, out_nc, H, W]. H and W need not be multiples of 2^depth, but the reflect padding must be smaller
 * than them. NULL with t_error() on a shape mismatch. */
Tensor *unet_forward(const ConditionalUNet *u, Tensor *xt, Tensor *cond, const float *time, Tensor *degra,
                     Tensor *content);

/* A U-Net model file: the parameters under their official names plus the config as metadata. */
int unet_save_file(const ParamSet *ps, const UNetConfig *cfg, const char *path);
/* Reads the config from path's metadata, builds the model into ps (empty) and loads every tensor
 * strictly (names and shapes). 0, or -1 with t_errmsg() naming the file (a config that does not match
 * the tensors lists the missing, unexpected and wrong-shape keys). */
int unet_load_file(const char *path, ConditionalUNet *u, ParamSet *ps);

#endif
