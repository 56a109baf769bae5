#ifndef DACLIP_NN_SCHEDULE_H
#define DACLIP_NN_SCHEDULE_H
/* Learning-rate schedules as pure functions of the step, so a checkpoint only needs the step.
 *   warmup + cosine (DA-CLIP/open_clip `cosine_lr`):
 *       step < warmup:  lr * (step + 1) / warmup
 *       otherwise:      0.5 * (1 + cos(pi * e / es)) * lr,  e = step - warmup, es = total - warmup
 *   cosine annealing (torch CosineAnnealingLR, closed form):
 *       eta_min + (lr - eta_min) * (1 + cos(pi * step / t_max)) / 2
 * Steps start at 0 (the lr of the first optimizer step). */
#include <stdint.h>

typedef enum { LR_CONSTANT, LR_WARMUP_COSINE, LR_COSINE_ANNEAL } LrKind;

typedef struct {
    LrKind kind;
    double base_lr;
    int64_t warmup;          /* LR_WARMUP_COSINE */
    int64_t total;           /* LR_WARMUP_COSINE: total steps; LR_COSINE_ANNEAL: t_max */
    double eta_min;          /* LR_COSINE_ANNEAL floor */
} LrSchedule;

double lr_warmup_cosine(double base_lr, int64_t warmup, int64_t total, int64_t step);
double lr_cosine_anneal(double base_lr, double eta_min, int64_t t_max, int64_t step);
double lr_at(const LrSchedule *s, int64_t step);

#endif
