#ifndef DACLIP_IRSDE_SAMPLE_H
#define DACLIP_IRSDE_SAMPLE_H
/* The test-time sampler (reference §4.5): x_T = μ + λ·z, then for t = steps..1 one U-Net call and one
 * reverse step; DA-CLIP's embeddings are computed once by the caller. With sample_T < T the schedule has
 * fewer steps and the U-Net sees t·T/sample_T. The output is not clamped (the official tensor2img clamps
 * to [0, 1] when writing the image). */
#include "irsde/sde.h"
#include "irsde/unet.h"

typedef enum {
    IRSDE_SAMPLE_POSTERIOR = 0,   /* reverse_posterior: x̂_0 from ε̂, then the posterior mean + std·z (default) */
    IRSDE_SAMPLE_SDE = 1          /* reverse_sde: the Euler–Maruyama step */
} IrSdeSampleMode;

/* Restores lq [B, in_nc, H, W] into out (B·in_nc·H·W floats, may not alias lq's data). degra/content as
 * for unet_forward. Runs without a tape; every step's activations are released after it, so memory is one
 * forward's. Noise comes from rng: the start state's B·n values, then B·n per step. 0, or -1 with
 * t_errmsg() (also when the U-Net rejects its inputs). */
int irsde_sample(const IrSde *s, const ConditionalUNet *u, Tensor *lq, Tensor *degra, Tensor *content,
                 IrSdeSampleMode mode, TRng *rng, float *out);

#endif
