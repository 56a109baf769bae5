/* rainy: heavy rain streaks like Rain100H. Several layers (far to near) of straight streaks at a common angle
 * with small per-layer and per-streak jitter; nearer layers have longer, wider (blurrier) and brighter streaks.
 * Each streak is an anti-aliased tapered line rasterised into the layer, which is then blurred. The streaks are
 * screen-blended onto the image, 1 − (1 − I)(1 − R), after a light veil: dense rain scatters light and lowers
 * contrast, which Rain100H shows clearly. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int degrade_rainy(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int w = im->w, h = im->h, nc = deg_colour_channels(im);
    size_t n = (size_t)w * h;
    float s = deg_scale(im);
    float *rain = deg_alloc_floats(n, "rain streaks");
    float *layer = deg_alloc_floats(n, "rain layer");
    if (!rain || !layer) { free(rain); free(layer); return -1; }
    /* streak count per layer: density per pixel of the image seen at a 256-px short side */
    float area256 = (float)n / (s * s);
    int layers = p->rain_layers;
    for (int l = 0; l < layers; l++) {
        float depth = layers > 1 ? (float)l / (float)(layers - 1) : 1.0f;   /* 0 = far, 1 = near */
        memset(layer, 0, n * sizeof(float));
        float angle = (p->rain_angle + pcg_normal(rng) * 3.0f) * 3.14159265f / 180.0f;
        float len_mean = p->rain_length * s * (0.55f + 0.45f * depth);
        float bright = 0.45f + 0.4f * depth;
        int count = (int)(p->rain_density * area256 * (1.3f - 0.6f * depth));
        for (int k = 0; k < count; k++) {
            float a = angle + pcg_normal(rng) * 0.03f;
            float dx = sinf(a), dy = cosf(a);   /* angle from vertical, falling down */
            float len = len_mean * pcg_range(rng, 0.6f, 1.4f);
            float x = pcg_range(rng, -len * fabsf(dx), (float)w + len * fabsf(dx));
            float y = pcg_range(rng, -len, (float)h);
            float v = bright * pcg_range(rng, 0.4f, 0.9f);
            int steps = (int)(2.0f * len) + 1;
            for (int t = 0; t <= steps; t++) {
                float u = (float)t / (float)steps;
                float taper = sinf(3.14159265f * u);   /* streaks fade in and out */
                deg_splat(layer, w, h, x + u * len * dx, y + u * len * dy, 0.5f * v * taper);
            }
        }
        float sigma = (0.3f + 0.4f * depth) * s;
        if (deg_blur(layer, w, h, 1, sigma)) { free(rain); free(layer); return -1; }
        /* blurring a 1-px line lowers its peak by about σ·√(2π); restore it so wide streaks stay visible */
        float gain = fmaxf(1.0f, sigma * 2.2f);
        for (size_t i = 0; i < n; i++) rain[i] += gain * layer[i];
    }
    float veil = pcg_range(rng, 0.04f, 0.12f) * fminf(1.0f, p->rain_density / 0.009f);
    float tone[3] = {0.92f, 0.95f, 1.0f};   /* streaks catch the sky light: very slightly blue-white */
    if (nc == 1) tone[0] = 0.95f;
    for (size_t i = 0; i < n; i++) {
        float *px = im->px + i * im->c, r = deg_clamp01(rain[i]);
        for (int ch = 0; ch < nc; ch++) {
            float v = px[ch] * (1.0f - veil) + 0.85f * veil;
            px[ch] = 1.0f - (1.0f - v) * (1.0f - tone[ch] * r);
        }
    }
    free(rain);
    free(layer);
    return 0;
}
