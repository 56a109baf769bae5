/* The reverse-time sampler over the U-Net (reference §4.5). */
#include "irsde/sample.h"

#include <stdio.h>
#include <stdlib.h>

/* the U-Net's error arrives through t_error; keep it for t_errmsg() instead of exiting */
static char unet_error[512];
static void keep_error(const char *msg) { snprintf(unet_error, sizeof unet_error, "%s", msg); }

int irsde_sample(const IrSde *s, const ConditionalUNet *u, Tensor *lq, Tensor *degra, Tensor *content,
                 IrSdeSampleMode mode, TRng *rng, float *out) {
    if (!lq || lq->ndim != 4 || !rng || !out) {
        t_set_errmsg("irsde_sample: lq must be [B, C, H, W] and rng and out given");
        return -1;
    }
    lq = t_contiguous(lq);
    if (!lq) return -1;   /* out of memory: the message is in t_errmsg() */
    int64_t B = lq->shape[0], n = t_numel(lq) / (B ? B : 1);
    int *t = malloc(sizeof(int) * (size_t)(B ? B : 1));
    float *time = malloc(sizeof(float) * (size_t)(B ? B : 1));
    if (!t || !time) {
        free(t);
        free(time);
        t_set_errmsg("irsde_sample: out of memory");
        return -1;
    }
    bool grad = t_set_grad_enabled(false);
    TErrorHandler prev = t_set_error_handler(keep_error);
    unet_error[0] = 0;
    int rc = irsde_noise_state(s, out, lq->data, B * n, NULL, rng);
    for (int step = s->steps; step >= 1 && rc == 0; step--) {
        size_t mark = t_arena_mark();
        for (int64_t b = 0; b < B; b++) t[b] = step, time[b] = irsde_time_input(s, step);
        Tensor *x = t_wrap(out, 4, lq->shape);
        Tensor *eps = unet_forward(u, x, lq, time, degra, content);
        if (!eps) {
            t_set_errmsg("irsde_sample: %s", unet_error[0] ? unet_error : "U-Net forward failed");
            rc = -1;
        } else if (mode == IRSDE_SAMPLE_SDE) {
            rc = irsde_sde_step(s, out, out, lq->data, eps->data, t, B, n, NULL, rng);
        } else {
            rc = irsde_posterior_step(s, out, out, lq->data, eps->data, t, B, n, NULL, rng);
        }
        t_arena_release(mark);
    }
    t_set_error_handler(prev);
    t_set_grad_enabled(grad);
    free(t);
    free(time);
    return rc;
}
