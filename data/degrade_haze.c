/* hazy: the atmospheric scattering model used to synthesise RESIDE, I = J·t + A·(1 − t), t = exp(−β·d).
 * Without a depth map, d is a smooth proxy in [0.05, 1]: far above a random horizon line and near at the bottom
 * (most photos), modulated by low-frequency noise (uneven scene depth, patchy haze) and by blurred luminance
 * (bright, flat areas such as sky tend to be far). A is a light grey with a slight blue cast. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdlib.h>

int degrade_hazy(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int w = im->w, h = im->h, c = im->c, nc = deg_colour_channels(im);
    size_t n = (size_t)w * h;
    float *depth = deg_alloc_floats(n, "haze depth");
    float *field = deg_alloc_floats(n, "haze noise");
    if (!depth || !field) { free(depth); free(field); return -1; }
    float horizon = pcg_range(rng, 0.3f, 0.65f) * (float)h;
    float w_noise = pcg_range(rng, 0.15f, 0.35f), w_luma = pcg_range(rng, 0.1f, 0.25f);
    deg_value_noise(field, w, h, (float)(w > h ? w : h) / 3.0f, 3, rng);
    for (size_t i = 0; i < n; i++) depth[i] = deg_luma(im->px + i * c, c);
    if (deg_blur(depth, w, h, 1, 3.0f * deg_scale(im))) { free(depth); free(field); return -1; }
    float dmin = INFINITY, dmax = -INFINITY;
    for (int y = 0; y < h; y++) {
        float dv = (float)y <= horizon ? 1.0f : 1.0f - ((float)y - horizon) / ((float)h - horizon);
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            float d = (1.0f - w_noise - w_luma) * dv + w_noise * field[i] + w_luma * depth[i];
            depth[i] = d;
            dmin = fminf(dmin, d);
            dmax = fmaxf(dmax, d);
        }
    }
    /* airlight: grey (g = 1) to slightly bluish (g = 0) */
    float g = pcg_uniform(rng);
    float A[3] = {p->haze_airlight * (0.93f + 0.07f * g), p->haze_airlight * (0.965f + 0.035f * g),
                  p->haze_airlight};
    if (nc == 1) A[0] = p->haze_airlight * (0.97f + 0.03f * g);
    float range = dmax - dmin > 1e-6f ? dmax - dmin : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float d = 0.05f + 0.95f * (depth[i] - dmin) / range;
        float t = expf(-p->haze_beta * d);
        float *px = im->px + i * c;
        for (int ch = 0; ch < nc; ch++) px[ch] = deg_clamp01(px[ch] * t + A[ch] * (1.0f - t));
    }
    free(depth);
    free(field);
    return 0;
}
