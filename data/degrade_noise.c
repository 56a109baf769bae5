/* noisy: additive white Gaussian noise exactly as the official LQ synthesis (reference §3.4):
 * y = clip(x + N(0,1)·σ, 0, 1) per pixel and channel, no rounding. */
#include "data/degrade_internal.h"

int degrade_noisy(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int nc = deg_colour_channels(im);
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++) {
        float *px = im->px + i * im->c;
        for (int ch = 0; ch < nc; ch++) px[ch] = deg_clamp01(px[ch] + p->noise_sigma * pcg_normal(rng));
    }
    return 0;
}
