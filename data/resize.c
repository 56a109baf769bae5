/* Separable resampling. Each axis gets a table of (first source index, count, weights) per output index,
 * built once; the image is then filtered along x, then along y (the order PIL uses). */
#include "data/resize.h"
#include "data/image_ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ksize;       /* weights per output index (max count) */
    int *first, *count;
    double *w;       /* [out][ksize] */
} AxisTaps;

static void taps_free(AxisTaps *t) { free(t->first); free(t->count); free(t->w); memset(t, 0, sizeof *t); }

static int taps_alloc(AxisTaps *t, int out, int ksize) {
    t->ksize = ksize;
    t->first = calloc((size_t)out, sizeof(int));
    t->count = calloc((size_t)out, sizeof(int));
    t->w = calloc((size_t)out * ksize, sizeof(double));
    if (!t->first || !t->count || !t->w) { taps_free(t); data_set_error("resize: out of memory"); return -1; }
    return 0;
}

/* PIL's bicubic kernel, a = -0.5, support 2. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* PIL precompute_coeffs: support widened by the downscale factor, window rounded, weights normalised. */
static int taps_pil_bicubic(AxisTaps *t, int in, int out) {
    double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fscale;
    if (taps_alloc(t, out, (int)ceil(support) * 2 + 1)) return -1;
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, ss = 1.0 / fscale, sum = 0.0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        if (n > t->ksize) n = t->ksize;
        double *k = t->w + (size_t)o * t->ksize;
        for (int i = 0; i < n; i++) { k[i] = bicubic((i + lo - center + 0.5) * ss); sum += k[i]; }
        if (sum != 0.0)
            for (int i = 0; i < n; i++) k[i] /= sum;
        t->first[o] = lo;
        t->count[o] = n;
    }
    return 0;
}

/* Two-tap linear weights at source index s with fraction f, clamped at the edges as OpenCV does. */
static void set_linear_tap(AxisTaps *t, int o, int s, double f, int in) {
    if (s < 0) { s = 0; f = 0.0; }
    if (s >= in - 1) { s = in - 1; f = 0.0; }
    t->first[o] = s;
    t->count[o] = f > 0.0 ? 2 : 1;
    t->w[(size_t)o * 2] = 1.0 - f;
    t->w[(size_t)o * 2 + 1] = f;
}

/* OpenCV INTER_LINEAR: half-pixel centres, two taps, clamped at the edges. */
static int taps_bilinear(AxisTaps *t, int in, int out) {
    if (taps_alloc(t, out, 2)) return -1;
    double scale = (double)in / out;
    for (int o = 0; o < out; o++) {
        double f = (o + 0.5) * scale - 0.5;
        int s = (int)floor(f);
        set_linear_tap(t, o, s, f - s, in);
    }
    return 0;
}

/* OpenCV INTER_AREA: exact overlap of [o·s, (o+1)·s) with each source pixel when shrinking; when enlarging,
 * OpenCV's variant of linear interpolation (weight of the next pixel = frac((o+1) − (sx+1)/s), 0 if ≤ 0). */
static int taps_area(AxisTaps *t, int in, int out) {
    double scale = (double)in / out;
    if (scale <= 1.0) {
        if (taps_alloc(t, out, 2)) return -1;
        for (int o = 0; o < out; o++) {
            int s = (int)floor(o * scale);
            double f = (o + 1) - (s + 1) / scale;
            set_linear_tap(t, o, s, f <= 0.0 ? 0.0 : f - floor(f), in);
        }
        return 0;
    }
    if (taps_alloc(t, out, (int)ceil(scale) + 2)) return -1;
    for (int o = 0; o < out; o++) {
        double a = o * scale, b = (o + 1) * scale;
        int lo = (int)floor(a), n = 0;
        double *k = t->w + (size_t)o * t->ksize;
        for (int i = lo; i < in && i < b && n < t->ksize; i++) {
            double l = i > a ? i : a, r = i + 1 < b ? i + 1 : b;
            k[n++] = (r - l) / scale;
        }
        t->first[o] = lo;
        t->count[o] = n;
    }
    return 0;
}

/* Float filtering along x (rows) or y (columns) with double accumulation, like PIL's "F" mode. */
static void apply_x(const float *src, int w, int h, int c, float *dst, int ow, const AxisTaps *t) {
    (void)w;
    for (int y = 0; y < h; y++)
        for (int o = 0; o < ow; o++) {
            const double *k = t->w + (size_t)o * t->ksize;
            for (int ch = 0; ch < c; ch++) {
                double s = 0.0;
                const float *p = src + ((size_t)y * w + t->first[o]) * c + ch;
                for (int i = 0; i < t->count[o]; i++) s += p[(size_t)i * c] * k[i];
                dst[((size_t)y * ow + o) * c + ch] = (float)s;
            }
        }
}

static void apply_y(const float *src, int w, int h, int c, float *dst, int oh, const AxisTaps *t) {
    (void)h;
    size_t row = (size_t)w * c;
    for (int o = 0; o < oh; o++) {
        const double *k = t->w + (size_t)o * t->ksize;
        for (size_t j = 0; j < row; j++) {
            double s = 0.0;
            const float *p = src + (size_t)t->first[o] * row + j;
            for (int i = 0; i < t->count[o]; i++) s += p[(size_t)i * row] * k[i];
            dst[(size_t)o * row + j] = (float)s;
        }
    }
}

static int make_taps(AxisTaps *t, int in, int out, ResizeFilter f) {
    switch (f) {
    case RESIZE_BICUBIC: return taps_pil_bicubic(t, in, out);
    case RESIZE_BILINEAR: return taps_bilinear(t, in, out);
    case RESIZE_AREA: return taps_area(t, in, out);
    }
    data_set_error("resize: unknown filter %d", (int)f);
    return -1;
}

