#ifndef DACLIP_DATA_METRICS_H
#define DACLIP_DATA_METRICS_H
/* PSNR and SSIM exactly as the official evaluation (reference §8, uir/utils/img_utils.py):
 * both images -> clamp [0,1], x255, round, uint8; `crop_border` px removed on each side; PSNR over all
 * channels in float64; SSIM with an 11×11 Gaussian window (σ = 1.5), valid region only (5 px), C1 = (0.01·255)²,
 * C2 = (0.03·255)², mean over the map and channels. Y variants: BT.601 luma from the uint8 levels, kept in
 * float (not re-rounded), on the 0..255 scale. Identical images give PSNR = +INFINITY. */
#include <stdint.h>
#include "data/image.h"

#define METRICS_DEFAULT_CROP 4

typedef struct { double psnr, ssim, psnr_y, ssim_y; } Metrics;

/* gt and pred must have the same size and channel count (1 or 3; 4 = alpha ignored). Returns 0, or -1 with
 * data_error set (size mismatch, image smaller than the crop plus the 11-px window). */
int metrics_compute(const Image *gt, const Image *pred, int crop_border, Metrics *out);

/* Lower level: on float64 planes/interleaved data already on the 0..255 scale (w×h×c, interleaved). */
double metric_psnr(const double *a, const double *b, int w, int h, int c);
/* Returns NAN if the image is smaller than 11×11. */
double metric_ssim(const double *a, const double *b, int w, int h, int c);

#endif
