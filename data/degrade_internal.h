#ifndef DACLIP_DATA_DEGRADE_INTERNAL_H
#define DACLIP_DATA_DEGRADE_INTERNAL_H
/* Helpers shared by the data/degrade_*.c files; not part of the public API (see data/degrade.h). */
#include <stddef.h>
#include "data/degrade.h"
#include "data/image.h"
#include "data/rng_pcg.h"

/* One degradation: modifies `im` (a copy of the clean image) in place. Parameters are already range-checked.
 * Returns 0, or -1 with data_error set. */
typedef int (*DegradeFn)(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_motion_blurry(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_hazy(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_jpeg(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_low_light(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_noisy(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_raindrop(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_rainy(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_shadowed(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_snowy(Image *im, const DegradeParams *p, Pcg32 *rng);
int degrade_uncompleted(Image *im, const DegradeParams *p, Pcg32 *rng);

/* Folder of the official inpainting masks ("" = none), set by degrade_set_mask_dir. */
const char *degrade_mask_dir(void);

/* Number of colour channels to process: 1 (grey) or 3 (RGB); a 4th channel (alpha) is left alone. */
static inline int deg_colour_channels(const Image *im) { return im->c >= 3 ? 3 : 1; }
/* Pixel lengths in DegradeParams are given for a 256-px short side; this is the factor for `im`. */
static inline float deg_scale(const Image *im) { return (float)(im->w < im->h ? im->w : im->h) / 256.0f; }
static inline float deg_clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }
static inline float deg_smoothstep(float e0, float e1, float x) {
    float t = deg_clamp01((x - e0) / (e1 - e0));
    return t * t * (3.0f - 2.0f * t);
}
/* Reflect-101 border index (…c b | a b c … | … b a …), valid for any i and n >= 1. */
static inline int deg_reflect(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}
/* Luminance (Rec. 601 weights) of pixel px with c >= 1 channels. */
static inline float deg_luma(const float *px, int c) {
    return c >= 3 ? 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2] : px[0];
}

/* Gaussian blur of `c` interleaved channels (w×h), reflect-101 borders, in place. Large sigmas use three box
 * passes (same variance). sigma <= 0 is a no-op. Returns 0 or -1 (out of memory, data_error set). */
int deg_blur(float *buf, int w, int h, int c, float sigma);
/* Sparse 2-D convolution with reflect-101 borders: out = sum_k wt[k]·in(x+dx[k], y+dy[k]) over n taps.
 * `in` and `out` are distinct w×h×c buffers. */
void deg_convolve_taps(const float *in, float *out, int w, int h, int c, const int *dx, const int *dy,
                       const float *wt, size_t n);
/* Smooth random field in about [0,1] (mean 0.5): value noise on a lattice of `cell` px, plus `octaves`−1
 * finer octaves at half the cell and amplitude each. out has w×h floats. */
void deg_value_noise(float *out, int w, int h, float cell, int octaves, Pcg32 *rng);
/* Bilinear sample of a w×h×c buffer at (x, y) in pixel centres, coordinates clamped to the image. */
void deg_sample_bilinear(const float *buf, int w, int h, int c, float x, float y, float *out);
/* Adds v at (x, y) to a single-channel plane with bilinear weights (points outside are dropped). */
void deg_splat(float *plane, int w, int h, float x, float y, float v);
/* Allocates n floats (zeroed) or sets data_error naming `what`. */
float *deg_alloc_floats(size_t n, const char *what);

#endif
