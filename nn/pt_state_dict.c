#include "nn/pt_state_dict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pt_is_checkpoint_path(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot && (!strcmp(dot, ".pt") || !strcmp(dot, ".pth") || !strcmp(dot, ".bin"));
}

void pt_state_dict_close(PtStateDict *sd) {
    if (!sd) return;
    for (int i = 0; i < sd->n; i++) free(sd->names[i]);
    free(sd->names);
    free(sd->e);
    pt_close(sd->f);
    memset(sd, 0, sizeof *sd);
}

static bool same_tensor(const PtEntry *a, const PtEntry *b) {
    if (a->storage != b->storage || a->offset != b->offset || a->ndim != b->ndim) return false;
    for (int k = 0; k < a->ndim; k++)
        if (a->shape[k] != b->shape[k] || a->stride[k] != b->stride[k]) return false;
    return true;
}

int pt_state_dict_open(const char *path, PtStateDict *sd) {
    memset(sd, 0, sizeof *sd);
    if (!(sd->f = pt_open(path))) return -1;
    int total = pt_count(sd->f);
    bool nested = false;
    for (int i = 0; i < total; i++)
        if (!strncmp(pt_entry(sd->f, i)->name, "state_dict.", 11)) nested = true;
    sd->names = calloc((size_t)total + 1, sizeof *sd->names);
    sd->e = calloc((size_t)total + 1, sizeof *sd->e);
    if (!sd->names || !sd->e) {
        t_set_errmsg("%s: out of memory", path);
        pt_state_dict_close(sd);
        return -1;
    }
    for (int i = 0; i < total; i++) {
        const PtEntry *e = pt_entry(sd->f, i);
        const char *n = e->name;
        if (nested) {
            if (strncmp(n, "state_dict.", 11)) continue;   /* optimizer state, epoch, ... */
            n += 11;
        }
        if (!strncmp(n, "module.", 7)) n += 7;
        if (!(sd->names[sd->n] = strdup(n))) {
            t_set_errmsg("%s: out of memory", path);
            pt_state_dict_close(sd);
            return -1;
        }
        sd->e[sd->n++] = e;
    }
    /* DaCLIP lists its image tower twice, as "clip.visual.X" and its alias "visual.X" */
    int k = 0;
    for (int i = 0; i < sd->n; i++) {
        bool alias = false;
        if (!strncmp(sd->names[i], "visual.", 7)) {
            char full[600];
            snprintf(full, sizeof full, "clip.%s", sd->names[i]);
            const PtEntry *o = pt_state_dict_find(sd, full);
            alias = o && same_tensor(o, sd->e[i]);
        }
        if (alias) {
            free(sd->names[i]);
            sd->aliases_dropped++;
        } else {
            sd->names[k] = sd->names[i], sd->e[k] = sd->e[i], k++;
        }
    }
    sd->n = k;
    if (sd->n == 0) {
        t_set_errmsg("%s: no tensors in the checkpoint", path);
        pt_state_dict_close(sd);
        return -1;
    }
    return 0;
}

const PtEntry *pt_state_dict_find(const PtStateDict *sd, const char *name) {
    for (int i = 0; i < sd->n; i++)
        if (sd->names[i] && !strcmp(sd->names[i], name)) return sd->e[i];
    return NULL;
}

int params_load_pt(ParamSet *ps, PtStateDict *sd, bool strict, LoadReport *rep) {
    /* names and shapes through the same checks as any state dict (no data: NULL arrays), then each tensor the
     * model takes is converted straight into its parameter: peak memory is the model, not the file */
    NamedArray *arr = calloc((size_t)sd->n + 1, sizeof *arr);
    if (!arr) {
        t_set_errmsg("out of memory loading a checkpoint");
        return -1;
    }
    for (int i = 0; i < sd->n; i++) arr[i] = (NamedArray){sd->names[i], sd->e[i]->ndim, sd->e[i]->shape, NULL};
    int rc = params_load_arrays(ps, sd->n, arr, strict, rep);
    free(arr);
    if (*t_errmsg()) {
        char why[1024];
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("%s: %s", pt_path(sd->f), why);
    }
    if (rc) return -1;
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i].t;
        const PtEntry *e = pt_state_dict_find(sd, ps->items[i].name);
        if (!e || e->ndim != t->ndim) continue;
        bool same = true;
        for (int k = 0; k < e->ndim; k++) same &= e->shape[k] == t->shape[k];
        if (same && pt_read_f32(sd->f, e, t->data)) return -1;
    }
    return 0;
}
