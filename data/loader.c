/* Background batch preparation: the prefetch ring (batch g is built by whichever worker claims it, into slot
 * g % depth; the consumer takes batches strictly in order) and, on it, the DA-CLIP / universal IR loader, where
 * every random choice of a sample comes from a generator seeded by (seed, epoch, index), so the content never
 * depends on thread timing. */
#include "data/loader.h"
#include "data/clip_preprocess.h"
#include "data/image_io.h"
#include "data/image_ops.h"
#include "data/resize.h"
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ the prefetch ring */

typedef struct {
    int64_t g;          /* batch the slot last finished (-1: none yet); the consumer waits for its own number */
    int failed;
    char err[1024];     /* the worker's data_error(), handed to the consumer's thread */
} RingState;

typedef struct {
    Prefetch *p;
    int index;
} RingWorker;

struct Prefetch {
    PrefetchConfig c;
    RingState *state;
    RingWorker *args;
    pthread_mutex_t mu;
    pthread_cond_t ready, space;
    pthread_t *th;
    int n_th;
    int64_t next_claim, released;   /* batches < released are handed back */
    int has_current, stop, peak;
};

static void *ring_worker(void *arg) {
    RingWorker *w = arg;
    Prefetch *p = w->p;
#ifdef __linux__
    if (p->c.nice > 0) (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->c.nice);   /* this thread only */
#endif
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && (p->next_claim >= p->released + p->c.depth || (p->c.end >= 0 && p->next_claim >= p->c.end)))
            pthread_cond_wait(&p->space, &p->mu);
        if (p->stop) break;
        int64_t g = p->next_claim++;
        int held = (int)(p->next_claim - p->released);
        if (held > p->peak) p->peak = held;
        RingState *s = &p->state[g % p->c.depth];
        pthread_mutex_unlock(&p->mu);
        int rc = p->c.fill(p->c.ctx, w->index, g, p->c.slots[g % p->c.depth]);
        pthread_mutex_lock(&p->mu);
        s->failed = rc != 0;
        if (rc) snprintf(s->err, sizeof s->err, "%s", data_error()[0] ? data_error() : "loader: a batch failed");
        s->g = g;
        pthread_cond_broadcast(&p->ready);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

Prefetch *prefetch_create(const PrefetchConfig *c) {
    if (c->threads <= 0 || c->depth <= 0 || c->first < 0 || !c->slots || !c->fill) {
        data_set_error("loader: threads and prefetch depth must be positive");
        return NULL;
    }
    Prefetch *p = calloc(1, sizeof *p);
    if (p) {
        p->state = calloc((size_t)c->depth, sizeof *p->state);
        p->args = calloc((size_t)c->threads, sizeof *p->args);
        p->th = calloc((size_t)c->threads, sizeof *p->th);
    }
    if (!p || !p->state || !p->args || !p->th) {
        if (p) free(p->state), free(p->args), free(p->th);
        free(p);
        data_set_error("loader: out of memory");
        return NULL;
    }
    p->c = *c;
    for (int i = 0; i < c->depth; i++) p->state[i].g = -1;
    p->next_claim = p->released = c->first;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready, NULL);
    pthread_cond_init(&p->space, NULL);
    for (int i = 0; i < c->threads; i++) {
        p->args[i] = (RingWorker){p, i};
        if (pthread_create(&p->th[i], NULL, ring_worker, &p->args[i])) break;
        p->n_th++;
    }
    if (p->n_th < c->threads) {
        prefetch_destroy(p);
        data_set_error("loader: cannot start a thread");
        return NULL;
    }
    return p;
}

void *prefetch_next(Prefetch *p) {
    pthread_mutex_lock(&p->mu);
    if (p->has_current) {
        p->released++;
        p->has_current = 0;
        pthread_cond_broadcast(&p->space);
    }
    void *slot = NULL;
    if (p->c.end >= 0 && p->released >= p->c.end) {
        data_set_error("loader: no batch after the last one (%lld)", (long long)p->c.end - 1);
    } else {
        RingState *s = &p->state[p->released % p->c.depth];
        while (s->g != p->released) pthread_cond_wait(&p->ready, &p->mu);
        if (s->failed) {
            data_set_error("%s", s->err);
        } else {
            p->has_current = 1;
            slot = p->c.slots[p->released % p->c.depth];
        }
    }
    pthread_mutex_unlock(&p->mu);
    return slot;
}

