#include "nn/schedule.h"

#include <math.h>

double lr_warmup_cosine(double base_lr, int64_t warmup, int64_t total, int64_t step) {
    if (step < warmup) return base_lr * (double)(step + 1) / (double)warmup;
    int64_t e = step - warmup, es = total - warmup;
    if (es <= 0) return base_lr; /* no cosine phase: stay at the peak rather than divide by zero */
    return 0.5 * (1.0 + cos(M_PI * (double)e / (double)es)) * base_lr;
}

double lr_cosine_anneal(double base_lr, double eta_min, int64_t t_max, int64_t step) {
    if (t_max <= 0) return base_lr;
    return eta_min + (base_lr - eta_min) * (1.0 + cos(M_PI * (double)step / (double)t_max)) / 2.0;
}

double lr_at(const LrSchedule *s, int64_t step) {
    switch (s->kind) {
    case LR_WARMUP_COSINE: return lr_warmup_cosine(s->base_lr, s->warmup, s->total, step);
    case LR_COSINE_ANNEAL: return lr_cosine_anneal(s->base_lr, s->eta_min, s->total, step);
    default: return s->base_lr;
    }
}
