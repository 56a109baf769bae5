/* Background batch preparation. Batch g (counted across epochs) is built by whichever worker claims it, into
 * ring slot g % prefetch; the consumer takes batches strictly in order. Every random choice of a sample comes
 * from a generator seeded by (seed, epoch, index), so the content never depends on thread timing. */
#include "data/loader.h"
#include "data/clip_preprocess.h"
#include "data/image_io.h"
#include "data/image_ops.h"
#include "data/resize.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint64_t s; } SampleRng;

static uint64_t rng_next(SampleRng *r) { r->s += 0x9E3779B97F4A7C15ull; return data_hash64(r->s); }
static int rng_below(SampleRng *r, int n) { return (int)(rng_next(r) % (uint64_t)n); }   /* bias < n/2^64 */

/* Pseudo-random permutation of [0, n) keyed by `key`: a 4-round Feistel network over the smallest even
 * number of bits covering n, with cycle walking. O(1) per index, no table. */
static int64_t permute(int64_t i, int64_t n, uint64_t key) {
    int bits = 2;
    while (((int64_t)1 << bits) < n) bits += 2;
    int half = bits / 2;
    uint64_t mask = ((uint64_t)1 << half) - 1;
    uint64_t x = (uint64_t)i;
    do {
        uint64_t l = x >> half, r = x & mask;
        for (int round = 0; round < 4; round++) {
            uint64_t f = data_hash64(key ^ ((uint64_t)round << 56) ^ r) & mask;
            uint64_t t = l ^ f;
            l = r;
            r = t;
        }
        x = l << half | r;
    } while ((int64_t)x >= n);
    return (int64_t)x;
}

typedef struct {
    Image lq, gt;
    int state;   /* 0 empty, 1 loading, 2 ready */
} CacheEntry;

typedef struct {
    Batch b;
    int64_t g;      /* batch number held, -1 if none */
    int failed;
} Slot;

struct Loader {
    const Dataset *ds;
    LoaderConfig cfg;
    int types[DEGRADE_N], n_types;
    int64_t batches_per_epoch;
    CacheEntry *cache;
    pthread_mutex_t mu;
    pthread_cond_t ready, space, cache_cv;
    pthread_t *th;
    int n_th;
    Slot *slots;
    int64_t next_claim, released;   /* batches < released are handed back */
    int has_current, stop;
    char err[1024];
};

void loader_default_config(LoaderConfig *c) {
    memset(c, 0, sizeof *c);
    c->batch = 16;
    c->patch = 256;
    c->clip_size = CLIP_IMAGE_SIZE;
    c->threads = 2;
    c->prefetch = 4;
    c->augment = 1;
}

static int on_the_fly(const Dataset *ds) { return ds->n > 0 && ds->items[0].gt == NULL; }

/* Decoded LQ/GT of item k (GT only in on-the-fly mode), from the cache when enabled. Cached images are
 * shared read-only; *owned tells the caller to free them. */
static int get_images(Loader *l, const Dataset *ds, int k, Image *lq, Image *gt, int *owned) {
    const DatasetItem *it = &ds->items[k];
    int fly = it->gt == NULL;
    if (!l || !l->cache) {
        *owned = 1;
        memset(lq, 0, sizeof *lq);
        if (image_load(fly ? it->lq : it->gt, gt)) return -1;
        if (!fly && image_load(it->lq, lq)) { image_free(gt); return -1; }
        return 0;
    }
    CacheEntry *e = &l->cache[k];
    pthread_mutex_lock(&l->mu);
    while (e->state == 1) pthread_cond_wait(&l->cache_cv, &l->mu);
    if (e->state == 0) {
        e->state = 1;
        pthread_mutex_unlock(&l->mu);
        Image a = { 0 }, b = { 0 };
        int own, rc = get_images(NULL, ds, k, &a, &b, &own);
        pthread_mutex_lock(&l->mu);
        if (rc == 0) { e->lq = a; e->gt = b; e->state = 2; }
        else e->state = 0;
        pthread_cond_broadcast(&l->cache_cv);
        if (rc) { pthread_mutex_unlock(&l->mu); return -1; }
    }
    pthread_mutex_unlock(&l->mu);
    *lq = e->lq;
    *gt = e->gt;
    *owned = 0;
    return 0;
}

