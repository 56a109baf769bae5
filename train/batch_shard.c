#include "train/batch_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image_io.h"

int batch_shard_init(BatchShard *s, const Dataset *ds, const LoaderConfig *cfg, int64_t lo, int64_t hi) {
    memset(s, 0, sizeof *s);
    int64_t len = cfg->epoch_len > 0 ? cfg->epoch_len : ds->n;   /* as the loader counts its epochs */
    s->per_epoch = cfg->batch > 0 ? len / cfg->batch : 0;
    if (s->per_epoch == 0 || lo < 0 || hi <= lo || hi > cfg->batch) {
        data_set_error("loader: epoch of %lld samples is shorter than one batch of %d (or rows %lld..%lld do not fit "
                       "it)", (long long)len, cfg->batch, (long long)lo, (long long)hi);
        return -1;
    }
    s->cfg = *cfg, s->ds = ds, s->lo = lo;
    int n = (int)(hi - lo), P = cfg->patch, C = cfg->clip_size;
    size_t np = (size_t)3 * P * P, nc = (size_t)3 * C * C;
    s->b = (Batch){.n = n, .patch = P, .clip_size = C};
    s->b.lq = malloc(sizeof(float) * np * (size_t)n);
    s->b.gt = malloc(sizeof(float) * np * (size_t)n);
    s->b.clip = C > 0 ? malloc(sizeof(float) * nc * (size_t)n) : NULL;
    s->b.type = malloc(sizeof(int) * (size_t)n);
    if (!s->b.lq || !s->b.gt || (C > 0 && !s->b.clip) || !s->b.type) {
        batch_shard_free(s);
        data_set_error("loader: out of memory for %d samples of %d px", n, P);
        return -1;
    }
    return 0;
}

const Batch *batch_shard_get(BatchShard *s, int64_t g) {
    Batch *b = &s->b;
    b->epoch = g / s->per_epoch;
    b->first = (g % s->per_epoch) * s->cfg.batch + s->lo;
    size_t np = (size_t)3 * b->patch * b->patch, nc = (size_t)3 * b->clip_size * b->clip_size;
    int failed = 0;
    char msg[1024] = "";   /* data_error() is per thread: the worker's message is copied out */
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < b->n; i++) {
        if (loader_make_sample(s->ds, &s->cfg, b->epoch, b->first + i, b->lq + np * i, b->gt + np * i,
                               b->clip ? b->clip + nc * i : NULL, &b->type[i])) {
#pragma omp critical
            if (!failed) {
                failed = 1;
                snprintf(msg, sizeof msg, "%s", data_error());
            }
        }
    }
    if (failed) data_set_error("%s", msg);
    return failed ? NULL : b;
}

void batch_shard_free(BatchShard *s) {
    free(s->b.lq), free(s->b.gt), free(s->b.clip), free(s->b.type);
    memset(s, 0, sizeof *s);
}
