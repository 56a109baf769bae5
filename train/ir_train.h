#ifndef DACLIP_TRAIN_IR_TRAIN_H
#define DACLIP_TRAIN_IR_TRAIN_H
/* IR-SDE training (reference §4.4, §5.4; the official uir/config/daclip-sde recipe): the MD sampler
 * (data/loader.h: type = index mod #types, aligned LQ/GT crops, flips and transpose, the CLIP view of the LQ
 * patch); DA-CLIP frozen and run without a tape, giving the content and degradation embeddings of every LQ
 * patch; t uniform in 1..T per sample; loss = irsde_loss (L1 between the reverse-SDE mean with the predicted
 * noise and the posterior mean); AdamW (betas 0.9/0.99, no weight decay); cosine annealing to eta_min over the
 * run; EMA (ema_pytorch, beta 0.995, every 10 steps). Validation restores a few val images with the posterior
 * sampler on the EMA weights and reports PSNR/SSIM as the official evaluation (crop 4).
 *
 * Everything random in step s is a function of (seed, s): the loader's batch s, and t and the marginal's noise
 * from a generator seeded by (seed, s). So a resumed run is bit-identical to one that never stopped, and a
 * fine-tuning run (--init) sees the loss its weights give, on the same batch, as the run that wrote them. */
#include <stdbool.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "irsde/sde.h"
#include "irsde/unet.h"
#include "train/daclip_model.h"

/* ------------------------------------------------------------------ the model being trained */

typedef struct {
    UNetConfig cfg;
    ConditionalUNet net;
    ParamSet ps;
    IrSde sde;
    DaclipModel *daclip;   /* borrowed; NULL when the U-Net uses no context (plain IR-SDE) */
    int clip_size;         /* side of the DA-CLIP view (0 without DA-CLIP) */
} IrModel;

/* --model: a preset name (universal, small, plain) or a JSON file with the official option names (the
 * metadata format of unet.h). no_daclip switches a preset's contexts off (plain IR-SDE); a JSON config that
 * uses a context is then an error. 0, or -1 with a message in err. */
int ir_model_config(const char *spec, bool no_daclip, UNetConfig *cfg, char *err, size_t errlen);

/* Builds the U-Net: from init_path (fine-tuning: a model file of ours or an official universal-ir.pth; the
 * config comes from the file, every tensor loaded strictly), else from cfg with fresh weights drawn from seed. The SDE is the universal-IR one (cosine,
 * max_sigma 50, T 100, eps 0.005). daclip (may be NULL) is attached when the U-Net uses a context: a U-Net
 * that needs one without a DA-CLIP, or whose context_dim differs from the DA-CLIP's embedding size, is an
 * error naming model_name (the --init file or --model) and daclip_name. 0, or -1 with a message in err. */
int ir_model_init(IrModel *m, const UNetConfig *cfg, const char *init_path, const char *model_name,
                  DaclipModel *daclip, const char *daclip_name, uint64_t seed, char *err, size_t errlen);
void ir_model_free(IrModel *m);
/* true when the U-Net takes DA-CLIP embeddings (prompt or cross-attention). */
bool ir_model_uses_context(const UNetConfig *cfg);

/* ------------------------------------------------------------------ data */

/* "noisy,rainy" -> mask[type] = true; NULL or "" selects all ten. -1 with err for an unknown name. */
int ir_types_parse(const char *list, bool mask[DEGRADE_N], char *err, size_t errlen);

/* ROOT/<split>/<degradation>/{LQ,GT} restricted to the types in mask: a type folder with LQ/ but no GT/ (or
 * the reverse), different LQ and GT counts, an empty pair of folders, or a selected type that is absent
 * (when mask selects fewer than ten) is an error naming the folder. 0, or -1 with err. */
int ir_dataset_open(const char *root, const char *split, const bool mask[DEGRADE_N], Dataset *ds, char *err,
                    size_t errlen);

/* A few validation images, prepared once: LQ/GT (centre crops of side `crop` when crop > 0 and the image is
 * larger), the degraded input's own PSNR/SSIM, and the DA-CLIP embeddings of the LQ (its CLIP view, as the
 * official test computes them from the image it restores). */
typedef struct {
    int n;
    int *type;
    float **lq;                /* CHW, [0, 1]: the sampler's input */
    Image *gt;                 /* HWC, [0, 1]: the metrics' reference */
    float *content, *degra;    /* [n, E] or NULL without DA-CLIP */
    int64_t E;
    double lq_psnr, lq_ssim;   /* means over the images: the degraded input against GT */
} IrValSet;

/* Picks n images spread over the types (round robin, each type in file order). 0, or -1 with err. */
int ir_val_load(IrModel *m, const Dataset *ds, int n, int crop, IrValSet *v, char *err, size_t errlen);
void ir_val_free(IrValSet *v);

typedef struct {
    double psnr, ssim;         /* means over the images of the restored output (clamped, 8-bit) against GT */
    double lq_psnr, lq_ssim;
} IrValResult;

/* Restores every validation image with the posterior sampler (irsde_sample) on the model's current weights,
 * noise seeded by (seed, image). 0, or -1 with t_errmsg(). */
int ir_validate(IrModel *m, const IrValSet *v, uint64_t seed, IrValResult *r);

/* ------------------------------------------------------------------ training */

typedef struct {
    int64_t steps;             /* the schedule's length (cosine annealing over it) */
    int batch, patch;
    double lr, eta_min;
    double ema_beta;
    int ema_every;
    int64_t val_every;         /* 0: validate at the end only */
    uint64_t seed;
    int64_t ckpt_every;        /* 0: checkpoint at the end only */
    int64_t stop_at;           /* > 0: stop after this step (resume later) */
    int loader_threads;
    const char *out_dir;       /* NULL: no files (tests) */
    const char *resume;        /* a checkpoint.safetensors of the same run */
    bool quiet;
} IrTrainOptions;

/* The official recipe at a size that trains here: batch 4, patch 128, lr 2e-4 -> 1e-6, EMA 0.995 every 10. */
void ir_train_default_options(IrTrainOptions *o);

typedef struct {
    double first_loss, last_loss;   /* the first step's loss; the mean of the last 50 */
    double val_psnr, val_ssim, lq_psnr, lq_ssim;   /* the last validation (NaN if none) */
    double images_per_s;
    int64_t steps_done;
} IrTrainResult;

/* Trains m on `train` (val may be NULL). Files in out_dir: model.safetensors (the EMA weights: what to sample
 * with), model_raw.safetensors (the raw weights), checkpoint.safetensors (atomic: weights, AdamW, EMA, step),
 * log.csv and loss.png. 0, or -1 after printing the problem. */
int ir_train(IrModel *m, const Dataset *train, const IrValSet *val, const IrTrainOptions *o, IrTrainResult *res);

/* The loader configuration ir_train uses for a run (batch s of the run is batch s of this sequence). */
void ir_loader_config(const IrModel *m, const Dataset *train, const IrTrainOptions *o, LoaderConfig *c);
/* The training loss of step `step` on `batch` with the model's current weights, without a tape: what
 * ir_train's step computes before its update (same t and noise). 0, or -1 with t_errmsg(). */
int ir_batch_loss(IrModel *m, const Batch *batch, uint64_t seed, int64_t step, double *loss);

#endif
