/* Training-state checkpoints; see checkpoint.h for the file layout. */
#include "nn/checkpoint.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/safetensors.h"

typedef struct {
    int n, cap;
    char **names;            /* owned */
    Tensor **ts;             /* arena headers over persistent memory */
    bool oom;
} SaveList;

static void list_add(SaveList *l, const char *prefix, const char *name, float *data, const Tensor *like) {
    if (l->oom) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **nn = realloc(l->names, sizeof(char *) * (size_t)cap);
        if (nn) l->names = nn;
        Tensor **nt = realloc(l->ts, sizeof(Tensor *) * (size_t)cap);
        if (nt) l->ts = nt;
        if (!nn || !nt) { l->oom = true; return; }
        l->cap = cap;
    }
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *full = malloc(len);
    if (!full) { l->oom = true; return; }
    snprintf(full, len, "%s%s", prefix, name);
    l->names[l->n] = full;
    l->ts[l->n] = t_wrap(data, like->ndim, like->shape);
    l->n++;
}

static const char *optim_kind_name(const Optim *o) {
    return !o ? "none" : o->cfg.kind == OPT_ADAMW ? "adamw" : "sgd";
}

/* A config string is stored inside the JSON metadata as it is: no quotes, backslashes or control bytes. */
static bool config_ok(const char *c) {
    if (!c) return true;
    size_t n = 0;
    for (; c[n]; n++)
        if (!isalnum((unsigned char)c[n]) && !strchr("_.=: -", c[n])) return false;
    return n <= 256;
}

int ckpt_save(const char *path, const TrainState *s) {
    if (s->ema && s->ema->swapped) {
        t_set_errmsg("%s: EMA weights are swapped in; swap them back before saving", path);
        return -1;
    }
    if (!config_ok(s->config)) {
        t_set_errmsg("%s: the run's config string is not storable (at most 256 of [A-Za-z0-9_.=: -])", path);
        return -1;
    }
    size_t mark = t_arena_mark();
    SaveList l = {0};
    ParamSet *ps = s->params;
    for (int i = 0; i < ps->n; i++) list_add(&l, "", ps->items[i].name, ps->items[i].t->data, ps->items[i].t);
    if (s->opt)
        for (int k = 0; k < s->opt->n; k++) {
            const OptSlot *sl = &s->opt->slots[k];
            const Param *p = &ps->items[sl->index];
            if (s->opt->cfg.kind == OPT_ADAMW) {
                list_add(&l, "optim/exp_avg/", p->name, sl->m, p->t);
                list_add(&l, "optim/exp_avg_sq/", p->name, sl->v, p->t);
            } else {
                list_add(&l, "optim/momentum/", p->name, sl->m, p->t);
            }
        }
    if (s->ema)
        for (int k = 0; k < s->ema->n; k++) {
            const Param *p = &ps->items[s->ema->index[k]];
            list_add(&l, "ema/", p->name, s->ema->shadow[k], p->t);
        }
    int rc = -1;
    if (l.oom) {
        t_set_errmsg("%s: out of memory", path);
    } else {
        uint64_t w[4] = {0};
        if (s->rng) rng_state_save(s->rng, w);
        char meta[1024];
        int len = snprintf(meta, sizeof meta,
                           "{\"format\":\"%s\",\"version\":\"%d\",\"step\":\"%" PRId64 "\",\"lr\":\"%.17g\","
                           "\"optim\":\"%s\",\"optim_step\":\"%" PRId64 "\",\"rng\":\"%s%016" PRIx64 ":%016" PRIx64
                           ":%016" PRIx64 ":%016" PRIx64 "\",\"ema_step\":\"%" PRId64 "\"%s%s%s}",
                           CKPT_FORMAT, CKPT_VERSION, s->step, s->lr, optim_kind_name(s->opt),
                           s->opt ? s->opt->step : 0,
                           s->rng ? "" : "none:", w[0], w[1], w[2], w[3], s->ema ? s->ema->step : 0,
                           s->config ? ",\"config\":\"" : "", s->config ? s->config : "", s->config ? "\"" : "");
        if (len < 0 || (size_t)len >= sizeof meta)
            t_set_errmsg("%s: checkpoint metadata too long", path);
        else
            rc = st_save(path, l.n, (const char *const *)l.names, l.ts, meta);
    }
    for (int i = 0; i < l.n; i++) free(l.names[i]);
    free(l.names);
    free(l.ts);
    t_arena_release(mark);
    return rc;
}

/* ------------------------------------------------------------------ loading
 * Everything is checked before anything is copied, so a refused checkpoint leaves the run untouched. */

/* Largest step counter accepted: far beyond any run (--steps allows 1e12), small enough that step x batch
 * and the schedule arithmetic cannot overflow. */
#define CKPT_MAX_STEP ((int64_t)1000000000000)

static int meta_fail(const StFile *f, const char *why) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", why);
    t_set_errmsg("%s: checkpoint metadata: %s", f->path, buf);
    return -1;
}

static int meta_int(const StFile *f, const JsonObject *meta, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    return json_object_get_int(meta, key, lo, hi, v) ? meta_fail(f, t_errmsg()) : 0;
}

