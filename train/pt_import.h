#ifndef DACLIP_TRAIN_PT_IMPORT_H
#define DACLIP_TRAIN_PT_IMPORT_H
/* The official checkpoints' configurations (reference §1.1, §5.1, §6): from the tensors' shapes, as open_clip's
 * build_model_from_openai_state_dict does (heads = width / 64, open_clip's head_width), or from the official
 * JSON files given with --config: open_clip's model config ({"embed_dim", "vision_cfg", "text_cfg"}) for
 * CLIP / DA-CLIP, and the options' network_G.setting block ({"in_nc", "out_nc", "nf", "ch_mult",
 * "context_dim", "use_degra_context", "use_image_context"}, alone or inside the whole options) for the U-Net. */
#include <stddef.h>

#include "clip/model.h"
#include "irsde/unet.h"
#include "nn/pt_state_dict.h"

/* CLIP configuration of the tensors under `prefix` ("" for a CLIP, "clip." inside a DA-CLIP); vocab_size
 * from the token embedding. 0, or -1 with err. */
int clip_config_from_pt(const PtStateDict *sd, const char *prefix, ClipConfig *cfg, char *err, size_t errlen);
int clip_config_from_open_clip_json(const char *path, ClipConfig *cfg, char *err, size_t errlen);
int unet_config_from_pt(const PtStateDict *sd, UNetConfig *cfg, char *err, size_t errlen);
int unet_config_from_options_json(const char *path, UNetConfig *cfg, char *err, size_t errlen);

/* What a checkpoint holds, by its names. */
typedef enum { PT_KIND_UNKNOWN, PT_KIND_CLIP, PT_KIND_DACLIP, PT_KIND_UNET } PtKind;
PtKind pt_state_dict_kind(const PtStateDict *sd);

/* Loads a U-Net from a model file of ours or a .pt/.pth (config from config_json when given, else from the
 * shapes). 0, or -1 with err naming the file. */
int unet_model_open(const char *path, const char *config_json, ConditionalUNet *u, ParamSet *ps, UNetConfig *cfg,
                    char *err, size_t errlen);

#endif
