#ifndef DACLIP_NN_EMA_H
#define DACLIP_NN_EMA_H
/* Exponential moving average of the trainable parameters, with ema_pytorch's update rule (the EMA used
 * by IR-SDE training: beta 0.995, update_every 10):
 *   each ema_update() call c (0, 1, 2, ...): if c % update_every != 0 nothing happens;
 *   if c <= update_after_step the shadow is a copy of the parameters; otherwise
 *   shadow += (1 - decay) * (param - shadow), decay = ema_current_decay().
 *   decay = beta, or with warmup 1 - (1 + epoch/inv_gamma)^-power clamped to [min_value, beta],
 *   epoch = (c + 1) - update_after_step - 1; decay = 0 while epoch <= 0.
 * The shadow buffers are owned here. ema_swap() exchanges shadow and parameter storage (pointer swap, no
 * copy) so evaluation runs on the averaged weights; call it again to swap back. */
#include <stdbool.h>
#include <stdint.h>

#include "nn/module.h"

typedef struct {
    double beta;
    int update_every;             /* >= 1 */
    int64_t update_after_step;    /* ema_pytorch default 100 */
    bool warmup;                  /* ema_pytorch default on: inv_gamma 1, power 2/3 */
    double inv_gamma, power, min_value;
} EmaConfig;

typedef struct {
    EmaConfig cfg;
    ParamSet *ps;
    int n;
    int *index;                   /* ParamSet index of each shadow */
    float **shadow;
    int64_t step;                 /* ema_update calls so far */
    bool swapped;
} Ema;

/* ema_pytorch defaults with the given beta and update_every. */
EmaConfig ema_default_config(double beta, int update_every);
int ema_init(Ema *e, ParamSet *ps, const EmaConfig *cfg);   /* copies the current parameters; -1 on error */
void ema_update(Ema *e);                                    /* once per optimizer step */
double ema_current_decay(const Ema *e);
void ema_swap(Ema *e);
void ema_free(Ema *e);                                      /* swaps back first if needed */

#endif
