#include "nn/ema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

EmaConfig ema_default_config(double beta, int update_every) {
    return (EmaConfig){.beta = beta, .update_every = update_every, .update_after_step = 100, .warmup = true,
                       .inv_gamma = 1.0, .power = 2.0 / 3.0, .min_value = 0.0};
}

static void copy_in(Ema *e) {
    for (int i = 0; i < e->n; i++) {
        const Tensor *t = e->ps->items[e->index[i]].t;
        memcpy(e->shadow[i], t->data, sizeof(float) * (size_t)t_numel(t));
    }
}

int ema_init(Ema *e, ParamSet *ps, const EmaConfig *cfg) {
    memset(e, 0, sizeof *e);
    if (cfg->update_every < 1) {
        t_set_errmsg("ema_init: update_every must be >= 1");
        return -1;
    }
    e->cfg = *cfg;
    e->ps = ps;
    e->index = calloc((size_t)(ps->n ? ps->n : 1), sizeof(int));
    e->shadow = calloc((size_t)(ps->n ? ps->n : 1), sizeof(float *));
    if (!e->index || !e->shadow) goto oom;
    for (int i = 0; i < ps->n; i++) {
        if (ps->items[i].frozen) continue;
        int64_t n = t_numel(ps->items[i].t);
        e->index[e->n] = i;
        if (!(e->shadow[e->n] = malloc(sizeof(float) * (size_t)(n ? n : 1)))) goto oom;
        e->n++;
    }
    copy_in(e);
    return 0;
oom:
    ema_free(e);
    t_set_errmsg("ema_init: out of memory");
    return -1;
}

double ema_current_decay(const Ema *e) {
    double epoch = (double)(e->step - e->cfg.update_after_step - 1);
    if (epoch <= 0) return 0.0;
    if (!e->cfg.warmup) return e->cfg.beta;
    double v = 1.0 - pow(1.0 + epoch / e->cfg.inv_gamma, -e->cfg.power);
    return v < e->cfg.min_value ? e->cfg.min_value : v > e->cfg.beta ? e->cfg.beta : v;
}

void ema_update(Ema *e) {
    int64_t call = e->step++;
    if (call % e->cfg.update_every) return;
    if (call <= e->cfg.update_after_step) {
        copy_in(e);
        return;
    }
    const float w = (float)(1.0 - ema_current_decay(e));
    for (int i = 0; i < e->n; i++) {
        const Tensor *t = e->ps->items[e->index[i]].t;
        const float *p = t->data;
        float *s = e->shadow[i];
        int64_t n = t_numel(t);
#pragma omp parallel for if (n > 65536) schedule(static)
        for (int64_t k = 0; k < n; k++) s[k] += w * (p[k] - s[k]);
    }
}

void ema_swap(Ema *e) {
    for (int i = 0; i < e->n; i++) {
        Tensor *t = e->ps->items[e->index[i]].t;
        float *tmp = t->data;
        t->data = e->shadow[i];
        e->shadow[i] = tmp;
    }
    e->swapped = !e->swapped;
}

void ema_free(Ema *e) {
    if (e->swapped) ema_swap(e);
    for (int i = 0; e->shadow && i < e->n; i++) free(e->shadow[i]);
    free(e->shadow);
    free(e->index);
    memset(e, 0, sizeof *e);
}