int image_resize(const Image *src, Image *dst, int ow, int oh, ResizeFilter filter) {
    memset(dst, 0, sizeof *dst);
    if (ow <= 0 || oh <= 0 || !src->px) { data_set_error("resize: invalid target size %dx%d", ow, oh); return -1; }
    AxisTaps tx = { 0 }, ty = { 0 };
    Image mid = { 0 };
    int rc = -1;
    if (make_taps(&tx, src->w, ow, filter) || make_taps(&ty, src->h, oh, filter)) goto done;
    if (image_alloc(&mid, ow, src->h, src->c) || image_alloc(dst, ow, oh, src->c)) goto done;
    if (ow == src->w) memcpy(mid.px, src->px, (size_t)src->w * src->h * src->c * sizeof(float));
    else apply_x(src->px, src->w, src->h, src->c, mid.px, ow, &tx);
    if (oh == src->h) memcpy(dst->px, mid.px, (size_t)ow * oh * src->c * sizeof(float));
    else apply_y(mid.px, ow, src->h, src->c, dst->px, oh, &ty);
    rc = 0;
done:
    if (rc) image_free(dst);
    image_free(&mid);
    taps_free(&tx);
    taps_free(&ty);
    return rc;
}

/* ---- PIL uint8 path: 22-bit fixed-point weights, rounding to uint8 after each pass ---- */

enum { PIL_PRECISION_BITS = 32 - 8 - 2 };

static int *fixed_weights(const AxisTaps *t, int out) {
    int *kk = malloc(sizeof(int) * (size_t)out * t->ksize);
    if (!kk) { data_set_error("resize: out of memory"); return NULL; }
    for (size_t i = 0; i < (size_t)out * t->ksize; i++) {
        double v = t->w[i] * (1 << PIL_PRECISION_BITS);
        kk[i] = (int)(v < 0 ? v - 0.5 : v + 0.5);
    }
    return kk;
}

static inline uint8_t clip8(int64_t acc) {
    int64_t v = acc >> PIL_PRECISION_BITS;   /* arithmetic shift = floor, as PIL */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

int resize_bicubic_u8(const uint8_t *src, int w, int h, int c, uint8_t *dst, int ow, int oh) {
    if (w <= 0 || h <= 0 || ow <= 0 || oh <= 0 || c <= 0) {
        data_set_error("resize: invalid sizes %dx%d -> %dx%d", w, h, ow, oh);
        return -1;
    }
    AxisTaps tx = { 0 }, ty = { 0 };
    int *kx = NULL, *ky = NULL, rc = -1;
    uint8_t *mid = NULL;
    if (taps_pil_bicubic(&tx, w, ow) || taps_pil_bicubic(&ty, h, oh)) goto done;
    if (!(kx = fixed_weights(&tx, ow)) || !(ky = fixed_weights(&ty, oh))) goto done;
    int need_x = ow != w, need_y = oh != h;
    /* the horizontal pass only produces the rows the vertical pass reads */
    int y0 = need_y ? ty.first[0] : 0, y1 = need_y ? ty.first[oh - 1] + ty.count[oh - 1] : h;
    const uint8_t *vin = src;
    int vin_row0 = 0;
    if (need_x) {
        mid = malloc((size_t)ow * (y1 - y0) * c);
        if (!mid) { data_set_error("resize: out of memory"); goto done; }
        uint8_t *out = need_y ? mid : dst;
        for (int y = y0; y < y1; y++)
            for (int o = 0; o < ow; o++) {
                const int *k = kx + (size_t)o * tx.ksize;
                for (int ch = 0; ch < c; ch++) {
                    int64_t acc = 1 << (PIL_PRECISION_BITS - 1);
                    const uint8_t *p = src + ((size_t)y * w + tx.first[o]) * c + ch;
                    for (int i = 0; i < tx.count[o]; i++) acc += (int64_t)p[(size_t)i * c] * k[i];
                    out[((size_t)(y - y0) * ow + o) * c + ch] = clip8(acc);
                }
            }
        vin = mid;
        vin_row0 = y0;
    }
    if (need_y) {
        size_t row = (size_t)ow * c;
        for (int o = 0; o < oh; o++) {
            const int *k = ky + (size_t)o * ty.ksize;
            for (size_t j = 0; j < row; j++) {
                int64_t acc = 1 << (PIL_PRECISION_BITS - 1);
                const uint8_t *p = vin + (size_t)(ty.first[o] - vin_row0) * row + j;
                for (int i = 0; i < ty.count[o]; i++) acc += (int64_t)p[(size_t)i * row] * k[i];
                dst[(size_t)o * row + j] = clip8(acc);
            }
        }
    } else if (!need_x) {
        memcpy(dst, src, (size_t)w * h * c);
    }
    rc = 0;
done:
    free(mid);
    free(kx);
    free(ky);
    taps_free(&tx);
    taps_free(&ty);
    return rc;
}

int image_resize_bicubic_pil_u8(const Image *src, Image *dst, int ow, int oh, int truncate) {
    memset(dst, 0, sizeof *dst);
    size_t n_in = (size_t)src->w * src->h * src->c, n_out = (size_t)ow * oh * src->c;
    uint8_t *a = malloc(n_in), *b = malloc(n_out > 0 ? n_out : 1);
    int rc = -1;
    if (!a || !b) { data_set_error("resize: out of memory"); goto done; }
    image_to_u8(src, a, truncate);
    if (resize_bicubic_u8(a, src->w, src->h, src->c, b, ow, oh)) goto done;
    rc = image_from_u8(b, ow, oh, src->c, dst);
done:
    free(a);
    free(b);
    return rc;
}
