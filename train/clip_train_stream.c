#include "train/clip_train_stream.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_preprocess.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "train/sample_order.h"

struct ClipStream {
    const ClipSamples *s;
    ClipStreamConfig c;
    SampleOrder *orders;   /* one per worker: a SampleOrder caches its epoch's permutation, so it is not shared */
    ClipBatch *batches;    /* the ring's slots */
    void **slot_ptrs;
    Prefetch *ring;
    atomic_int decoded, peak_decoded;
};

static void note_decoded(ClipStream *st, int delta) {
    int now = atomic_fetch_add(&st->decoded, delta) + delta;
    int peak = atomic_load(&st->peak_decoded);
    while (now > peak && !atomic_compare_exchange_weak(&st->peak_decoded, &peak, now)) {
    }
}

/* data_error() for row `row`, prefixed with the CSV line it came from; `what` names the file when the
 * message does not (image_load's messages do, clip_preprocess's do not). */
static void row_error(const ClipSamples *s, int64_t row, const char *what) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", data_error());
    if (s->csv)
        data_set_error("%.1500s: line %lld: %.1500s%s%.1000s", s->csv, (long long)row + 2, what ? what : "",
                       what ? ": " : "", msg);
    else
        data_set_error("%.1500s%s%.1000s", what ? what : "", what ? ": " : "", msg);
}

static int fill(void *ctx, int worker, int64_t g, void *slot) {
    ClipStream *st = ctx;
    ClipBatch *b = slot;
    const ClipSamples *s = st->s;
    const ClipStreamConfig *c = &st->c;
    if (c->shuffled) {
        b->n = (int)(c->hi - c->lo);
        for (int i = 0; i < b->n; i++) b->rows[i] = sample_order_at(&st->orders[worker], g * c->batch + c->lo + i);
    } else {
        int64_t start = c->lo + g * c->batch;
        b->n = (int)(c->hi - start < c->batch ? c->hi - start : c->batch);
        for (int i = 0; i < b->n; i++) b->rows[i] = start + i;
    }
    size_t per = (size_t)3 * s->size * s->size;
    for (int i = 0; i < b->n; i++) {
        int64_t row = b->rows[i];
        Image im = {0};
        if (image_load(s->paths[row], &im)) {
            row_error(s, row, NULL);
            return -1;
        }
        note_decoded(st, 1);
        int rc = clip_preprocess(&im, s->size, b->images + per * (size_t)i);
        image_free(&im);
        note_decoded(st, -1);
        if (rc) {
            row_error(s, row, s->paths[row]);
            return -1;
        }
    }
    return 0;
}

void clip_stream_close(ClipStream *st) {
    if (!st) return;
    prefetch_destroy(st->ring);   /* first: the workers write into the slots */
    if (st->batches)
        for (int i = 0; i < st->c.depth; i++) free(st->batches[i].rows), free(st->batches[i].images);
    if (st->orders)
        for (int i = 0; i < st->c.threads; i++) sample_order_free(&st->orders[i]);
    free(st->batches);
    free(st->slot_ptrs);
    free(st->orders);
    free(st);
}

ClipStream *clip_stream_open(const ClipSamples *s, const ClipStreamConfig *c) {
    int64_t rows = c->shuffled ? c->hi - c->lo : c->batch;
    if (c->batch < 1 || c->lo < 0 || c->hi <= c->lo || c->hi > (c->shuffled ? c->batch : s->n) || c->threads < 1 ||
        c->depth < 1 || c->first < 0 || s->n < 1) {
        data_set_error("clip stream: bad configuration (batch %d, rows %lld..%lld of %lld)", c->batch, (long long)c->lo,
                       (long long)c->hi, (long long)s->n);
        return NULL;
    }
    ClipStream *st = calloc(1, sizeof *st);
    if (!st) {
        data_set_error("clip stream: out of memory");
        return NULL;
    }
    st->s = s;
    st->c = *c;
    st->batches = calloc((size_t)c->depth, sizeof *st->batches);
    st->slot_ptrs = calloc((size_t)c->depth, sizeof *st->slot_ptrs);
    st->orders = calloc((size_t)c->threads, sizeof *st->orders);
    int ok = st->batches && st->slot_ptrs && st->orders;
    size_t per = (size_t)3 * s->size * s->size;
    for (int i = 0; ok && i < c->depth; i++) {
        st->slot_ptrs[i] = &st->batches[i];
        st->batches[i].rows = malloc(sizeof(int64_t) * (size_t)rows);
        st->batches[i].images = malloc(sizeof(float) * per * (size_t)rows);
        ok = st->batches[i].rows && st->batches[i].images;
    }
    for (int i = 0; ok && c->shuffled && i < c->threads; i++) ok = sample_order_init(&st->orders[i], s->n, c->seed) == 0;
    if (!ok) {
        clip_stream_close(st);
        data_set_error("clip stream: out of memory for %d batches of %lld images", c->depth, (long long)rows);
        return NULL;
    }
    int64_t end = c->shuffled ? -1 : (c->hi - c->lo + c->batch - 1) / c->batch;
    PrefetchConfig pc = {c->threads, c->depth, c->first, end, st->slot_ptrs, fill, st, c->nice};
    if (!(st->ring = prefetch_create(&pc))) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", data_error());
        clip_stream_close(st);
        data_set_error("%s", msg);
        return NULL;
    }
    return st;
}

const ClipBatch *clip_stream_next(ClipStream *st) { return prefetch_next(st->ring); }

ClipStreamStats clip_stream_stats(const ClipStream *st) {
    return (ClipStreamStats){prefetch_peak_slots(st->ring), atomic_load(&st->peak_decoded)};
}
