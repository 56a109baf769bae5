/* Loading and saving the ParamSet by name. Every mismatch is collected first, so one error lists all
 * missing, unexpected and wrong-shape keys rather than the first one found. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/module.h"
#include "tensor/gemm.h"
#include "tensor/safetensors.h"

#define LIST_MAX 6   /* names shown per category; the rest are counted */

typedef struct {
    char text[960];
    size_t n;
} Msg;

static void msg_add(Msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(Msg *m, const char *fmt, ...) {
    if (m->n >= sizeof m->text) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(m->text + m->n, sizeof m->text - m->n, fmt, ap);
    va_end(ap);
    if (k > 0) m->n = m->n + (size_t)k < sizeof m->text ? m->n + (size_t)k : sizeof m->text;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static bool same_shape(const Tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return false;
    return true;
}

static const NamedArray *find_array(int n, const NamedArray *arrays, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(arrays[i].name, name)) return &arrays[i];
    return NULL;
}

/* Opens a category in the message: "; 2 missing keys: a, b". */
static void msg_category(Msg *m, int count, const char *what) {
    msg_add(m, "%s%d %s%s:", m->n ? "; " : "", count, what, count == 1 ? "" : "s");
}

int params_load_arrays(ParamSet *ps, int n, const NamedArray *arrays, bool strict, LoadReport *rep) {
    LoadReport r = {0};
    Msg m = {.n = 0};
    m.text[0] = 0;
    /* count first, so each category header carries its total */
    for (int i = 0; i < ps->n; i++) {
        const NamedArray *a = find_array(n, arrays, ps->items[i].name);
        if (!a) r.missing++;
        else if (!same_shape(ps->items[i].t, a->ndim, a->shape)) r.wrong_shape++;
    }
    for (int i = 0; i < n; i++)
        if (!params_find(ps, arrays[i].name)) r.unexpected++;

    if (r.missing) {
        msg_category(&m, r.missing, "missing key");
        int shown = 0;
        for (int i = 0; i < ps->n; i++)
            if (!find_array(n, arrays, ps->items[i].name) && shown++ < LIST_MAX) msg_add(&m, " %s", ps->items[i].name);
        if (shown > LIST_MAX) msg_add(&m, " (and %d more)", shown - LIST_MAX);
    }
    if (r.unexpected) {
        msg_category(&m, r.unexpected, "unexpected key");
        int shown = 0;
        for (int i = 0; i < n; i++)
            if (!params_find(ps, arrays[i].name) && shown++ < LIST_MAX) msg_add(&m, " %s", arrays[i].name);
        if (shown > LIST_MAX) msg_add(&m, " (and %d more)", shown - LIST_MAX);
    }
    if (r.wrong_shape) {
        msg_category(&m, r.wrong_shape, "wrong shape");
        int shown = 0;
        for (int i = 0; i < ps->n; i++) {
            const Tensor *t = ps->items[i].t;
            const NamedArray *a = find_array(n, arrays, ps->items[i].name);
            if (!a || same_shape(t, a->ndim, a->shape) || shown++ >= LIST_MAX) continue;
            char ms[96], fs[96];
            shape_str(ms, sizeof ms, t->ndim, t->shape);
            shape_str(fs, sizeof fs, a->ndim, a->shape);
            msg_add(&m, " %s (model %s, file %s)", ps->items[i].name, ms, fs);
        }
        if (shown > LIST_MAX) msg_add(&m, " (and %d more)", shown - LIST_MAX);
    }
    bool bad = r.missing || r.unexpected || r.wrong_shape;
    if (bad) t_set_errmsg("state dict does not match the model: %s", m.text);
    else t_set_errmsg("%s", "");
    if (!(strict && bad)) {
        for (int i = 0; i < ps->n; i++) {
            Tensor *t = ps->items[i].t;
            const NamedArray *a = find_array(n, arrays, ps->items[i].name);
            if (!a || !same_shape(t, a->ndim, a->shape)) continue;
            t_sgemm_forget(t->data);   /* overwritten whole: plain again if it was packed for inference */
            if (a->data) memcpy(t->data, a->data, sizeof(float) * (size_t)t_numel(t));   /* NULL: the caller fills it */
            r.loaded++;
        }
    }
    if (rep) *rep = r;
    return strict && bad ? -1 : 0;
}

int params_load_file(ParamSet *ps, const char *path, bool strict, const char *strip_prefix, LoadReport *rep) {
    StFile *f = st_open(path);
    if (!f) return -1;
    NamedArray *arrays = calloc((size_t)(f->n ? f->n : 1), sizeof *arrays);
    if (!arrays) {
        st_close(f);
        t_set_errmsg("%s: out of memory", path);
        return -1;
    }
    size_t sp = strip_prefix ? strlen(strip_prefix) : 0;
    for (int i = 0; i < f->n; i++) {
        const StEntry *e = &f->entries[i];
        arrays[i].name = sp && !strncmp(e->name, strip_prefix, sp) ? e->name + sp : e->name;
        arrays[i].ndim = e->ndim;
        arrays[i].shape = e->shape;
        arrays[i].data = e->data;
    }
    int rc = params_load_arrays(ps, f->n, arrays, strict, rep);
    if (*t_errmsg()) {
        char why[1024];
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("%s: %s", path, why);
    }
    free(arrays);
    st_close(f);
    return rc;
}

int params_save_file(const ParamSet *ps, const char *path, const char *metadata_json) {
    const char **names = malloc(sizeof(char *) * (size_t)(ps->n ? ps->n : 1));
    Tensor **ts = malloc(sizeof(Tensor *) * (size_t)(ps->n ? ps->n : 1));
    int rc = -1;
    bool plain = true;   /* weights packed for inference (t_prepack_weight) are written plain */
    for (int i = 0; i < ps->n; i++) plain = t_unpack_weight(ps->items[i].t) && plain;
    if (!plain) {
        t_set_errmsg("%s: out of memory unpacking the weights", path);
    } else if (names && ts) {
        for (int i = 0; i < ps->n; i++) names[i] = ps->items[i].name, ts[i] = ps->items[i].t;
        rc = st_save(path, ps->n, names, ts, metadata_json);
    } else {
        t_set_errmsg("%s: out of memory", path);
    }
    free(names);
    free(ts);
    return rc;
}
