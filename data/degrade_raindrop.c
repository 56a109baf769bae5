/* raindrop: water drops stuck on the glass in front of the lens, like the RainDrop dataset. The camera focuses
 * on the scene, so the drops are out of focus: each drop acts as a small convex lens showing an inverted,
 * wider (minified) and blurred view of the scene around it, with a soft edge, a darker rim where light is
 * refracted away, and a faint highlight. Drops are irregular, slightly taller than wide (gravity), with
 * log-normal sizes. A mild global blur models the glass and the thin water film. Far from the drops the image
 * changes only by that mild blur. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float cx, cy, r, aspect, zoom;
    float a2, p2, a3, p3;   /* boundary wobble: 2nd and 3rd angular harmonics */
} Drop;

/* Draws one drop into the premultiplied drop layer (colour `layer`, coverage `cover`), "over" earlier drops. */
static void render_drop(float *layer, float *cover, int w, int h, int c, const float *scene, const Drop *d,
                        Pcg32 *rng) {
    int nc = c >= 3 ? 3 : 1;
    float rmax = d->r * d->aspect * (1.0f + fabsf(d->a2) + fabsf(d->a3));
    int x0 = (int)fmaxf(0.0f, floorf(d->cx - rmax)), x1 = (int)fminf((float)w - 1, ceilf(d->cx + rmax));
    int y0 = (int)fmaxf(0.0f, floorf(d->cy - rmax)), y1 = (int)fminf((float)h - 1, ceilf(d->cy + rmax));
    float hx = d->cx - 0.35f * d->r, hy = d->cy - 0.4f * d->r * d->aspect, hs = 0.2f * d->r;
    float hl = pcg_range(rng, 0.0f, 0.15f);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float dx = (float)x + 0.5f - d->cx, dy = ((float)y + 0.5f - d->cy) / d->aspect;
            float th = atan2f(dy, dx);
            float rb = d->r * (1.0f + d->a2 * cosf(2.0f * th + d->p2) + d->a3 * cosf(3.0f * th + d->p3));
            float rho = sqrtf(dx * dx + dy * dy) / rb;
            if (rho >= 1.0f) continue;
            /* inverted view, more magnified toward the rim (a spherical cap bends edge rays more) */
            float z = d->zoom * (1.0f + 0.6f * rho * rho);
            float v[4];
            deg_sample_bilinear(scene, w, h, c, d->cx - z * dx, d->cy - z * dy * d->aspect, v);
            float shade = 1.06f - 0.26f * deg_smoothstep(0.6f, 1.0f, rho);
            float ex = (float)x + 0.5f - hx, ey = (float)y + 0.5f - hy;
            float spec = hl * expf(-(ex * ex + ey * ey) / (2.0f * hs * hs));
            float a = 1.0f - deg_smoothstep(0.75f, 1.0f, rho);
            size_t i = (size_t)y * w + x;
            for (int ch = 0; ch < nc; ch++)
                layer[i * c + ch] = layer[i * c + ch] * (1.0f - a) + deg_clamp01(v[ch] * shade + spec) * a;
            cover[i] = cover[i] * (1.0f - a) + a;
        }
}

int degrade_raindrop(Image *im, const DegradeParams *p, Pcg32 *rng) {
    int w = im->w, h = im->h, c = im->c, nc = deg_colour_channels(im);
    size_t n = (size_t)w * h, nf = n * c;
    float s = deg_scale(im), short_side = 256.0f * s;
    float *scene = deg_alloc_floats(nf, "raindrop scene");
    float *layer = deg_alloc_floats(nf, "raindrop layer");
    float *cover = deg_alloc_floats(n, "raindrop coverage");
    int rc = -1;
    if (!scene || !layer || !cover) goto done;
    /* the view through a drop comes from a strongly blurred copy (drops are out of focus) */
    memcpy(scene, im->px, nf * sizeof(float));
    if (deg_blur(scene, w, h, c, pcg_range(rng, 1.5f, 3.0f) * s) ||
        deg_blur(im->px, w, h, c, pcg_range(rng, 0.4f, 0.9f) * s))
        goto done;
    int count = (int)lrintf((float)p->drop_count * (float)n / (short_side * short_side));
    for (int k = 0; k < count; k++) {
        Drop d;
        d.r = p->drop_radius * short_side * expf(0.45f * pcg_normal(rng));
        d.r = fminf(fmaxf(d.r, 2.0f * s), 3.0f * p->drop_radius * short_side);
        d.cx = pcg_range(rng, 0.0f, (float)w);
        d.cy = pcg_range(rng, 0.0f, (float)h);
        d.aspect = pcg_range(rng, 1.0f, 1.35f);
        d.zoom = pcg_range(rng, 1.3f, 2.6f);
        d.a2 = pcg_range(rng, -0.12f, 0.12f);
        d.p2 = pcg_range(rng, 0.0f, 6.2831853f);
        d.a3 = pcg_range(rng, -0.08f, 0.08f);
        d.p3 = pcg_range(rng, 0.0f, 6.2831853f);
        render_drop(layer, cover, w, h, c, scene, &d, rng);
    }
    /* the drops sit on the glass, out of the focal plane: defocus the premultiplied layer and its coverage */
    float defocus = pcg_range(rng, 0.8f, 1.8f) * s;
    if (deg_blur(layer, w, h, c, defocus) || deg_blur(cover, w, h, 1, defocus)) goto done;
    for (size_t i = 0; i < n; i++) {
        float a = cover[i];
        if (a < 1e-5f) continue;   /* away from the drops only the mild glass blur remains */
        for (int ch = 0; ch < nc; ch++)
            im->px[i * c + ch] = deg_clamp01(im->px[i * c + ch] * (1.0f - a) + layer[i * c + ch]);
    }
    rc = 0;
done:
    free(scene);
    free(layer);
    free(cover);
    return rc;
}
