/* motion-blurry: camera-shake blur like GoPro. A random camera trajectory (smoothly turning heading, rare jerks,
 * varying speed; in the spirit of Boracchi & Foi 2012) is rasterised into a kernel and convolved with
 * reflect-101 borders. The kernel is centred on its centroid so the image does not shift, and it
 * sums to 1 so the mean brightness is kept. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TRAJ_STEPS 96

/* Camera positions at equal time steps. The heading turns with a smoothly varying angular velocity (hand
 * tremor curves the path), rare jerks add a corner, and the speed varies so the camera dwells longer on some
 * parts of the path (brighter kernel segments, as in real shake kernels). shake = 0 gives a straight line. */
static void random_trajectory(float *xs, float *ys, float shake, Pcg32 *rng) {
    float heading = pcg_range(rng, 0.0f, 6.2831853f), omega = 0.05f * shake * pcg_normal(rng);
    float log_speed = 0.0f, x = 0.0f, y = 0.0f;
    for (int t = 0; t < TRAJ_STEPS; t++) {
        xs[t] = x;
        ys[t] = y;
        omega = 0.92f * omega + 0.035f * shake * pcg_normal(rng);
        heading += omega;
        if (pcg_uniform(rng) < 0.02f * shake) heading += pcg_range(rng, -1.6f, 1.6f) * shake;
        log_speed = 0.9f * log_speed + 0.25f * shake * pcg_normal(rng);
        float speed = expf(log_speed);
        x += speed * cosf(heading);
        y += speed * sinf(heading);
    }
}

int degrade_motion_blurry(Image *im, const DegradeParams *p, Pcg32 *rng) {
    float xs[TRAJ_STEPS], ys[TRAJ_STEPS];
    random_trajectory(xs, ys, p->blur_shake, rng);
    float minx = xs[0], maxx = xs[0], miny = ys[0], maxy = ys[0], cx = 0.0f, cy = 0.0f;
    for (int t = 0; t < TRAJ_STEPS; t++) {
        minx = fminf(minx, xs[t]); maxx = fmaxf(maxx, xs[t]);
        miny = fminf(miny, ys[t]); maxy = fmaxf(maxy, ys[t]);
        cx += xs[t];
        cy += ys[t];
    }
    cx /= TRAJ_STEPS;
    cy /= TRAJ_STEPS;
    /* scale so the path spans (size − 1) px along its longer side */
    float span = fmaxf(maxx - minx, maxy - miny);
    float len = ((float)p->blur_size * deg_scale(im)) - 1.0f;
    if (len < 1.0f) len = 1.0f;
    float k = span > 1e-6f ? len / span : 0.0f;
    int half = (int)ceilf(len) + 2, kw = 2 * half + 1;
    float *kern = deg_alloc_floats((size_t)kw * kw, "motion kernel");
    if (!kern) return -1;
    /* each time step carries the same exposure: split it over sub-steps <= 0.5 px apart so the line has no gaps */
    for (int t = 0; t + 1 < TRAJ_STEPS; t++) {
        float ex = k * (xs[t + 1] - xs[t]), ey = k * (ys[t + 1] - ys[t]);
        int nsub = 1 + (int)(2.0f * sqrtf(ex * ex + ey * ey));
        for (int s = 0; s < nsub; s++) {
            float u = (float)s / (float)nsub;
            deg_splat(kern, kw, kw, (float)half + k * (xs[t] - cx) + u * ex, (float)half + k * (ys[t] - cy) + u * ey,
                      1.0f / (float)nsub);
        }
    }
    /* taps: drop negligible weights, renormalise to sum 1 */
    size_t nt = 0;
    float kmax = 0.0f, ksum = 0.0f;
    for (int i = 0; i < kw * kw; i++) kmax = fmaxf(kmax, kern[i]);
    for (int i = 0; i < kw * kw; i++) if (kern[i] > 1e-3f * kmax) { nt++; ksum += kern[i]; }
    int *dx = malloc(nt * sizeof(int)), *dy = malloc(nt * sizeof(int));
    float *wt = malloc(nt * sizeof(float));
    float *blurred = deg_alloc_floats((size_t)im->w * im->h * im->c, "motion-blurred image");
    if (!dx || !dy || !wt || !blurred) {
        free(dx); free(dy); free(wt); free(blurred); free(kern);
        data_set_error("degrade: motion-blurry: out of memory");
        return -1;
    }
    size_t j = 0;
    for (int i = 0; i < kw * kw; i++)
        if (kern[i] > 1e-3f * kmax) {
            dx[j] = i % kw - half;
            dy[j] = i / kw - half;
            wt[j] = kern[i] / ksum;
            j++;
        }
    deg_convolve_taps(im->px, blurred, im->w, im->h, im->c, dx, dy, wt, nt);
    int nc = deg_colour_channels(im);
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++)
        memcpy(im->px + i * im->c, blurred + i * im->c, (size_t)nc * sizeof(float));
    free(dx); free(dy); free(wt); free(blurred); free(kern);
    return 0;
}
