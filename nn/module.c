/* ParamSet: the ordered (name, tensor) list that is both the model's parameter registry and its
 * state dict. Names are owned here; each tensor's ->name points at its entry's name. */
#include "nn/module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void params_init(ParamSet *ps) {
    ps->items = NULL;
    ps->n = ps->cap = 0;
    ps->failed = false;
}

void params_free(ParamSet *ps) {
    for (int i = 0; i < ps->n; i++) {
        t_free(ps->items[i].t);
        free(ps->items[i].name);
    }
    free(ps->items);
    params_init(ps);
}

char *nn_join(char *buf, size_t n, const char *prefix, const char *name) {
    if (prefix && *prefix) snprintf(buf, n, "%s.%s", prefix, name);
    else snprintf(buf, n, "%s", name);
    return buf;
}

bool params_add(ParamSet *ps, const char *full_name, Tensor *t) {
    if (!t) {   /* its maker has reported why */
        ps->failed = true;
        return false;
    }
    if (params_find(ps, full_name)) {
        /* two layers registering one key is a programming error in a model definition */
        t_error("params_add", "duplicate parameter name '%s'", full_name);
        ps->failed = true;
        t_free(t);
        return false;
    }
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 32;
        Param *np = realloc(ps->items, sizeof(Param) * (size_t)cap);
        if (!np) {
            t_error("params_add", "out of memory registering '%s'", full_name);
            ps->failed = true;
            t_free(t);
            return false;
        }
        ps->items = np, ps->cap = cap;
    }
    char *name = strdup(full_name);
    if (!name) {
        t_error("params_add", "out of memory registering '%s'", full_name);
        ps->failed = true;
        t_free(t);
        return false;
    }
    Param *p = &ps->items[ps->n++];
    p->name = name;
    p->t = t;
    p->frozen = false;
    t->name = p->name;
    return true;
}

Tensor *params_new(ParamSet *ps, const char *prefix, const char *name, int ndim, const int64_t *shape) {
    char full[512];
    nn_join(full, sizeof full, prefix, name);
    Tensor *t = t_param_new(ndim, shape, true);
    return params_add(ps, full, t) ? t : NULL;
}

Param *params_find(const ParamSet *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->items[i].name, name)) return &ps->items[i];
    return NULL;
}

/* "a.b" matches prefix "a" and "a.b", not "ab": a prefix ends at a name boundary. */
static bool has_prefix(const char *name, const char *prefix) {
    size_t n = prefix ? strlen(prefix) : 0;
    if (!n) return true;
    if (strncmp(name, prefix, n)) return false;
    return name[n] == 0 || name[n] == '.' || prefix[n - 1] == '.';
}

void params_freeze(ParamSet *ps, const char *prefix, bool frozen) {
    for (int i = 0; i < ps->n; i++)
        if (has_prefix(ps->items[i].name, prefix)) {
            Tensor *t = ps->items[i].t;
            ps->items[i].frozen = frozen;
            t->requires_grad = !frozen;
            /* a frozen tensor never gets a gradient: no buffer for a lazy zero_grad or a backward to clear
             * (DA-CLIP's frozen CLIP is 600 MB of gradient that would be written every step) */
            if (frozen) t_drop_grad(t);
            else t_grad_buf(t);   /* trainable parameters always have a (zeroed) gradient buffer */
        }
}

int64_t params_count(const ParamSet *ps, const char *prefix, bool trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (has_prefix(ps->items[i].name, prefix) && !(trainable_only && ps->items[i].frozen))
            n += t_numel(ps->items[i].t);
    return n;
}

void params_zero_grad(ParamSet *ps) {
    for (int i = 0; i < ps->n; i++) t_zero_grad(ps->items[i].t);
}

void params_zero_grad_lazy(ParamSet *ps) {
    for (int i = 0; i < ps->n; i++) t_zero_grad_lazy(ps->items[i].t);
}
