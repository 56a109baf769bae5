/* snowy: falling snow like Snow100K. Three layers of flakes (many small far ones, fewer large near ones); near
 * flakes are bigger, softer (out of focus) and more opaque. Every flake is a soft disk swept along a short
 * motion path (the fall during the exposure, tilted by a common wind), i.e. a soft capsule. Layers combine as
 * alpha, a = 1 − Π(1 − a_l), and the snow is composited over the image after a faint veil. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Soft capsule from (ax,ay) to (bx,by), radius r, peak opacity op; combined into alpha with max(). */
static void draw_flake(float *alpha, int w, int h, float ax, float ay, float bx, float by, float r, float op,
                       float softness) {
    int x0 = (int)fmaxf(0.0f, floorf(fminf(ax, bx) - r)), x1 = (int)fminf((float)w - 1, ceilf(fmaxf(ax, bx) + r));
    int y0 = (int)fmaxf(0.0f, floorf(fminf(ay, by) - r)), y1 = (int)fminf((float)h - 1, ceilf(fmaxf(ay, by) + r));
    float ex = bx - ax, ey = by - ay, len2 = ex * ex + ey * ey;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float px = (float)x + 0.5f - ax, py = (float)y + 0.5f - ay;
            float t = len2 > 0.0f ? deg_clamp01((px * ex + py * ey) / len2) : 0.0f;
            float dx = px - t * ex, dy = py - t * ey;
            float d = sqrtf(dx * dx + dy * dy);
            float a = op * (1.0f - deg_smoothstep(r * (1.0f - softness), r, d));
            float *dst = alpha + (size_t)y * w + x;
            if (a > *dst) *dst = a;
        }
}

int degrade_snowy(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int w = im->w, h = im->h, nc = deg_colour_channels(im);
    size_t n = (size_t)w * h;
    float s = deg_scale(im);
    float *alpha = deg_alloc_floats(n, "snow alpha");
    float *layer = deg_alloc_floats(n, "snow layer");
    if (!alpha || !layer) { free(alpha); free(layer); return -1; }
    static const float RADIUS[3] = {0.22f, 0.45f, 1.0f};   /* of snow_size */
    static const float SHARE[3] = {0.7f, 0.22f, 0.08f};   /* of the flakes */
    static const float OPACITY[3] = {0.55f, 0.75f, 0.85f};
    static const float SOFT[3] = {0.6f, 0.7f, 0.9f};
    static const float FALL[3] = {0.8f, 1.0f, 1.3f};        /* motion length in flake radii */
    float wind = pcg_range(rng, -0.5f, 0.5f);              /* radians from vertical */
    float total = p->snow_density * 1e-3f * (float)n / (s * s);
    for (int l = 0; l < 3; l++) {
        memset(layer, 0, n * sizeof(float));
        int count = (int)(total * SHARE[l]);
        float fall = FALL[l] * pcg_range(rng, 0.6f, 1.4f);
        for (int k = 0; k < count; k++) {
            float r = fmaxf(0.6f, p->snow_size * RADIUS[l] * s * pcg_range(rng, 0.6f, 1.3f));
            float a = wind + pcg_normal(rng) * 0.15f;
            float L = fall * r * pcg_range(rng, 0.5f, 1.5f);
            float x = pcg_range(rng, -r, (float)w + r), y = pcg_range(rng, -r - L, (float)h + r);
            float op = OPACITY[l] * pcg_range(rng, 0.6f, 1.0f);
            draw_flake(layer, w, h, x, y, x + L * sinf(a), y + L * cosf(a), r, op, SOFT[l]);
        }
        if (l == 2 && deg_blur(layer, w, h, 1, 0.8f * s)) { free(alpha); free(layer); return -1; }   /* defocus */
        for (size_t i = 0; i < n; i++) alpha[i] = 1.0f - (1.0f - alpha[i]) * (1.0f - layer[i]);
    }
    float veil = pcg_range(rng, 0.03f, 0.1f);
    float snow[3] = {0.94f, 0.96f, 1.0f};
    if (nc == 1) snow[0] = 0.96f;
    for (size_t i = 0; i < n; i++) {
        float *px = im->px + i * im->c, a = alpha[i];
        for (int ch = 0; ch < nc; ch++) {
            float v = px[ch] * (1.0f - veil) + 0.9f * veil;
            px[ch] = deg_clamp01(v * (1.0f - a) + snow[ch] * a);
        }
    }
    free(alpha);
    free(layer);
    return 0;
}
