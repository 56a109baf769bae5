#ifndef DACLIP_TRAIN_CLIP_TRAIN_H
#define DACLIP_TRAIN_CLIP_TRAIN_H
/* Contrastive CLIP training (open_clip recipe): symmetric InfoNCE, learnable temperature clamped to
 * [0, ln 100] after every step, AdamW (betas 0.9/0.98, eps 1e-6, weight decay on >=2-D non-norm,
 * non-bias weights), warmup + cosine, periodic validation and crash-safe checkpoints with resume.
 * Images are read from their files batch by batch while training runs (train/clip_train_stream.h): memory
 * does not grow with the dataset; the token ids of every row are made once up front. */
#include <stdbool.h>
#include <stdint.h>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "nn/module.h"

typedef struct {
    int64_t n;
    int size;            /* side of the CLIP view the images are preprocessed to */
    char **paths;        /* [n] image files (resolved against the root) */
    char *csv;           /* the CSV they were listed in: row i is its line i + 2 (messages); may be NULL */
    int ctx;
    int32_t *ids;        /* [n, ctx] */
    char **titles;       /* [n] the text each row was tokenised from (owned) */
} ClipSamples;

/* Reads a dataset CSV (filepath, title; tab-separated, as written by make-dataset), checks that every image
 * file exists (a missing one is an error naming the CSV line and the file) and tokenises every title (the whole
 * title, as open_clip does without --da); images are decoded only when their batch comes. Relative file paths
 * are resolved against `root` when given. -1 on error, with a message naming the file in *err. */
int clip_samples_from_csv(const char *csv, const char *root, Tokenizer *tok, int size, int ctx, ClipSamples *out,
                          char *err, size_t errlen);
void clip_samples_free(ClipSamples *s);

typedef struct {
    int64_t steps;
    int batch;
    double lr, weight_decay;
    int64_t warmup;
    uint64_t seed;
    int64_t val_every;       /* 0 = only at the end */
    int64_t ckpt_every;      /* 0 = only at the end */
    const char *out_dir;     /* NULL: no files (tests) */
    const char *resume;      /* checkpoint to continue from, or NULL */
    int64_t stop_at;         /* > 0: stop after this step (a time-boxed part of a longer schedule) */
    const char *model_meta;  /* JSON metadata for the exported model file (config, vocab), or NULL */
    int loader_threads;      /* image decoding threads (default 2) */
    int prefetch;            /* batches decoded ahead, including the one training (default 3) */
    bool quiet;
} ClipTrainOptions;

void clip_train_default_options(ClipTrainOptions *o);

typedef struct {
    double train_loss;       /* mean loss of the last 20 steps */
    double first_loss;       /* loss of the first step run */
    double val_loss, val_top1;
    double images_per_s;
    int loader_peak_batches; /* most batches the image stream held at once (<= prefetch) */
    int loader_peak_decoded; /* most decoded images alive at once (<= loader_threads) */
} ClipTrainResult;

int clip_train(Clip *m, ParamSet *ps, const ClipSamples *train, const ClipSamples *val, const ClipTrainOptions *o,
               ClipTrainResult *res);

/* Validation: mean contrastive loss over batches of `batch`, and image->text top-1 over the whole set,
 * where retrieving a text identical to the true one counts as correct (class-like captions repeat). Images are
 * streamed like training's. -1 on error (an unreadable image: message on stderr). */
int clip_evaluate(Clip *m, const ClipSamples *val, int batch, double *loss, double *top1);

#endif
