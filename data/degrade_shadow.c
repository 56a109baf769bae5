/* shadowed: cast shadows like SRD. A binary mask is built from random star-shaped polygons (stretched and
 * rotated; often reaching in from a side or the bottom border, as shadows of objects outside the frame do, and
 * kept to the lower part of the image where the ground is) until the target
 * coverage is reached, then blurred for a penumbra. Inside the shadow only the bluish sky light remains:
 * I·(1 − m·(1 − f·tint)), with f the remaining light and tint boosting blue over red. Outside the mask (and
 * its penumbra) pixels are exactly unchanged. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdlib.h>

#define MAX_VERTS 14
#define MAX_SHAPES 10

/* Fills one random polygon into mask (w×h, values 0/1); returns the number of newly covered pixels. */
static size_t add_polygon(float *mask, int w, int h, float area_goal, Pcg32 *rng) {
    int nv = 5 + (int)pcg_below(rng, MAX_VERTS - 5 + 1);
    float stretch = pcg_range(rng, 1.0f, 2.8f), rot = pcg_range(rng, 0.0f, 3.14159265f);
    /* radius so that the polygon's area (≈ 0.75·π·R²·stretch on average) meets the goal */
    float R = sqrtf(area_goal / (0.75f * 3.14159265f * stretch));
    float cx, cy;
    /* shadows fall on the ground, which is mostly in the lower part of a photo (and never in the sky at the
     * top): anchor on the left, right or bottom border, or centre in the lower two thirds */
    if (pcg_uniform(rng) < 0.6f) {
        int side = (int)pcg_below(rng, 3);
        cx = side == 0 ? 0.0f : side == 1 ? (float)w : pcg_uniform(rng) * (float)w;
        cy = side == 2 ? (float)h : pcg_range(rng, 0.35f, 1.0f) * (float)h;
        R *= 1.4f;   /* about half of it is outside the frame */
    } else {
        cx = pcg_range(rng, 0.15f, 0.85f) * (float)w;
        cy = pcg_range(rng, 0.4f, 0.9f) * (float)h;
    }
    /* vertices once around the centre at irregular angular steps: a star-shaped, simple polygon */
    float vx[MAX_VERTS], vy[MAX_VERTS], step[MAX_VERTS], total = 0.0f;
    for (int i = 0; i < nv; i++) total += step[i] = pcg_range(rng, 0.5f, 1.5f);
    float a = pcg_range(rng, 0.0f, 6.2831853f);
    float minx = INFINITY, maxx = -INFINITY, miny = INFINITY, maxy = -INFINITY;
    for (int i = 0; i < nv; i++) {
        a += 6.2831853f * step[i] / total;
        float r = R * pcg_range(rng, 0.55f, 1.25f);
        float px = r * cosf(a) * stretch, py = r * sinf(a);
        vx[i] = cx + px * cosf(rot) - py * sinf(rot);
        vy[i] = cy + px * sinf(rot) + py * cosf(rot);
        minx = fminf(minx, vx[i]); maxx = fmaxf(maxx, vx[i]);
        miny = fminf(miny, vy[i]); maxy = fmaxf(maxy, vy[i]);
    }
    /* keep the top quarter (where the sky usually is) free: push a polygon reaching up there down */
    float top = 0.25f * (float)h;
    if (miny < top) {
        for (int i = 0; i < nv; i++) vy[i] += top - miny;
        maxy += top - miny;
        miny = top;
    }
    int x0 = (int)fmaxf(0.0f, floorf(minx)), x1 = (int)fminf((float)w - 1, ceilf(maxx));
    int y0 = (int)fmaxf(0.0f, floorf(miny)), y1 = (int)fminf((float)h - 1, ceilf(maxy));
    size_t added = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float fx = (float)x + 0.5f, fy = (float)y + 0.5f;
            int inside = 0;   /* even-odd rule */
            for (int i = 0, j = nv - 1; i < nv; j = i++)
                if ((vy[i] > fy) != (vy[j] > fy) && fx < (vx[j] - vx[i]) * (fy - vy[i]) / (vy[j] - vy[i]) + vx[i])
                    inside = !inside;
            float *m = mask + (size_t)y * w + x;
            if (inside && *m == 0.0f) { *m = 1.0f; added++; }
        }
    return added;
}

int degrade_shadowed(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int w = im->w, h = im->h, nc = deg_colour_channels(im);
    size_t n = (size_t)w * h;
    float *mask = deg_alloc_floats(n, "shadow mask");
    if (!mask) return -1;
    size_t goal = (size_t)(p->shadow_coverage * (float)n), covered = 0;
    int shapes = 1 + (int)pcg_below(rng, 3);
    for (int s = 0; s < MAX_SHAPES && covered < goal; s++) {
        float left = (float)(goal - covered);
        float want = s < shapes - 1 ? left / (float)(shapes - s) * pcg_range(rng, 0.6f, 1.4f) : left;
        covered += add_polygon(mask, w, h, fmaxf(want, 0.002f * (float)n), rng);
    }
    float penumbra = pcg_range(rng, 1.0f, 5.0f) * deg_scale(im);
    if (deg_blur(mask, w, h, 1, penumbra)) { free(mask); return -1; }
    float b = pcg_range(rng, 0.05f, 0.2f);
    float tint[3] = {1.0f - b, 1.0f - b / 3.0f, 1.0f + b};
    if (nc == 1) tint[0] = 1.0f;
    for (size_t i = 0; i < n; i++) {
        float m = mask[i];
        if (m < 1e-4f) continue;   /* exactly unchanged outside the penumbra */
        float *px = im->px + i * im->c;
        for (int ch = 0; ch < nc; ch++) px[ch] = deg_clamp01(px[ch] * (1.0f - m * (1.0f - p->shadow_factor * tint[ch])));
    }
    free(mask);
    return 0;
}