/* Bicubic enlargement so the shorter side is at least p (same factor for LQ and GT). */
static int ensure_min_side(Image *im, int p) {
    if (im->w >= p && im->h >= p) return 0;
    double f = (double)p / (im->w < im->h ? im->w : im->h);
    int nw = (int)ceil(im->w * f), nh = (int)ceil(im->h * f);
    if (nw < p) nw = p;
    if (nh < p) nh = p;
    Image r;
    if (image_resize(im, &r, nw, nh, RESIZE_BICUBIC)) return -1;
    image_clamp(&r);
    image_free(im);
    *im = r;
    return 0;
}

static int augment(Image *im, int hf, int vf, int tr) {
    if (hf) image_hflip(im);
    if (vf) image_vflip(im);
    if (tr) {
        Image t;
        if (image_transpose(im, &t)) return -1;
        image_free(im);
        *im = t;
    }
    return 0;
}

/* The real sample builder; `l` may be NULL (no cache). */
static int make_sample(Loader *l, const Dataset *ds, const LoaderConfig *cfg, const int *types, int n_types,
                       int64_t epoch_len, int64_t epoch, int64_t index, float *lq_out, float *gt_out,
                       float *clip_out, int *type_out) {
    SampleRng r = { data_hash64(cfg->seed ^ data_hash64((uint64_t)epoch * 0x9E3779B1ull + 0x51ED)) ^
                    data_hash64((uint64_t)index + 0x1234567ull) };
    uint64_t perm_key = data_hash64(cfg->seed * 31 + (uint64_t)epoch);
    int type = types[permute(index % epoch_len, epoch_len, perm_key) % n_types];
    int k = on_the_fly(ds) ? rng_below(&r, ds->n)   /* clean images serve every type */
                           : ds->type_start[type] + rng_below(&r, ds->type_start[type + 1] - ds->type_start[type]);
    Image lq0, gt0, lq = { 0 }, gt = { 0 };
    int owned, P = cfg->patch, rc = -1;
    if (get_images(l, ds, k, &lq0, &gt0, &owned)) return -1;
    int fly = ds->items[k].gt == NULL;
    if (!fly && (lq0.w != gt0.w || lq0.h != gt0.h)) {
        data_set_error("%s and %s: LQ is %dx%d but GT is %dx%d", ds->items[k].lq, ds->items[k].gt, lq0.w, lq0.h,
                       gt0.w, gt0.h);
        goto done;
    }
    Image a = { 0 }, b = { 0 };   /* enlarged working copies only when needed */
    if (gt0.w < P || gt0.h < P) {
        if (image_clone(&a, &gt0)) goto done;
        if (ensure_min_side(&a, P)) { image_free(&a); goto done; }
        if (!fly) {
            if (image_clone(&b, &lq0)) { image_free(&a); goto done; }
            if (ensure_min_side(&b, P)) { image_free(&a); image_free(&b); goto done; }
        }
    } else {
        a = gt0;
        b = lq0;
    }
    int x = rng_below(&r, a.w - P + 1), y = rng_below(&r, a.h - P + 1);
    int err = image_crop(&a, x, y, P, P, &gt) || (!fly && image_crop(&b, x, y, P, P, &lq));
    if (a.px != gt0.px) { image_free(&a); if (!fly) image_free(&b); }
    if (err) goto done;
    uint64_t deg_seed = rng_next(&r);
    int hf = 0, vf = 0, tr = 0;
    if (cfg->augment) { hf = rng_below(&r, 2); vf = rng_below(&r, 2); tr = rng_below(&r, 2); }
    if (fly && degrade_apply(&gt, type, NULL, deg_seed, &lq)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", data_error());
        data_set_error("%s: %s: %s", ds->items[k].lq, degrade_name(type), msg);
        goto done;
    }
    if (augment(&gt, hf, vf, tr) || augment(&lq, hf, vf, tr)) goto done;
    if (lq.c != 3 || gt.c != 3) { data_set_error("%s: expected RGB patches", ds->items[k].lq); goto done; }
    image_clamp(&lq);
    image_to_chw(&lq, lq_out);
    image_to_chw(&gt, gt_out);
    if (clip_out && cfg->clip_size > 0 && clip_preprocess(&lq, cfg->clip_size, clip_out)) goto done;
    *type_out = type;
    rc = 0;
done:
    image_free(&lq);
    image_free(&gt);
    if (owned) { image_free(&lq0); image_free(&gt0); }
    return rc;
}

