#ifndef DACLIP_TRAIN_BATCH_SHARD_H
#define DACLIP_TRAIN_BATCH_SHARD_H
/* One rank's rows of the loader's batches (data-parallel train-ir, docs/distributed.md): rows [lo, hi) of
 * batch g are exactly rows lo..hi-1 of the batch g a Loader with the same configuration hands out (same epoch,
 * same index in the epoch, so the same image, crop, flips and CLIP view), built with loader_make_sample — what
 * the loader's workers run — on the calling thread's OpenMP team. No prefetching: see docs/distributed.md. */
#include <stdint.h>

#include "data/loader.h"

typedef struct {
    Batch b;               /* n = hi - lo rows */
    LoaderConfig cfg;      /* the global batch's configuration (cfg.batch = the global batch size) */
    const Dataset *ds;
    int64_t lo, per_epoch;
} BatchShard;

/* 0, or -1 with data_error() set (out of memory, an epoch shorter than one global batch). */
int batch_shard_init(BatchShard *s, const Dataset *ds, const LoaderConfig *cfg, int64_t lo, int64_t hi);
/* The rows of batch g (counted across epochs, as LoaderConfig.start_batch); valid until the next call. NULL
 * with data_error() naming the file that failed. */
const Batch *batch_shard_get(BatchShard *s, int64_t g);
void batch_shard_free(BatchShard *s);

#endif
