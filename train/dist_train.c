#include "train/dist_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"
#include "train/dist.h"

static bool trainable(const Param *p) { return !p->frozen && p->t->requires_grad; }

typedef struct {
    float *buf;
    int64_t used;
    float **dst;       /* where each packed gradient goes back */
    int64_t *len;
    int n;
} Bucket;

static void flush(Bucket *b) {
    if (!b->used) return;
    dist_sum_f32(b->buf, b->used, "gradients");
    int64_t off = 0;
    for (int i = 0; i < b->n; i++) {
        memcpy(b->dst[i], b->buf + off, sizeof(float) * (size_t)b->len[i]);
        off += b->len[i];
    }
    b->used = 0, b->n = 0;
}

void dist_sum_grads(ParamSet *ps, Tensor *const *replicated, int n_replicated) {
    if (dist_size() == 1) return;
    dist_wait_all("gradients");   /* timed apart: waiting for the slowest rank is not communication */
    if (!dist_is_root())
        for (int i = 0; i < n_replicated; i++)
            if (replicated[i]) memset(t_grad_buf(replicated[i]), 0, sizeof(float) * (size_t)t_numel(replicated[i]));
    Bucket b = {malloc(sizeof(float) * (size_t)DIST_BUCKET_FLOATS), 0, malloc(sizeof(float *) * (size_t)(ps->n + 1)),
                malloc(sizeof(int64_t) * (size_t)(ps->n + 1)), 0};
    bool packed = b.buf && b.dst && b.len;
    for (int i = 0; i < ps->n; i++) {
        Param *p = &ps->items[i];
        if (!trainable(p)) continue;
        float *g = t_grad_buf(p->t);
        int64_t n = t_numel(p->t);
        if (!packed || n >= DIST_BUCKET_FLOATS) {   /* big enough to go alone, in place */
            dist_sum_f32(g, n, "gradients");
            continue;
        }
        if (b.used + n > DIST_BUCKET_FLOATS) flush(&b);
        memcpy(b.buf + b.used, g, sizeof(float) * (size_t)n);
        b.dst[b.n] = g, b.len[b.n++] = n;
        b.used += n;
    }
    if (packed) flush(&b);
    free(b.buf), free(b.dst), free(b.len);
}

Tensor *dist_gather_rows(Tensor *x, int64_t total, const char *what) {
    int N = dist_size();
    if (N == 1 || !x) return x;
    int64_t cols = t_numel(x) / (x->shape[0] ? x->shape[0] : 1), lo, hi;
    dist_shard(total, &lo, &hi);
    if (x->shape[0] != hi - lo) {
        t_error("dist_gather_rows", "%s: %lld rows here, the shard is %lld", what, (long long)x->shape[0],
                (long long)(hi - lo));
        return NULL;
    }
    int64_t *rows_of = t_arena_alloc(sizeof(int64_t) * (size_t)N);
    dist_shard_sizes(total, rows_of);
    float *all = t_arena_alloc(sizeof(float) * (size_t)(total * cols));
    dist_gather_rows_f32(t_contiguous(x)->data, rows_of, cols, all, what);
    Tensor **parts = t_arena_alloc(sizeof(Tensor *) * (size_t)N);
    int64_t shape[T_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    for (int r = 0, row = 0; r < N; row += (int)rows_of[r], r++) {
        shape[0] = rows_of[r];
        parts[r] = r == dist_rank() ? x : t_from(x->ndim, shape, all + (int64_t)row * cols);
    }
    return t_concat(N, parts, 0);
}

void dist_report(const char *cmd, int64_t steps, double step_seconds) {
    if (dist_size() == 1 || !dist_is_root() || steps <= 0) return;
    double r = dist_reduce_seconds(), w = dist_wait_seconds();
    fprintf(stderr, "%s: data-parallel over %d ranks (%d thread%s each here): %.2f ms per step summing gradients, "
            "%.2f ms waiting for the slowest rank", cmd, dist_size(), t_threads(), t_threads() == 1 ? "" : "s",
            1e3 * r / (double)steps, 1e3 * w / (double)steps);
    if (step_seconds > 0) fprintf(stderr, " (%.1f%% and %.1f%% of the step)", 100 * r / step_seconds, 100 * w / step_seconds);
    fputc('\n', stderr);
}

/* FNV-1a over the 32-bit words of every parameter, then the step. */
static uint64_t params_hash(const ParamSet *ps, int64_t step) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->items[i].t;
        const uint32_t *w = (const uint32_t *)t->data;
        for (int64_t k = 0, n = t_numel(t); k < n; k++) h = (h ^ w[k]) * 0x100000001b3ull;
    }
    return (h ^ (uint64_t)step) * 0x100000001b3ull;
}

int dist_check_in_sync(const ParamSet *ps, int64_t step, const char *cmd) {
    if (dist_size() == 1) return 0;
    uint64_t mine = params_hash(ps, step), lo, hi;
    dist_minmax_u64(mine, &lo, &hi, "weight check");
    if (lo == hi) return 0;
    fprintf(stderr, "\ndaclip %s: rank %d of %d: the ranks' weights or steps differ at step %lld (hash %016llx, range "
            "%016llx..%016llx): give every rank the same files and options (--resume: the same checkpoint)\n",
            cmd, dist_rank(), dist_size(), (long long)step, (unsigned long long)mine, (unsigned long long)lo,
            (unsigned long long)hi);
    return -1;
}