/* Non-empty degradation types (returns their count, -1 on error), and the epoch length (default: number of
 * images). */
static int sampling_plan(const Dataset *ds, const LoaderConfig *cfg, int types[DEGRADE_N], int64_t *epoch_len) {
    int n = 0;
    for (int t = 0; t < DEGRADE_N; t++)
        if (ds->type_start[t + 1] > ds->type_start[t]) types[n++] = t;
    if (on_the_fly(ds)) {   /* every type is synthesised from the clean images */
        n = 0;
        for (int t = 0; t < DEGRADE_N; t++) types[n++] = t;
    }
    *epoch_len = cfg->epoch_len > 0 ? cfg->epoch_len : ds->n;
    if (n == 0 || *epoch_len <= 0) { data_set_error("loader: empty dataset"); return -1; }
    return n;
}

int loader_make_sample(const Dataset *ds, const LoaderConfig *cfg, int64_t epoch, int64_t index,
                       float *lq, float *gt, float *clip, int *type) {
    int types[DEGRADE_N];
    int64_t len;
    int n_types = sampling_plan(ds, cfg, types, &len);
    if (n_types < 0) return -1;
    return make_sample(NULL, ds, cfg, types, n_types, len, epoch, index, lq, gt, clip, type);
}

static int fill_batch(Loader *l, Batch *b, int64_t g) {
    const LoaderConfig *c = &l->cfg;
    b->epoch = g / l->batches_per_epoch;
    b->first = (g % l->batches_per_epoch) * c->batch;
    size_t np = (size_t)3 * c->patch * c->patch, nc = (size_t)3 * c->clip_size * c->clip_size;
    int64_t len = c->epoch_len > 0 ? c->epoch_len : l->ds->n;
    for (int i = 0; i < c->batch; i++)
        if (make_sample(l, l->ds, c, l->types, l->n_types, len, b->epoch, b->first + i, b->lq + i * np,
                        b->gt + i * np, b->clip ? b->clip + i * nc : NULL, &b->type[i]))
            return -1;
    return 0;
}

