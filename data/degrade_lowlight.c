/* low-light: an under-exposed shot like LOL's low images. In linear light (sRGB gamma 2.2 approximation) the
 * exposure is cut, an extra gamma darkens the shadows further, a slight per-channel gain gives the colour cast
 * of auto white balance failing in the dark, then sensor noise is added: Poisson-like shot noise (variance
 * proportional to the signal) plus Gaussian read noise, independent per channel (chroma noise). The result is
 * quantised to 8-bit levels, which gives the posterised shadows of real dark JPEG/PNG captures. */
#include "data/degrade_internal.h"
#include <math.h>

int degrade_low_light(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int nc = deg_colour_channels(im);
    size_t n = (size_t)im->w * im->h;
    float gain[3];
    for (int ch = 0; ch < 3; ch++) gain[ch] = nc == 3 ? pcg_range(rng, 0.88f, 1.12f) : 1.0f;
    float read = p->lowlight_noise;
    float shot = 0.15f * read;   /* shot variance per unit signal: noise grows with brightness but stays modest */
    for (size_t i = 0; i < n; i++) {
        float *px = im->px + i * im->c;
        for (int ch = 0; ch < nc; ch++) {
            float lin = powf(deg_clamp01(px[ch]), 2.2f);
            lin = gain[ch] * p->lowlight_exposure * powf(lin, p->lowlight_gamma);
            float v = powf(deg_clamp01(lin), 1.0f / 2.2f);
            float sd = sqrtf(read * read + shot * v);
            v = deg_clamp01(v + sd * pcg_normal(rng));
            px[ch] = floorf(v * 255.0f + 0.5f) * (1.0f / 255.0f);
        }
    }
    return 0;
}