/* Four words of exactly 16 lower- or upper-case hex digits joined by ':' (what ckpt_save writes). */
static int parse_rng(const char *s, uint64_t w[4]) {
    for (int k = 0; k < 4; k++) {
        uint64_t x = 0;
        for (int i = 0; i < 16; i++, s++) {
            char c = *s;
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return -1;
            x = x << 4 | (uint64_t)d;
        }
        w[k] = x;
        if (*s != (k < 3 ? ':' : 0)) return -1;
        s++;
    }
    /* word 2 is the position in the buffered block (0..4, and a partly used block needs a counter > 0);
     * word 3 is reserved */
    if (w[2] > 4 || (w[2] < 4 && w[1] == 0) || w[3] != 0) return -1;
    return 0;
}

/* The entry prefix+name, which must have exactly the shape of `like` and finite values (for exp_avg_sq
 * also non-negative: its square root is taken). NULL with a message otherwise. */
static const StEntry *state_entry(const StFile *f, const char *prefix, const char *name, const Tensor *like,
                                  bool non_negative) {
    char key[1024];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const StEntry *e = st_find(f, key);
    if (!e) {
        t_set_errmsg("%s: missing '%s'", f->path, key);
        return NULL;
    }
    bool same = e->ndim == like->ndim;
    for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == like->shape[d];
    if (!same) {
        char want[128] = "", got[128] = "";
        for (int d = 0; d < like->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)like->shape[d]);
        for (int d = 0; d < e->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "", (long long)e->shape[d]);
        t_set_errmsg("%s: '%s' has shape [%s], the parameter has [%s]", f->path, key, got, want);
        return NULL;
    }
    int64_t n = t_numel(like);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(e->data[i]) || (non_negative && e->data[i] < 0)) {
            t_set_errmsg("%s: '%s' element %lld is %g (%s)", f->path, key, (long long)i, e->data[i],
                         isfinite(e->data[i]) ? "negative" : "not finite");
            return NULL;
        }
    return e;
}

/* The checked state to copy in: one entry per optimizer buffer and EMA shadow. */
typedef struct {
    int64_t step, optim_step, ema_step;
    double lr;
    uint64_t rng[4];
    const StEntry **m, **v, **ema;
} Loaded;

static int check_meta(const StFile *f, const TrainState *s, Loaded *L) {
    JsonObject meta;
    if (st_meta(f, &meta)) return -1;
    int rc = -1;
    const char *format = json_object_get(&meta, "format");
    int64_t version;
    if (!format || strcmp(format, CKPT_FORMAT)) {
        t_set_errmsg("%s: not a training checkpoint (metadata format is not \"%s\")", f->path, CKPT_FORMAT);
        goto done;
    }
    if (json_object_get_int(&meta, "version", INT64_MIN, INT64_MAX, &version) || version != CKPT_VERSION) {
        const char *v = json_object_get(&meta, "version");
        t_set_errmsg("%s: checkpoint version %.20s, this build reads %d", f->path, v ? v : "(missing)", CKPT_VERSION);
        goto done;
    }
    if (meta_int(f, &meta, "step", 0, CKPT_MAX_STEP, &L->step)) goto done;
    const char *lr = json_object_get(&meta, "lr");
    char *end = NULL;
    L->lr = lr ? strtod(lr, &end) : 0;
    if (!lr || end == lr || *end || !isfinite(L->lr) || L->lr < 0) {
        meta_fail(f, lr ? "'lr' is not a finite non-negative number" : "'lr' is missing");
        goto done;
    }
    if (s->opt) {
        const char *kind = json_object_get(&meta, "optim");
        if (!kind || strcmp(kind, optim_kind_name(s->opt))) {
            t_set_errmsg("%s: checkpoint optimizer is '%.20s', the run uses '%s'", f->path, kind ? kind : "(missing)",
                         optim_kind_name(s->opt));
            goto done;
        }
        if (meta_int(f, &meta, "optim_step", 0, CKPT_MAX_STEP, &L->optim_step)) goto done;
    }
    if (s->rng) {
        const char *r = json_object_get(&meta, "rng");
        if (!r || parse_rng(r, L->rng)) {
            meta_fail(f, !r ? "'rng' is missing"
                      : !strncmp(r, "none:", 5) ? "the checkpoint holds no random-generator state"
                                                : "'rng' is malformed (4 words of 16 hex digits)");
            goto done;
        }
    }
    if (s->ema && meta_int(f, &meta, "ema_step", 0, CKPT_MAX_STEP, &L->ema_step)) goto done;
    const char *config = json_object_get(&meta, "config");
    if (s->config && config && strcmp(config, s->config)) {
        t_set_errmsg("%s: the checkpoint's run had %.256s; this run has %s (resume with the same options)", f->path,
                     config, s->config);
        goto done;
    }
    rc = 0;
done:
    json_object_free(&meta);
    return rc;
}

