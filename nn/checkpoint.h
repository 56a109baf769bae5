#ifndef DACLIP_NN_CHECKPOINT_H
#define DACLIP_NN_CHECKPOINT_H
/* A training state in ONE safetensors file, written atomically by st_save (temp file, fsync, rename,
 * directory fsync): a crash or kill during a save leaves the previous checkpoint intact.
 * Tensors: every parameter under its state-dict name (so the file also loads as a plain state dict
 * with params_load_file(..., strict = false)), and, under names containing '/' which PyTorch keys never
 * do: "optim/exp_avg/<name>", "optim/exp_avg_sq/<name>" (AdamW), "optim/momentum/<name>" (SGD),
 * "ema/<name>". __metadata__: format "daclip-train-state", version, step, lr, optim kind and step,
 * rng (4 hex words), ema step, and the run's config string when given. Loading restores all of it, so the
 * resumed run is bit-identical to one that never stopped (for a fixed thread count). */
#include <stdint.h>

#include "nn/ema.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "tensor/rng.h"

#define CKPT_FORMAT "daclip-train-state"
#define CKPT_VERSION 1

typedef struct {
    ParamSet *params;        /* required */
    Optim *opt;              /* optional (NULL: not saved / not restored) */
    TRng *rng;               /* optional */
    Ema *ema;                /* optional; must not be swapped in while saving */
    int64_t step;            /* training step = schedule position */
    double lr;               /* lr of the last step (informational; schedules are functions of step) */
    const char *config;      /* optional: the options a resumed run must repeat to stay bit-identical (e.g.
                              * "crop_scale=1 mirror=0 seed=0"; [A-Za-z0-9_.=: -] only); saved as metadata
                              * "config"; loading refuses a checkpoint whose config differs (one without: old
                              * files, accepted) */
} TrainState;

/* Returns 0, or -1 with t_errmsg() naming the file and the problem. */
int ckpt_save(const char *path, const TrainState *s);
/* Restores every component present in s from the file. Strict, and all checked before anything is copied
 * (a refused file leaves s untouched): the parameters exactly (names, shapes), every optimizer buffer and
 * EMA shadow with its parameter's shape, all values finite (exp_avg_sq also >= 0), step counters in
 * 0..1e12, lr finite and >= 0, the rng words well-formed. Stale temporaries of killed saves of `path` are
 * removed first (st_remove_stale_temps). */
int ckpt_load(const char *path, TrainState *s);

#endif
