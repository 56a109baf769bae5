/* uncompleted (inpainting): LQ = mask·img + (1 − mask), so holes are white (reference §3.4). The mask is one of
 * the 100 official free-form masks (000000.png .. 000099.png in degrade_mask_dir(), resized with area averaging
 * like OpenCV INTER_AREA) when that folder exists; otherwise synthetic free-form brush strokes in the same
 * style: random walks of thick round-capped segments, added until the target hole fraction is reached. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "data/image_io.h"
#include "data/resize.h"

#define N_OFFICIAL_MASKS 100

/* Marks pixels within radius r of segment (ax,ay)-(bx,by) as holes (keep = 0); returns newly holed pixels. */
static size_t paint_capsule(float *keep, int w, int h, float ax, float ay, float bx, float by, float r) {
    int x0 = (int)fmaxf(0.0f, floorf(fminf(ax, bx) - r)), x1 = (int)fminf((float)w - 1, ceilf(fmaxf(ax, bx) + r));
    int y0 = (int)fmaxf(0.0f, floorf(fminf(ay, by) - r)), y1 = (int)fminf((float)h - 1, ceilf(fmaxf(ay, by) + r));
    float ex = bx - ax, ey = by - ay, len2 = ex * ex + ey * ey;
    size_t added = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float px = (float)x + 0.5f - ax, py = (float)y + 0.5f - ay;
            float t = len2 > 0.0f ? deg_clamp01((px * ex + py * ey) / len2) : 0.0f;
            float dx = px - t * ex, dy = py - t * ey;
            float *k = keep + (size_t)y * w + x;
            if (dx * dx + dy * dy <= r * r && *k != 0.0f) { *k = 0.0f; added++; }
        }
    return added;
}

/* Free-form brush mask (keep = 1, hole = 0) with about `coverage` of the pixels holed. */
static void synthetic_mask(float *keep, int w, int h, float coverage, float scale, Pcg32 *rng) {
    size_t n = (size_t)w * h, goal = (size_t)(coverage * (float)n), holed = 0;
    for (size_t i = 0; i < n; i++) keep[i] = 1.0f;
    for (int stroke = 0; stroke < 400 && holed < goal; stroke++) {
        float x = pcg_range(rng, 0.0f, (float)w), y = pcg_range(rng, 0.0f, (float)h);
        float radius = pcg_range(rng, 3.0f, 9.0f) * scale;
        float angle = pcg_range(rng, 0.0f, 6.2831853f);
        int segs = 1 + (int)pcg_below(rng, 5);
        for (int s = 0; s < segs && holed < goal; s++) {
            /* mostly straight strokes with occasional sharp turns, like the official masks */
            if (s > 0) angle += pcg_range(rng, -2.0f, 2.0f);
            float len = pcg_range(rng, 10.0f, 45.0f) * scale;
            float nx = x + len * cosf(angle), ny = y + len * sinf(angle);
            holed += paint_capsule(keep, w, h, x, y, nx, ny, radius);
            x = fminf(fmaxf(nx, 0.0f), (float)w - 1);
            y = fminf(fmaxf(ny, 0.0f), (float)h - 1);
        }
    }
}

/* Loads official mask number `index` resized to w×h into keep (1 = keep, 0 = hole, fractions at edges).
 * Returns 1 if loaded, 0 if the mask folder or file is absent, -1 on a read error. */
static int official_mask(float *keep, int w, int h, int index) {
    const char *dir = degrade_mask_dir();
    if (!dir[0]) return 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/%06d.png", dir, index);
    if (access(path, R_OK) != 0) return 0;
    Image m, r;
    if (image_load(path, &m)) return -1;
    int rc = image_resize(&m, &r, w, h, RESIZE_AREA);
    image_free(&m);
    if (rc) return -1;
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) keep[i] = deg_clamp01(r.px[i * r.c]);
    image_free(&r);
    return 1;
}

int degrade_uncompleted(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int w = im->w, h = im->h, nc = deg_colour_channels(im);
    size_t n = (size_t)w * h;
    float *keep = deg_alloc_floats(n, "inpainting mask");
    if (!keep) return -1;
    int index = p->mask_index >= 0 ? p->mask_index : (int)pcg_below(rng, N_OFFICIAL_MASKS);
    int got = official_mask(keep, w, h, index);
    if (got < 0) { free(keep); return -1; }
    if (!got) synthetic_mask(keep, w, h, p->mask_coverage, deg_scale(im), rng);
    for (size_t i = 0; i < n; i++) {
        float *px = im->px + i * im->c;
        for (int ch = 0; ch < nc; ch++) px[ch] = keep[i] * px[ch] + (1.0f - keep[i]);
    }
    free(keep);
    return 0;
}
