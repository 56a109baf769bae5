#ifndef DACLIP_TRAIN_DACLIP_MODEL_H
#define DACLIP_TRAIN_DACLIP_MODEL_H
/* A whole DA-CLIP (reference §1): the frozen CLIP ("clip.*", both towers) and the controller
 * ("visual_control.*", "logit_scale"), with its tokenizer, the cached text embeddings of the ten degradation
 * names, and model files: a safetensors state dict with the official DaCLIP names (minus the "visual.*" alias
 * of "clip.visual.*") whose metadata holds the CLIP configuration, the vocabulary and "arch":"daclip".
 * clip/ and controller/ never see each other; this is where they meet. */
#include <stdbool.h>
#include <stdint.h>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "controller/controller.h"
#include "data/degrade.h"
#include "nn/module.h"

typedef struct {
    Clip clip;                   /* frozen */
    DaclipController ctl;        /* trainable */
    ParamSet ps;
    Tokenizer *tok;
    char vocab[4096];            /* the vocabulary file in use */
    float *names;                /* [DEGRADE_N, E] raw text embeddings of the ten names, or NULL */
} DaclipModel;

/* A fresh DA-CLIP on top of a CLIP model file written by train-clip: the controller starts as a copy of the
 * image tower (official_quirk: as the official initial_controller, reference §1.5). 0, or -1 with err. */
int daclip_model_from_clip(const char *clip_path, const char *vocab, bool official_quirk, DaclipModel *m, char *err,
                           size_t errlen);
/* Loads a DA-CLIP model file (strict names and shapes; a leading "module." is stripped), or the official
 * PyTorch checkpoint (daclip_ViT-B-32.pt: its "state_dict", "module." stripped, the "visual.*" alias dropped,
 * the optimizer never read; configuration from the shapes, or from config_json, open_clip's model config).
 * clip_path of daclip_model_from_clip may be a .pt too (an open_clip CLIP state dict). */
int daclip_model_load(const char *path, const char *vocab, DaclipModel *m, char *err, size_t errlen);
int daclip_model_load_config(const char *path, const char *vocab, const char *config_json, DaclipModel *m, char *err,
                             size_t errlen);
/* true when the file is a DA-CLIP model (metadata arch, or controller tensors), false for a plain CLIP. */
bool daclip_file_is_daclip(const char *path);
/* Atomic save (temporary file, fsync, rename). 0, or -1 with t_errmsg(). */
int daclip_model_save(const DaclipModel *m, const char *path);
/* For inference only (classify, encode, restore, the frozen DA-CLIP of train-ir): both image towers' linear
 * weights packed in place for the GEMM kernels (controller_prepack, vit_prepack): the same results, ViT-B/32
 * encode 5–15 % faster, no extra memory. Saving unpacks them again (params_save_file). */
void daclip_model_prepack(DaclipModel *m);
void daclip_model_free(DaclipModel *m);

/* Computes (once) the raw text embeddings of the ten bare degradation names (reference §1.7). 0 or -1. */
int daclip_name_embeddings(DaclipModel *m);

/* Classifies B CLIP-normalised images [B, 3, S, S]: probs [B, DEGRADE_N] = softmax(100·cos(degradation
 * embedding, name embedding)) (the README's recipe); content/degradation [B, E] (unnormalised) if not NULL.
 * Runs without a tape, in the arena (the caller releases it). 0, or -1 with a message in t_errmsg(). */
int daclip_classify(DaclipModel *m, const float *images, int B, float *probs, float *content, float *degradation);

#endif
