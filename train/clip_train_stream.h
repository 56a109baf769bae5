#ifndef DACLIP_TRAIN_CLIP_TRAIN_STREAM_H
#define DACLIP_TRAIN_CLIP_TRAIN_STREAM_H
/* The images of a CLIP training or validation set, decoded and CLIP-preprocessed batch by batch by background
 * workers (data/loader.h's prefetch ring) while the current batch trains. Memory is `depth` batches of views
 * plus one decoded image per worker, whatever the number of rows; no image is kept after its batch.
 *
 * A batch is a pure function of its number g (the training order is train/sample_order.h's, seeded; views are
 * the deterministic clip_preprocess), so the stream is the same for any thread count or timing, and a run
 * resumed at step k (first = k) sees exactly the batches the uninterrupted run saw. */
#include <stdbool.h>
#include <stdint.h>

#include "train/clip_train.h"

typedef struct {
    int batch;           /* rows per batch */
    int64_t lo, hi;      /* shuffled: this rank's rows [lo, hi) of every global batch of `batch`;
                            sequential: the rows [lo, hi) of the set, cut into batches of `batch` */
    bool shuffled;       /* true: batch g holds the samples drawn lo..hi-1 of step g (SampleOrder over the rows,
                            seeded by `seed`), endless; false: rows lo + g·batch.., the last batch shorter, finite */
    uint64_t seed;
    int64_t first;       /* number of the first batch (a resumed run's step) */
    int threads, depth;  /* decoding workers; batches in the ring */
    int nice;            /* > 0: the workers' lower priority (PrefetchConfig.nice) */
} ClipStreamConfig;

typedef struct {
    int n;               /* rows in this batch */
    int64_t *rows;       /* [n] sample indices into the ClipSamples */
    float *images;       /* [n, 3, size, size] CLIP-normalised */
} ClipBatch;

typedef struct {
    int peak_batches;    /* most batches the ring held at once (<= depth) */
    int peak_decoded;    /* most decoded images alive at once (<= threads) */
} ClipStreamStats;

typedef struct ClipStream ClipStream;

/* Starts the workers; `s` must outlive the stream. NULL on error (data_error()). */
ClipStream *clip_stream_open(const ClipSamples *s, const ClipStreamConfig *c);
/* The next batch in order, valid until the next call or clip_stream_close. NULL when an image of it cannot be
 * read or preprocessed — data_error() names the CSV, its line and the file — or after the last batch. */
const ClipBatch *clip_stream_next(ClipStream *st);
ClipStreamStats clip_stream_stats(const ClipStream *st);
void clip_stream_close(ClipStream *st);

#endif
