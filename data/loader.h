#ifndef DACLIP_DATA_LOADER_H
#define DACLIP_DATA_LOADER_H
/* Training batches for DA-CLIP / universal IR (reference §3.5, uir/data/MD_dataset.py), prepared by background
 * pthreads into a ring of prefetched batches.
 *
 * Sample i of epoch e: the epoch's indices are a permutation seeded by (seed, e); the degradation type is
 * perm[i] mod (number of non-empty types) -> type, an image of that type is drawn uniformly, a random
 * patch×patch crop at the same position in LQ and GT (images smaller than the patch are first enlarged,
 * bicubic, so that their shorter side equals the patch),
 * then hflip, vflip and transpose each with p = 0.5 on both, and the CLIP view of the LQ patch (§1.6).
 * All randomness comes from a generator seeded by (seed, e, i), so batches are identical for any thread count
 * and timing.
 * On-the-fly mode (dataset from dataset_open_clean): the GT patch is cropped from a clean image and the LQ is
 * degrade_apply(GT patch, type, NULL, sample seed) — the degradation is synthesised on the patch itself. */
#include <stdint.h>
#include "data/dataset.h"

/* ------------------------------------------------------------------ the prefetch ring
 * What every training loader shares: `threads` background workers fill batches g = first, first+1, ... into a
 * ring of `depth` caller-owned slots (batch g goes to slot g % depth), at most `depth` batches ahead of the
 * consumer, who takes them strictly in order. Memory is therefore bounded by the slots (plus what each worker
 * holds while it fills one), whatever the dataset size. A batch's content must depend only on g (and the
 * worker-independent state in ctx), never on which worker or when: then the stream is deterministic. */

/* Fills batch g into `slot` on worker `worker` (0..threads-1, for per-worker scratch). 0, or -1 with
 * data_error() set: that message is handed to the consumer when it reaches batch g. */
typedef int (*PrefetchFill)(void *ctx, int worker, int64_t g, void *slot);

typedef struct {
    int threads, depth;     /* both > 0 */
    int64_t first, end;     /* batches [first, end) are filled; end < 0: endless */
    void **slots;           /* depth slots, owned by the caller, which outlive the ring */
    PrefetchFill fill;
    void *ctx;
    int nice;               /* > 0: the workers run at this lower priority (Linux, best effort), so that on a busy
                               machine they take spare time instead of preempting the training threads */
} PrefetchConfig;

typedef struct Prefetch Prefetch;

/* Starts the workers. NULL on error (data_error set). */
Prefetch *prefetch_create(const PrefetchConfig *c);
/* Blocks until the next batch in order is filled and returns its slot; it stays the consumer's until the next
 * call of prefetch_next or prefetch_destroy. NULL if its fill failed (data_error: the worker's message, on this
 * thread) or after the last batch. */
void *prefetch_next(Prefetch *p);
/* The most slots that were ever taken at once: being filled, filled and waiting, or held by the consumer
 * (never above depth; tests check it). */
int prefetch_peak_slots(const Prefetch *p);
/* Stops the workers (each finishes the batch it is filling) and frees the ring; not the slots. */
void prefetch_destroy(Prefetch *p);

/* ------------------------------------------------------------------ DA-CLIP / universal IR batches */

typedef struct {
    int batch;           /* samples per batch, default 16 */
    int patch;           /* crop side, default 256 */
    int clip_size;       /* side of the CLIP view, default 224; 0 = no CLIP view */
    int threads;         /* worker threads, default 2 */
    int prefetch;        /* batches in the ring, default 4 */
    int augment;         /* random flips/transpose, default 1 */
    int cache;           /* keep decoded images in memory (small datasets), default 0 */
    int epoch_len;       /* samples per epoch, default = number of images in the dataset */
    int64_t start_batch; /* number of the first batch handed out, default 0 (a resumed run continues the
                            sequence of batches where its checkpoint left it) */
    uint64_t seed;
} LoaderConfig;

typedef struct {
    int n, patch, clip_size;
    float *lq, *gt;      /* [n][3][patch][patch] (CHW per sample, [0,1]) */
    float *clip;         /* [n][3][clip][clip] normalised, or NULL when clip_size = 0 */
    int *type;           /* [n] degradation index */
    int64_t epoch, first; /* epoch number and index of the batch's first sample within the epoch */
} Batch;

typedef struct Loader Loader;

void loader_default_config(LoaderConfig *c);
/* Starts the workers (a Prefetch ring of `prefetch` batches). `ds` must outlive the loader. NULL on error
 * (data_error set). */
Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg);
/* Blocks until the next batch (in order) is ready and returns it; it stays valid until the next call of
 * loader_next or loader_destroy. Batches run epoch after epoch (the last batch of an epoch is dropped if
 * incomplete, like drop_last). NULL if this batch failed (data_error names the file). */
const Batch *loader_next(Loader *l);
/* Stops the workers and frees everything. */
void loader_destroy(Loader *l);

/* Synchronous single sample (what each worker does); out-of-loader use and tests. lq/gt hold 3*patch*patch
 * floats, clip 3*clip*clip (or NULL). Returns 0 or -1. */
int loader_make_sample(const Dataset *ds, const LoaderConfig *cfg, int64_t epoch, int64_t index,
                       float *lq, float *gt, float *clip, int *type);

#endif
