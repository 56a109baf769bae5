#include "data/metrics.h"
#include "data/image_ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

double metric_psnr(const double *a, const double *b, int w, int h, int c) {
    size_t n = (size_t)w * h * c;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) { double d = a[i] - b[i]; s += d * d; }
    double mse = s / (double)n;
    return mse == 0.0 ? INFINITY : 20.0 * log10(255.0 / sqrt(mse));
}

/* cv2.getGaussianKernel(11, 1.5) */
static void gauss11(double k[11]) {
    double s = 0.0;
    for (int i = 0; i < 11; i++) { k[i] = exp(-(i - 5.0) * (i - 5.0) / (2.0 * 1.5 * 1.5)); s += k[i]; }
    for (int i = 0; i < 11; i++) k[i] /= s;
}

/* Valid-region 11×11 Gaussian filter of channel ch of an interleaved plane, separably (x then y).
 * tmp holds (w-10)*h doubles, out (w-10)*(h-10). `mode` picks the filtered quantity: a, b, a², b², a·b. */
static void filter_valid(const double *a, const double *b, int mode, int w, int h, int c, int ch,
                         const double k[11], double *tmp, double *out) {
    int vw = w - 10, vh = h - 10;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < vw; x++) {
            double s = 0.0;
            for (int i = 0; i < 11; i++) {
                size_t j = ((size_t)y * w + x + i) * c + ch;
                double v = mode == 0 ? a[j] : mode == 1 ? b[j] : mode == 2 ? a[j] * a[j]
                         : mode == 3 ? b[j] * b[j] : a[j] * b[j];
                s += k[i] * v;
            }
            tmp[(size_t)y * vw + x] = s;
        }
    for (int y = 0; y < vh; y++)
        for (int x = 0; x < vw; x++) {
            double s = 0.0;
            for (int i = 0; i < 11; i++) s += k[i] * tmp[(size_t)(y + i) * vw + x];
            out[(size_t)y * vw + x] = s;
        }
}

double metric_ssim(const double *a, const double *b, int w, int h, int c) {
    if (w < 11 || h < 11) return NAN;
    const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
    int vw = w - 10, vh = h - 10;
    size_t nv = (size_t)vw * vh;
    double k[11];
    gauss11(k);
    double *tmp = malloc(sizeof(double) * (size_t)vw * h), *m = malloc(sizeof(double) * nv * 5);
    if (!tmp || !m) { free(tmp); free(m); return NAN; }
    double total = 0.0;
    for (int ch = 0; ch < c; ch++) {
        for (int q = 0; q < 5; q++) filter_valid(a, b, q, w, h, c, ch, k, tmp, m + q * nv);
        for (size_t i = 0; i < nv; i++) {
            double mu1 = m[i], mu2 = m[nv + i];
            double s11 = m[2 * nv + i] - mu1 * mu1, s22 = m[3 * nv + i] - mu2 * mu2, s12 = m[4 * nv + i] - mu1 * mu2;
            total += ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 * mu1 + mu2 * mu2 + C1) * (s11 + s22 + C2));
        }
    }
    free(tmp);
    free(m);
    return total / ((double)nv * c);
}

/* uint8 levels of the cropped image as doubles (c_out channels; alpha dropped), plus its BT.601 Y. */
static int levels(const Image *im, int crop, double **rgb, double **y, int *c_out) {
    int c = im->c >= 3 ? 3 : 1, w = im->w - 2 * crop, h = im->h - 2 * crop;
    uint8_t *u8 = malloc((size_t)im->w * im->h * im->c);
    *rgb = malloc(sizeof(double) * (size_t)w * h * c);
    *y = malloc(sizeof(double) * (size_t)w * h);
    if (!u8 || !*rgb || !*y) { free(u8); free(*rgb); free(*y); *rgb = *y = NULL; return -1; }
    image_to_u8(im, u8, 0);
    for (int r = 0; r < h; r++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = u8 + ((size_t)(r + crop) * im->w + x + crop) * im->c;
            double *o = *rgb + ((size_t)r * w + x) * c;
            for (int k = 0; k < c; k++) o[k] = p[k];
            (*y)[(size_t)r * w + x] = c == 3 ? (65.481 * p[0] + 128.553 * p[1] + 24.966 * p[2]) / 255.0 + 16.0 : p[0];
        }
    free(u8);
    *c_out = c;
    return 0;
}

int metrics_compute(const Image *gt, const Image *pred, int crop_border, Metrics *out) {
    memset(out, 0, sizeof *out);
    if (gt->w != pred->w || gt->h != pred->h || (gt->c >= 3) != (pred->c >= 3)) {
        data_set_error("metrics: size mismatch (%dx%dx%d vs %dx%dx%d)", gt->w, gt->h, gt->c, pred->w, pred->h, pred->c);
        return -1;
    }
    int w = gt->w - 2 * crop_border, h = gt->h - 2 * crop_border;
    if (crop_border < 0 || w < 11 || h < 11) {
        data_set_error("metrics: a %dx%d image is too small for crop border %d and the 11x11 SSIM window",
                       gt->w, gt->h, crop_border);
        return -1;
    }
    double *ga, *gy, *pa, *py;
    int c, c2;
    if (levels(gt, crop_border, &ga, &gy, &c)) { data_set_error("metrics: out of memory"); return -1; }
    if (levels(pred, crop_border, &pa, &py, &c2)) { free(ga); free(gy); data_set_error("metrics: out of memory"); return -1; }
    out->psnr = metric_psnr(ga, pa, w, h, c);
    out->ssim = metric_ssim(ga, pa, w, h, c);
    out->psnr_y = metric_psnr(gy, py, w, h, 1);
    out->ssim_y = metric_ssim(gy, py, w, h, 1);
    free(ga); free(gy); free(pa); free(py);
    return 0;
}
