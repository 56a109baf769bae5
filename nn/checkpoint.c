/* Training-state checkpoints; see checkpoint.h for the file layout. */
#include "nn/checkpoint.h"

#include <inttypes.h>
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

int ckpt_save(const char *path, const TrainState *s) {
    if (s->ema && s->ema->swapped) {
        t_set_errmsg("%s: EMA weights are swapped in; swap them back before saving", path);
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
        char meta[768];
        snprintf(meta, sizeof meta,
                 "{\"format\":\"%s\",\"version\":\"%d\",\"step\":\"%" PRId64 "\",\"lr\":\"%.17g\","
                 "\"optim\":\"%s\",\"optim_step\":\"%" PRId64 "\",\"rng\":\"%s%016" PRIx64 ":%016" PRIx64
                 ":%016" PRIx64 ":%016" PRIx64 "\",\"ema_step\":\"%" PRId64 "\"}",
                 CKPT_FORMAT, CKPT_VERSION, s->step, s->lr, optim_kind_name(s->opt), s->opt ? s->opt->step : 0,
                 s->rng ? "" : "none:", w[0], w[1], w[2], w[3], s->ema ? s->ema->step : 0);
        rc = st_save(path, l.n, (const char *const *)l.names, l.ts, meta);
    }
    for (int i = 0; i < l.n; i++) free(l.names[i]);
    free(l.names);
    free(l.ts);
    t_arena_release(mark);
    return rc;
}

/* Copies the named array into dst (n floats); -1 with a message when absent or of the wrong size. */
static int restore(const StFile *f, const char *prefix, const char *name, float *dst, int64_t n) {
    char key[1024];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const StEntry *e = st_find(f, key);
    int64_t have = 1;
    for (int d = 0; e && d < e->ndim; d++) have *= e->shape[d];
    if (!e || have != n) {
        t_set_errmsg("%s: %s '%s'", f->path, e ? "wrong size for" : "missing", key);
        return -1;
    }
    memcpy(dst, e->data, sizeof(float) * (size_t)n);
    return 0;
}

static int meta_i64(const StFile *f, const char *key, int64_t *v) {
    char buf[64], *end;
    if (st_meta_get(f, key, buf, sizeof buf) != 0) {
        t_set_errmsg("%s: metadata lacks '%s'", f->path, key);
        return -1;
    }
    *v = strtoll(buf, &end, 10);
    if (*end || end == buf) {
        t_set_errmsg("%s: metadata '%s' is not an integer: '%s'", f->path, key, buf);
        return -1;
    }
    return 0;
}

static int load_state(const StFile *f, TrainState *s) {
    char buf[128];
    int64_t version;
    if (st_meta_get(f, "format", buf, sizeof buf) != 0 || strcmp(buf, CKPT_FORMAT)) {
        t_set_errmsg("%s: not a training checkpoint (metadata format is not \"%s\")", f->path, CKPT_FORMAT);
        return -1;
    }
    if (meta_i64(f, "version", &version) || version != CKPT_VERSION) {
        t_set_errmsg("%s: checkpoint version %s, this build reads %d", f->path,
                     st_meta_get(f, "version", buf, sizeof buf) ? "?" : buf, CKPT_VERSION);
        return -1;
    }
    /* parameters: every entry without a '/' */
    NamedArray *arr = calloc((size_t)(f->n ? f->n : 1), sizeof *arr);
    if (!arr) {
        t_set_errmsg("%s: out of memory", f->path);
        return -1;
    }
    int na = 0;
    for (int i = 0; i < f->n; i++)
        if (!strchr(f->entries[i].name, '/'))
            arr[na++] = (NamedArray){f->entries[i].name, f->entries[i].ndim, f->entries[i].shape, f->entries[i].data};
    int rc = params_load_arrays(s->params, na, arr, true, NULL);
    free(arr);
    if (rc) {
        char why[1024];
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("%s: %s", f->path, why);
        return -1;
    }
    if (meta_i64(f, "step", &s->step)) return -1;
    if (st_meta_get(f, "lr", buf, sizeof buf) == 0) s->lr = strtod(buf, NULL);
    if (s->opt) {
        Optim *o = s->opt;
        if (st_meta_get(f, "optim", buf, sizeof buf) || strcmp(buf, optim_kind_name(o))) {
            t_set_errmsg("%s: checkpoint optimizer is '%s', the run uses '%s'", f->path, buf, optim_kind_name(o));
            return -1;
        }
        if (meta_i64(f, "optim_step", &o->step)) return -1;
        for (int k = 0; k < o->n; k++) {
            const char *name = s->params->items[o->slots[k].index].name;
            int64_t n = optim_slot_numel(o, k);
            if (o->cfg.kind == OPT_ADAMW) {
                if (restore(f, "optim/exp_avg/", name, o->slots[k].m, n) ||
                    restore(f, "optim/exp_avg_sq/", name, o->slots[k].v, n))
                    return -1;
            } else if (restore(f, "optim/momentum/", name, o->slots[k].m, n)) {
                return -1;
            }
        }
    }
    if (s->rng) {
        uint64_t w[4];
        if (st_meta_get(f, "rng", buf, sizeof buf) ||
            sscanf(buf, "%" SCNx64 ":%" SCNx64 ":%" SCNx64 ":%" SCNx64, &w[0], &w[1], &w[2], &w[3]) != 4) {
            t_set_errmsg("%s: metadata 'rng' is missing or malformed", f->path);
            return -1;
        }
        rng_state_load(s->rng, w);
    }
    if (s->ema) {
        if (s->ema->swapped) ema_swap(s->ema);
        if (meta_i64(f, "ema_step", &s->ema->step)) return -1;
        for (int k = 0; k < s->ema->n; k++) {
            const Param *p = &s->params->items[s->ema->index[k]];
            if (restore(f, "ema/", p->name, s->ema->shadow[k], t_numel(p->t))) return -1;
        }
    }
    return 0;
}

int ckpt_load(const char *path, TrainState *s) {
    StFile *f = st_open(path);
    if (!f) return -1;
    int rc = load_state(f, s);
    st_close(f);
    return rc;
}
