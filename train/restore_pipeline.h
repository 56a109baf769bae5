#ifndef DACLIP_TRAIN_RESTORE_PIPELINE_H
#define DACLIP_TRAIN_RESTORE_PIPELINE_H
/* What `daclip restore` and `daclip eval-ir` share: the two models and the schedule, DA-CLIP on the 224 CLIP
 * view of each image (reference §1.6, batched), the tiled sampler on HWC images with a progress bar, and
 * atomic image writes. */
#include <stdbool.h>
#include <stddef.h>

#include "data/degrade.h"
#include "data/image.h"
#include "train/daclip_model.h"
#include "train/restore.h"

#define RESTORER_CLIP_BATCH 16   /* images per DA-CLIP call */
#define RESTORER_GROUP_MAX 8     /* images sampled together (their tiles share U-Net batches) */

typedef struct {
    bool has_daclip;
    DaclipModel daclip;
    ParamSet unet_ps;
    ConditionalUNet unet;
    IrSde sde;
    int embed;                   /* DA-CLIP embedding width (0 without DA-CLIP) */
    bool needs_context;          /* the U-Net takes DA-CLIP embeddings */
} Restorer;

/* Loads the U-Net (a model file of ours or an official .pth, unet_model_open) and, when daclip_path is not
 * NULL, the DA-CLIP model (daclip_model_load: ours or an official .pt); builds the schedule with
 * `steps` sampling steps (0 = the trained T; the SDE options are the universal-IR ones unless the U-Net
 * file's metadata records "T", "max_sigma", "schedule" or "eps"). Refuses a U-Net whose context_dim differs
 * from DA-CLIP's embedding width, and a U-Net with contexts but no DA-CLIP. 0, or -1 with err. */
int restorer_open(Restorer *r, const char *daclip_path, const char *unet_path, int steps, char *err, size_t errlen);
void restorer_close(Restorer *r);

/* DA-CLIP's verdict on one image. */
typedef struct {
    bool ok;                     /* false: the image could not be read (reported on stderr) */
    int w, h;                    /* its size */
    int type;                    /* most probable degradation, -1 without DA-CLIP */
    float prob;
    float *content, *degra;      /* [embed] each (malloc'd, NULL without DA-CLIP) */
} RestoreEmbedding;

/* Loads each file, runs DA-CLIP on the CLIP views in batches of RESTORER_CLIP_BATCH and fills emb[0..n)
 * (without DA-CLIP only `ok` is set). An unreadable file gets ok = false and a line "<cmd>: <problem>" on
 * stderr. Returns the number of unreadable files, or -1 after a model error (message in err). */
int restorer_embed_files(Restorer *r, const char *cmd, char *const *paths, int n, RestoreEmbedding *emb, char *err,
                         size_t errlen);
void restore_embedding_free(RestoreEmbedding *e);

/* Restores n loaded images (HWC, 3 channels) with their embeddings into out[0..n) (allocated here, same
 * sizes, clamped to [0, 1]). A progress bar labelled `label` counts the sampling steps. 0, or -1 with err. */
int restorer_run(Restorer *r, const Image *lq, const RestoreEmbedding *const *emb, int n, const RestoreOptions *o,
                 const char *label, Image *out, char *err, size_t errlen);

/* How many of the images idx[first..n) to sample together: while their pixels fit RESTORE_BATCH_PIXELS (at
 * least one, at most RESTORER_GROUP_MAX). */
int restore_group_size(const RestoreEmbedding *emb, const int *idx, int n, int first);

/* The image files named on a command line: files as given, folders expanded to their PNG/JPEG images
 * (sorted). *paths is malloc'd (free with dataset_free_list). 0, or -1 after printing the problem. */
int restore_collect_inputs(const char *cmd, char *const *args, int nargs, char ***paths, int *n);

/* Writes im to path through a temporary file in the same folder and a rename, so that a killed run never
 * leaves a truncated image under the final name (resumable evaluations trust existing files). 0 or -1
 * (data_error()). */
int restore_save_atomic(const char *path, const Image *im);

/* The file name of path without folder and extension ("a/b/x.y.png" -> "x.y"), into buf. */
void restore_stem(const char *path, char *buf, size_t n);

#endif