static int load_params(const StFile *f, ParamSet *ps) {
    NamedArray *arr = calloc((size_t)(f->n > 0 ? f->n : 1), sizeof *arr);
    if (!arr) {
        t_set_errmsg("%s: out of memory", f->path);
        return -1;
    }
    int na = 0;
    for (int i = 0; i < f->n; i++)
        if (!strchr(f->entries[i].name, '/'))
            arr[na++] = (NamedArray){f->entries[i].name, f->entries[i].ndim, f->entries[i].shape, f->entries[i].data};
    int rc = params_load_arrays(ps, na, arr, true, NULL);
    free(arr);
    if (rc) {
        char why[1024];
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("%s: %s", f->path, why);
        return -1;
    }
    return 0;
}

/* Whether the parameter entries (names without '/') are exactly the run's parameters with their shapes. */
static bool params_match(const StFile *f, const ParamSet *ps) {
    int n_file = 0;
    for (int i = 0; i < f->n; i++) n_file += !strchr(f->entries[i].name, '/');
    if (n_file != ps->n) return false;
    for (int i = 0; i < ps->n; i++) {
        const StEntry *e = st_find(f, ps->items[i].name);
        const Tensor *t = ps->items[i].t;
        if (!e || e->ndim != t->ndim) return false;
        for (int d = 0; d < e->ndim; d++)
            if (e->shape[d] != t->shape[d]) return false;
    }
    return true;
}

static int check_tensors(const StFile *f, const TrainState *s, Loaded *L) {
    /* a strict load that fails copies nothing and lists every missing, unexpected and misshapen key */
    if (!params_match(f, s->params)) return load_params(f, s->params) ? -1 : 0;
    /* parameters: every entry without a '/' holds finite values (the shapes are checked by the load) */
    for (int i = 0; i < f->n; i++) {
        const StEntry *e = &f->entries[i];
        if (strchr(e->name, '/')) continue;
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        for (int64_t k = 0; k < n; k++)
            if (!isfinite(e->data[k])) {
                t_set_errmsg("%s: parameter '%s' element %lld is not finite", f->path, e->name, (long long)k);
                return -1;
            }
    }
    const ParamSet *ps = s->params;
    if (s->opt)
        for (int k = 0; k < s->opt->n; k++) {
            const Param *p = &ps->items[s->opt->slots[k].index];
            if (optim_slot_numel(s->opt, k) != t_numel(p->t)) {
                t_set_errmsg("%s: optimizer slot %d does not match parameter '%s'", f->path, k, p->name);
                return -1;
            }
            if (s->opt->cfg.kind == OPT_ADAMW) {
                if (!(L->m[k] = state_entry(f, "optim/exp_avg/", p->name, p->t, false)) ||
                    !(L->v[k] = state_entry(f, "optim/exp_avg_sq/", p->name, p->t, true)))
                    return -1;
            } else if (!(L->m[k] = state_entry(f, "optim/momentum/", p->name, p->t, false))) {
                return -1;
            }
        }
    if (s->ema)
        for (int k = 0; k < s->ema->n; k++) {
            const Param *p = &ps->items[s->ema->index[k]];
            if (!(L->ema[k] = state_entry(f, "ema/", p->name, p->t, false))) return -1;
        }
    return 0;
}

static int load_state(const StFile *f, TrainState *s) {
    Loaded L = {0};
    int n_opt = s->opt ? s->opt->n : 0, n_ema = s->ema ? s->ema->n : 0;
    L.m = calloc((size_t)n_opt + 1, sizeof *L.m);
    L.v = calloc((size_t)n_opt + 1, sizeof *L.v);
    L.ema = calloc((size_t)n_ema + 1, sizeof *L.ema);
    int rc = -1;
    if (!L.m || !L.v || !L.ema) {
        t_set_errmsg("%s: out of memory", f->path);
        goto done;
    }
    if (check_meta(f, s, &L) || check_tensors(f, s, &L) || load_params(f, s->params)) goto done;
    /* from here on nothing can fail */
    s->step = L.step;
    s->lr = L.lr;
    if (s->opt) {
        Optim *o = s->opt;
        o->step = L.optim_step;
        for (int k = 0; k < n_opt; k++) {
            size_t bytes = sizeof(float) * (size_t)optim_slot_numel(o, k);
            memcpy(o->slots[k].m, L.m[k]->data, bytes);
            if (o->cfg.kind == OPT_ADAMW) memcpy(o->slots[k].v, L.v[k]->data, bytes);
        }
    }
    if (s->rng) rng_state_load(s->rng, L.rng);
    if (s->ema) {
        if (s->ema->swapped) ema_swap(s->ema);
        s->ema->step = L.ema_step;
        for (int k = 0; k < n_ema; k++)
            memcpy(s->ema->shadow[k], L.ema[k]->data,
                   sizeof(float) * (size_t)t_numel(s->params->items[s->ema->index[k]].t));
    }
    rc = 0;
done:
    free(L.m);
    free(L.v);
    free(L.ema);
    return rc;
}

int ckpt_load(const char *path, TrainState *s) {
    st_remove_stale_temps(path);   /* what a save killed before this run left behind */
    StFile *f = st_open(path);
    if (!f) return -1;
    int rc = load_state(f, s);
    st_close(f);
    return rc;
}
