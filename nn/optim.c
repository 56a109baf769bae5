/* AdamW, SGD and gradient clipping; see optim.h for the update rules. Scalars are computed in double
 * and applied in float, as PyTorch does with Python-float hyperparameters on float32 tensors. */
#include "nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool optim_wants_decay(const char *name, int ndim) {
    static const char *const no_decay[] = {"bn", "ln", "bias", "logit_scale", "class_embedding",
                                           "positional_embedding", "norm", "embedding"};
    if (ndim < 2) return false;
    for (size_t i = 0; i < sizeof no_decay / sizeof no_decay[0]; i++)
        if (strstr(name, no_decay[i])) return false;
    return true;
}

int optim_decay_group(const char *name, const Tensor *t, void *ctx) {
    (void)ctx;
    return optim_wants_decay(name, t->ndim) ? 0 : 1;
}

static OptConfig two_groups(OptKind kind, double lr, double weight_decay) {
    OptConfig c = {.kind = kind, .lr = lr, .n_groups = 2, .group_of = optim_decay_group};
    c.groups[0] = (OptGroup){weight_decay, 1.0};
    c.groups[1] = (OptGroup){0.0, 1.0};
    return c;
}

OptConfig optim_adamw_config(double lr, double weight_decay) {
    OptConfig c = two_groups(OPT_ADAMW, lr, weight_decay);
    c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8;
    return c;
}

OptConfig optim_sgd_config(double lr, double momentum, double weight_decay) {
    OptConfig c = two_groups(OPT_SGD, lr, weight_decay);
    c.momentum = momentum;
    return c;
}

Optim *optim_new(ParamSet *ps, const OptConfig *cfg) {
    if (cfg->n_groups < 1 || cfg->n_groups > OPT_MAX_GROUPS) {
        t_set_errmsg("optim_new: n_groups must be 1..%d", OPT_MAX_GROUPS);
        return NULL;
    }
    Optim *o = calloc(1, sizeof *o);
    if (!o || !(o->slots = calloc((size_t)(ps->n ? ps->n : 1), sizeof(OptSlot)))) {
        free(o);
        t_set_errmsg("optim_new: out of memory");
        return NULL;
    }
    o->cfg = *cfg;
    o->ps = ps;
    for (int i = 0; i < ps->n; i++) {
        const Param *p = &ps->items[i];
        if (p->frozen) continue;
        int g = cfg->group_of ? cfg->group_of(p->name, p->t, cfg->group_ctx) : 0;
        if (g < 0 || g >= cfg->n_groups) {
            t_set_errmsg("optim_new: group %d of '%s' is out of range", g, p->name);
            optim_free(o);
            return NULL;
        }
        OptSlot *s = &o->slots[o->n++];
        size_t bytes = sizeof(float) * (size_t)(t_numel(p->t) ? t_numel(p->t) : 1);
        s->index = i, s->group = g;
        s->m = calloc(1, bytes);
        s->v = cfg->kind == OPT_ADAMW ? calloc(1, bytes) : NULL;
        if (!s->m || (cfg->kind == OPT_ADAMW && !s->v)) {
            t_set_errmsg("optim_new: out of memory");
            optim_free(o);
            return NULL;
        }
    }
    return o;
}

void optim_free(Optim *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) free(o->slots[i].m), free(o->slots[i].v);
    free(o->slots);
    free(o);
}

int64_t optim_slot_numel(const Optim *o, int slot) { return t_numel(o->ps->items[o->slots[slot].index].t); }

static void adamw_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                         int64_t n, const OptConfig *c, double lr, double wd, int64_t t) {
    const float decay = (float)(1.0 - lr * wd);
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const float one_b1 = (float)(1.0 - c->beta1), one_b2 = (float)(1.0 - c->beta2);
    const double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)c->eps;
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        if (wd != 0.0) p[i] *= decay;
        m[i] = m[i] * b1 + g[i] * one_b1;
        v[i] = v[i] * b2 + one_b2 * g[i] * g[i]; /* torch addcmul: (value * g) * g */
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}

static void sgd_update(float *restrict p, const float *restrict g, float *restrict buf, int64_t n,
                       const OptConfig *c, double lr, double wd, bool first) {
    const float mom = (float)c->momentum, damp = (float)(1.0 - c->dampening), w = (float)wd, flr = (float)lr;
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d = wd != 0.0 ? g[i] + w * p[i] : g[i];
        if (mom != 0.0f) {
            buf[i] = first ? d : buf[i] * mom + d * damp;
            d = c->nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] -= flr * d;
    }
}

void optim_step(Optim *o) {
    o->step++;
    for (int s = 0; s < o->n; s++) {
        const OptSlot *sl = &o->slots[s];
        const Param *p = &o->ps->items[sl->index];
        if (p->frozen || !p->t->grad) continue;
        if (p->t->grad_stale) t_grad_buf(p->t);   /* zeroed lazily and no backward since: clear it now */
        const OptGroup *g = &o->cfg.groups[sl->group];
        double lr = o->cfg.lr * g->lr_scale;
        int64_t n = t_numel(p->t);
        if (o->cfg.kind == OPT_ADAMW)
            adamw_update(p->t->data, p->t->grad, sl->m, sl->v, n, &o->cfg, lr, g->weight_decay, o->step);
        else
            sgd_update(p->t->data, p->t->grad, sl->m, n, &o->cfg, lr, g->weight_decay, o->step == 1);
    }
}

double clip_grad_norm(ParamSet *ps, double max_norm) {
    double total = 0;
    for (int i = 0; i < ps->n; i++) {
        const Param *p = &ps->items[i];
        if (p->frozen || !p->t->grad) continue;
        if (p->t->grad_stale) t_grad_buf(p->t);
        int64_t n = t_numel(p->t);
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += (double)p->t->grad[k] * p->t->grad[k];
        total += s;
    }
    total = sqrt(total);
    /* torch: clip_coef = max_norm / (total + 1e-6), clamped to at most 1 */
    float coef = (float)(max_norm / (total + 1e-6));
    if (coef < 1.0f)
        for (int i = 0; i < ps->n; i++) {
            Param *p = &ps->items[i];
            if (p->frozen || !p->t->grad) continue;
            int64_t n = t_numel(p->t);
            for (int64_t k = 0; k < n; k++) p->t->grad[k] *= coef;
        }
    return total;
}