static void *worker(void *arg) {
    Loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_claim >= l->released + l->cfg.prefetch) pthread_cond_wait(&l->space, &l->mu);
        if (l->stop) break;
        int64_t g = l->next_claim++;
        Slot *s = &l->slots[g % l->cfg.prefetch];
        pthread_mutex_unlock(&l->mu);
        int rc = fill_batch(l, &s->b, g);
        pthread_mutex_lock(&l->mu);
        s->g = g;
        s->failed = rc != 0;
        if (rc && !l->err[0]) snprintf(l->err, sizeof l->err, "%s", data_error());
        pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void free_slots(Loader *l) {
    if (!l->slots) return;
    for (int i = 0; i < l->cfg.prefetch; i++) {
        free(l->slots[i].b.lq); free(l->slots[i].b.gt); free(l->slots[i].b.clip); free(l->slots[i].b.type);
    }
    free(l->slots);
}

Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg) {
    if (cfg->batch <= 0 || cfg->patch <= 0 || cfg->clip_size < 0 || cfg->threads <= 0 || cfg->prefetch <= 0 ||
        cfg->start_batch < 0) {
        data_set_error("loader: batch, patch, threads and prefetch must be positive, start_batch not negative");
        return NULL;
    }
    Loader *l = calloc(1, sizeof *l);
    if (!l) { data_set_error("loader: out of memory"); return NULL; }
    l->ds = ds;
    l->cfg = *cfg;
    int64_t len;
    if ((l->n_types = sampling_plan(ds, cfg, l->types, &len)) < 0) { free(l); return NULL; }
    l->batches_per_epoch = len / cfg->batch;
    if (l->batches_per_epoch == 0) {
        data_set_error("loader: epoch of %lld samples is shorter than one batch of %d", (long long)len, cfg->batch);
        free(l);
        return NULL;
    }
    size_t np = (size_t)cfg->batch * 3 * cfg->patch * cfg->patch, nc = (size_t)cfg->batch * 3 * cfg->clip_size * cfg->clip_size;
    l->slots = calloc((size_t)cfg->prefetch, sizeof(Slot));
    int ok = l->slots != NULL;
    for (int i = 0; ok && i < cfg->prefetch; i++) {
        Batch *b = &l->slots[i].b;
        l->slots[i].g = -1;
        b->n = cfg->batch; b->patch = cfg->patch; b->clip_size = cfg->clip_size;
        b->lq = malloc(np * sizeof(float));
        b->gt = malloc(np * sizeof(float));
        b->clip = nc ? malloc(nc * sizeof(float)) : NULL;
        b->type = malloc(sizeof(int) * (size_t)cfg->batch);
        ok = b->lq && b->gt && b->type && (!nc || b->clip);
    }
    if (ok && cfg->cache) ok = (l->cache = calloc((size_t)ds->n, sizeof(CacheEntry))) != NULL;
    if (ok) ok = (l->th = calloc((size_t)cfg->threads, sizeof(pthread_t))) != NULL;
    if (!ok) { free_slots(l); free(l->cache); free(l); data_set_error("loader: out of memory"); return NULL; }
    l->next_claim = l->released = cfg->start_batch;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->ready, NULL);
    pthread_cond_init(&l->space, NULL);
    pthread_cond_init(&l->cache_cv, NULL);
    for (int i = 0; i < cfg->threads; i++) {
        if (pthread_create(&l->th[i], NULL, worker, l)) { data_set_error("loader: cannot start a thread"); break; }
        l->n_th++;
    }
    if (l->n_th < cfg->threads) { loader_destroy(l); return NULL; }
    return l;
}

const Batch *loader_next(Loader *l) {
    pthread_mutex_lock(&l->mu);
    if (l->has_current) {
        l->released++;
        l->has_current = 0;
        pthread_cond_broadcast(&l->space);
    }
    Slot *s = &l->slots[l->released % l->cfg.prefetch];
    while (s->g != l->released && !l->err[0]) pthread_cond_wait(&l->ready, &l->mu);
    const Batch *b = NULL;
    if (s->g == l->released && !s->failed) {
        l->has_current = 1;
        b = &s->b;
    } else {
        data_set_error("%s", l->err);
    }
    pthread_mutex_unlock(&l->mu);
    return b;
}

void loader_destroy(Loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->space);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_th; i++) pthread_join(l->th[i], NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->ready);
    pthread_cond_destroy(&l->space);
    pthread_cond_destroy(&l->cache_cv);
    if (l->cache)
        for (int i = 0; i < l->ds->n; i++) { image_free(&l->cache[i].lq); image_free(&l->cache[i].gt); }
    free(l->cache);
    free(l->th);
    free_slots(l);
    free(l);
}