int prefetch_peak_slots(const Prefetch *p) {
    pthread_mutex_lock((pthread_mutex_t *)&p->mu);
    int peak = p->peak;
    pthread_mutex_unlock((pthread_mutex_t *)&p->mu);
    return peak;
}

void prefetch_destroy(Prefetch *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->space);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_th; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->space);
    free(p->state);
    free(p->args);
    free(p->th);
    free(p);
}

/* ------------------------------------------------------------------ DA-CLIP / universal IR batches */

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

struct Loader {
    const Dataset *ds;
    LoaderConfig cfg;
    int types[DEGRADE_N], n_types;
    int64_t batches_per_epoch;
    CacheEntry *cache;
    pthread_mutex_t cache_mu;
    pthread_cond_t cache_cv;
    Batch *batches;     /* the ring's slots */
    void **slot_ptrs;
    Prefetch *ring;
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
    pthread_mutex_lock(&l->cache_mu);
    while (e->state == 1) pthread_cond_wait(&l->cache_cv, &l->cache_mu);
    if (e->state == 0) {
        e->state = 1;
        pthread_mutex_unlock(&l->cache_mu);
        Image a = { 0 }, b = { 0 };
        int own, rc = get_images(NULL, ds, k, &a, &b, &own);
        pthread_mutex_lock(&l->cache_mu);
        if (rc == 0) { e->lq = a; e->gt = b; e->state = 2; }
        else e->state = 0;
        pthread_cond_broadcast(&l->cache_cv);
        if (rc) { pthread_mutex_unlock(&l->cache_mu); return -1; }
    }
    pthread_mutex_unlock(&l->cache_mu);
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

static int fill_batch(void *ctx, int worker, int64_t g, void *slot) {
    (void)worker;
    Loader *l = ctx;
    Batch *b = slot;
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

static void free_batches(Loader *l) {
    if (!l->batches) return;
    for (int i = 0; i < l->cfg.prefetch; i++) {
        Batch *b = &l->batches[i];
        free(b->lq), free(b->gt), free(b->clip), free(b->type);
    }
    free(l->batches);
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
    l->batches = calloc((size_t)cfg->prefetch, sizeof(Batch));
    l->slot_ptrs = calloc((size_t)cfg->prefetch, sizeof(void *));
    int ok = l->batches && l->slot_ptrs;
    for (int i = 0; ok && i < cfg->prefetch; i++) {
        Batch *b = &l->batches[i];
        l->slot_ptrs[i] = b;
        b->n = cfg->batch; b->patch = cfg->patch; b->clip_size = cfg->clip_size;
        b->lq = malloc(np * sizeof(float));
        b->gt = malloc(np * sizeof(float));
        b->clip = nc ? malloc(nc * sizeof(float)) : NULL;
        b->type = malloc(sizeof(int) * (size_t)cfg->batch);
        ok = b->lq && b->gt && b->type && (!nc || b->clip);
    }
    if (ok && cfg->cache) ok = (l->cache = calloc((size_t)ds->n, sizeof(CacheEntry))) != NULL;
    if (!ok) {
        free_batches(l); free(l->slot_ptrs); free(l->cache); free(l);
        data_set_error("loader: out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->cache_mu, NULL);
    pthread_cond_init(&l->cache_cv, NULL);
    PrefetchConfig pc = {cfg->threads, cfg->prefetch, cfg->start_batch, -1, l->slot_ptrs, fill_batch, l, 0};
    if (!(l->ring = prefetch_create(&pc))) { loader_destroy(l); return NULL; }
    return l;
}

const Batch *loader_next(Loader *l) { return prefetch_next(l->ring); }

void loader_destroy(Loader *l) {
    if (!l) return;
    prefetch_destroy(l->ring);   /* first: the workers may be reading the cache */
    pthread_mutex_destroy(&l->cache_mu);
    pthread_cond_destroy(&l->cache_cv);
    if (l->cache)
        for (int i = 0; i < l->ds->n; i++) { image_free(&l->cache[i].lq); image_free(&l->cache[i].gt); }
    free(l->cache);
    free_batches(l);
    free(l->slot_ptrs);
    free(l);
}
