#ifndef DACLIP_NN_PT_STATE_DICT_H
#define DACLIP_NN_PT_STATE_DICT_H
/* A model's state dict inside a PyTorch checkpoint (tensor/pt_reader.h), as the official loaders see it
 * (reference §6.1): the "state_dict" entry when there is one (open_clip training checkpoints), else the whole
 * object; a leading "module." (DDP) stripped; names that only alias another name's tensor (DaCLIP's "visual.*",
 * the same module as "clip.visual.*") dropped. Anything else (the optimizer, epoch, name) is never read. */
#include <stdbool.h>

#include "nn/module.h"
#include "tensor/pt_reader.h"

typedef struct {
    PtFile *f;
    int n;
    char **names;            /* normalised names */
    const PtEntry **e;       /* their tensors */
    int aliases_dropped;
} PtStateDict;

/* 0, or -1 with t_errmsg() naming the file. */
int pt_state_dict_open(const char *path, PtStateDict *sd);
void pt_state_dict_close(PtStateDict *sd);
const PtEntry *pt_state_dict_find(const PtStateDict *sd, const char *name);
/* Loads the state dict into ps by name, as params_load_file does (strict: every parameter present with its
 * shape and nothing else). */
int params_load_pt(ParamSet *ps, PtStateDict *sd, bool strict, LoadReport *rep);
/* true when the path names a PyTorch checkpoint (.pt, .pth, .bin) rather than a safetensors file. */
bool pt_is_checkpoint_path(const char *path);

#endif
