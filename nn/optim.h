#ifndef DACLIP_NN_OPTIM_H
#define DACLIP_NN_OPTIM_H
/* Optimizers over a ParamSet, with PyTorch's update rules (torch 1.13 single-tensor code paths):
 *   AdamW  p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *   SGD    d = g + wd p;  buf = momentum buf + (1-dampening) d  (buf = d on the first step);
 *          d = nesterov ? d + momentum buf : buf;  p -= lr d
 * Parameter groups: each parameter is put in a group by a function of its name and tensor; a group has
 * its own weight decay and an lr multiplier. Parameters frozen when the optimizer is created get no
 * state; parameters frozen later are skipped (their state is kept). The step count t is shared by all
 * parameters (torch keeps one per parameter; they differ only if a parameter is skipped for a while). */
#include <stdbool.h>
#include <stdint.h>

#include "nn/module.h"

#define OPT_MAX_GROUPS 4

typedef enum { OPT_ADAMW, OPT_SGD } OptKind;

typedef struct {
    double weight_decay;
    double lr_scale;         /* group lr = optimizer lr * lr_scale */
} OptGroup;

/* Returns the group index (0 <= g < n_groups) of a parameter. */
typedef int (*OptGroupFn)(const char *name, const Tensor *t, void *ctx);

typedef struct {
    OptKind kind;
    double lr;
    double beta1, beta2, eps;                /* AdamW */
    double momentum, dampening;              /* SGD */
    bool nesterov;
    int n_groups;
    OptGroup groups[OPT_MAX_GROUPS];
    OptGroupFn group_of;                     /* NULL: everything in group 0 */
    void *group_ctx;
} OptConfig;

typedef struct {
    int index;               /* into the ParamSet */
    int group;
    float *m;                /* AdamW exp_avg; SGD momentum buffer */
    float *v;                /* AdamW exp_avg_sq; NULL for SGD */
} OptSlot;

typedef struct {
    OptConfig cfg;           /* cfg.lr is the current lr: set it from a schedule before each step */
    ParamSet *ps;
    int n;
    OptSlot *slots;
    int64_t step;            /* steps taken */
} Optim;

/* The weight-decay rule (DA-CLIP / open_clip, extended): decay only tensors with ndim >= 2 whose name
 * contains none of "bn", "ln", "bias", "logit_scale", "class_embedding", "positional_embedding", "norm",
 * "embedding". So Linear/Conv weights decay; norms, biases, embeddings and the logit scale do not. */
bool optim_wants_decay(const char *name, int ndim);
/* OptGroupFn for that rule: group 0 = decay, group 1 = no decay. */
int optim_decay_group(const char *name, const Tensor *t, void *ctx);

/* AdamW with torch defaults (betas 0.9/0.999, eps 1e-8) and two groups by optim_decay_group:
 * {weight_decay, 1}, {0, 1}. Adjust the returned config before optim_new as needed. */
OptConfig optim_adamw_config(double lr, double weight_decay);
/* SGD (dampening 0, nesterov off), the same two groups. */
OptConfig optim_sgd_config(double lr, double momentum, double weight_decay);

Optim *optim_new(ParamSet *ps, const OptConfig *cfg);   /* zeroed state; NULL on a bad config (t_errmsg) */
void optim_free(Optim *o);
/* One update of every trainable parameter that has a gradient; then step++. Does not zero gradients. */
void optim_step(Optim *o);
/* Element count of the slot's parameter. */
int64_t optim_slot_numel(const Optim *o, int slot);

/* torch.nn.utils.clip_grad_norm_ (norm 2): total = ||all grads||, and when total > max_norm every
 * gradient is scaled by max_norm / (total + 1e-6). Frozen parameters are ignored. Returns total. */
double clip_grad_norm(ParamSet *ps, double max_norm);

#endif
