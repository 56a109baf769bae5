#ifndef DACLIP_TRAIN_DACLIP_TRAIN_H
#define DACLIP_TRAIN_DACLIP_TRAIN_H
/* DA-CLIP controller training (reference §2): the CLIP is frozen (no gradient, no optimizer state, no
 * weight-gradient products); loss = InfoNCE(content embedding, caption embedding) + InfoNCE(degradation
 * embedding, degradation-name embedding) with DA-CLIP's one learnable temperature (clamped to [0, ln 100] after
 * every step) and labels arange(N) in both terms (same-type samples are negatives of each other, as in the
 * official loss); AdamW (0.9, 0.98, eps 1e-6) with the official decay groups, warmup + cosine; the training
 * view is RandomResizedCrop(scale 0.9–1). Text embeddings never change, so captions are encoded once. */
#include <stdbool.h>
#include <stdint.h>

#include "data/degrade.h"
#include "train/daclip_model.h"

typedef struct {
    int64_t n, E;
    char **paths;        /* LQ images */
    int *type;           /* degradation index of each row */
    float *text;         /* [n, E] raw caption embeddings (frozen text tower) */
} DaclipSamples;

/* Reads a dataset CSV (filepath<TAB>"caption: degradation", as make-dataset writes; relative paths against
 * `root`), checks every degradation name, and encodes the captions. 0, or -1 with a message naming the file
 * (and line) in err. */
int daclip_samples_from_csv(DaclipModel *m, const char *csv, const char *root, DaclipSamples *s, char *err,
                            size_t errlen);
void daclip_samples_free(DaclipSamples *s);

typedef struct {
    int64_t steps;
    int batch;
    double lr, weight_decay;
    int64_t warmup;
    uint64_t seed;
    double scale_min;        /* RandomResizedCrop scale lower bound (0.9) */
    bool mirror;             /* mirror half the training views left-right (off: not in the official recipe) */
    int64_t val_every, ckpt_every;   /* 0: only at the end */
    const char *out_dir;     /* NULL: no files (tests) */
    const char *resume;
    int64_t stop_at;         /* > 0: stop after this step */
    bool quiet;
} DaclipTrainOptions;

void daclip_train_default_options(DaclipTrainOptions *o);

typedef struct {
    double first_loss, train_loss;      /* first step; mean of the last 20 */
    double val_loss_clip, val_loss_degra, val_acc;
    double images_per_s;
    int64_t steps_done;
} DaclipTrainResult;

typedef struct {
    int64_t n;
    double loss_clip, loss_degra;        /* mean over batches of `batch` (NaN if no batch of 2) */
    double acc;                          /* degradation top-1 over the ten names */
    int64_t confusion[DEGRADE_N][DEGRADE_N];   /* [true][predicted] */
} DaclipEval;

int daclip_evaluate(DaclipModel *m, const DaclipSamples *val, int batch, DaclipEval *ev, bool progress);
int daclip_train(DaclipModel *m, const DaclipSamples *train, const DaclipSamples *val, const DaclipTrainOptions *o,
                 DaclipTrainResult *res);

/* The official decay rule (open_clip main.py): weight decay on tensors with ndim >= 2 whose name contains none
 * of "bn", "ln", "bias", "logit_scale" — so conv1, proj and positional_embedding decay. An OptGroupFn. */
int daclip_decay_group(const char *name, const Tensor *t, void *ctx);

#endif
