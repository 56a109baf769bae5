#include "data/image_ops.h"
#include <math.h>
#include <string.h>

int image_crop(const Image *src, int x, int y, int w, int h, Image *dst) {
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > src->w || y + h > src->h) {
        memset(dst, 0, sizeof *dst);
        data_set_error("crop %dx%d at (%d,%d) outside a %dx%d image", w, h, x, y, src->w, src->h);
        return -1;
    }
    if (image_alloc(dst, w, h, src->c)) return -1;
    size_t row = (size_t)w * src->c * sizeof(float);
    for (int r = 0; r < h; r++) memcpy(image_at(dst, 0, r), image_at(src, x, y + r), row);
    return 0;
}

void image_hflip(Image *im) {
    int c = im->c;
    for (int y = 0; y < im->h; y++)
        for (int a = 0, b = im->w - 1; a < b; a++, b--) {
            float *pa = image_at(im, a, y), *pb = image_at(im, b, y);
            for (int k = 0; k < c; k++) { float t = pa[k]; pa[k] = pb[k]; pb[k] = t; }
        }
}

void image_vflip(Image *im) {
    size_t row = (size_t)im->w * im->c;
    for (int a = 0, b = im->h - 1; a < b; a++, b--) {
        float *pa = image_at(im, 0, a), *pb = image_at(im, 0, b);
        for (size_t k = 0; k < row; k++) { float t = pa[k]; pa[k] = pb[k]; pb[k] = t; }
    }
}

/* dst(x', y') = src(map) for the 8 axis-aligned symmetries; `swap` exchanges axes, fx/fy mirror the source. */
static int remap(const Image *src, Image *dst, int swap, int fx, int fy) {
    int ow = swap ? src->h : src->w, oh = swap ? src->w : src->h;
    if (image_alloc(dst, ow, oh, src->c)) return -1;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx = swap ? y : x, sy = swap ? x : y;
            if (fx) sx = src->w - 1 - sx;
            if (fy) sy = src->h - 1 - sy;
            memcpy(image_at(dst, x, y), image_at(src, sx, sy), (size_t)src->c * sizeof(float));
        }
    return 0;
}

int image_transpose(const Image *src, Image *dst) { return remap(src, dst, 1, 0, 0); }

int image_rot90(const Image *src, int k, Image *dst) {
    k = ((k % 4) + 4) % 4;
    switch (k) {
    case 0: return image_clone(dst, src);
    case 1: return remap(src, dst, 1, 1, 0);   /* CCW: out(x,y) = in(w-1-y, x) */
    case 2: return remap(src, dst, 0, 1, 1);
    default: return remap(src, dst, 1, 0, 1);  /* CW: out(x,y) = in(y, h-1-x) */
    }
}

static int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

int image_pad_reflect(const Image *src, int top, int bottom, int left, int right, Image *dst) {
    if (top < 0 || bottom < 0 || left < 0 || right < 0 || top >= src->h || bottom >= src->h ||
        left >= src->w || right >= src->w) {
        memset(dst, 0, sizeof *dst);
        data_set_error("reflect pad %d,%d,%d,%d too large for a %dx%d image", top, bottom, left, right,
                       src->w, src->h);
        return -1;
    }
    if (image_alloc(dst, src->w + left + right, src->h + top + bottom, src->c)) return -1;
    for (int y = 0; y < dst->h; y++) {
        int sy = reflect101(y - top, src->h);
        for (int x = 0; x < dst->w; x++)
            memcpy(image_at(dst, x, y), image_at(src, reflect101(x - left, src->w), sy),
                   (size_t)src->c * sizeof(float));
    }
    return 0;
}

int image_rgb_to_y(const Image *src, Image *dst) {
    if (image_alloc(dst, src->w, src->h, 1)) return -1;
    size_t n = (size_t)src->w * src->h;
    for (size_t i = 0; i < n; i++) {
        const float *p = src->px + i * src->c;
        dst->px[i] = src->c < 3 ? p[0]
                     : (float)((65.481 * p[0] + 128.553 * p[1] + 24.966 * p[2]) / 255.0 + 16.0 / 255.0);
    }
    return 0;
}

int image_rgb_to_ycbcr(const Image *src, Image *dst) {
    if (src->c < 3) { memset(dst, 0, sizeof *dst); data_set_error("rgb_to_ycbcr needs 3 channels"); return -1; }
    if (image_alloc(dst, src->w, src->h, 3)) return -1;
    size_t n = (size_t)src->w * src->h;
    for (size_t i = 0; i < n; i++) {
        const float *p = src->px + i * src->c;
        double r = p[0], g = p[1], b = p[2];
        dst->px[3 * i + 0] = (float)((65.481 * r + 128.553 * g + 24.966 * b + 16.0) / 255.0);
        dst->px[3 * i + 1] = (float)((-37.797 * r - 74.203 * g + 112.0 * b + 128.0) / 255.0);
        dst->px[3 * i + 2] = (float)((112.0 * r - 93.786 * g - 18.214 * b + 128.0) / 255.0);
    }
    return 0;
}

int image_ycbcr_to_rgb(const Image *src, Image *dst) {
    if (src->c < 3) { memset(dst, 0, sizeof *dst); data_set_error("ycbcr_to_rgb needs 3 channels"); return -1; }
    if (image_alloc(dst, src->w, src->h, 3)) return -1;
    size_t n = (size_t)src->w * src->h;
    for (size_t i = 0; i < n; i++) {
        const float *p = src->px + i * src->c;
        /* inverse of the matrix above (MATLAB ycbcr2rgb): offsets removed on the 0..255 scale, result in [0,1] */
        double y = p[0] * 255.0 - 16.0, cb = p[1] * 255.0 - 128.0, cr = p[2] * 255.0 - 128.0;
        dst->px[3 * i + 0] = (float)(0.00456621 * y + 0.00625893 * cr);
        dst->px[3 * i + 1] = (float)(0.00456621 * y - 0.00153632 * cb - 0.00318811 * cr);
        dst->px[3 * i + 2] = (float)(0.00456621 * y + 0.00791071 * cb);
    }
    return 0;
}

void image_to_u8(const Image *im, uint8_t *out, int truncate) {
    size_t n = (size_t)im->w * im->h * im->c;
    for (size_t i = 0; i < n; i++) {
        float v = im->px[i];
        v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;   /* NaN stays NaN and becomes 0 below */
        float s = v * 255.f;
        int q = truncate ? (int)s : (int)nearbyintf(s);  /* nearbyint: half to even, as numpy .round() */
        out[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    }
}

int image_from_u8(const uint8_t *px, int w, int h, int c, Image *dst) {
    if (image_alloc(dst, w, h, c)) return -1;
    size_t n = (size_t)w * h * c;
    for (size_t i = 0; i < n; i++) dst->px[i] = px[i] / 255.f;
    return 0;
}

void image_clamp(Image *im) {
    size_t n = (size_t)im->w * im->h * im->c;
    for (size_t i = 0; i < n; i++) im->px[i] = im->px[i] < 0.f ? 0.f : im->px[i] > 1.f ? 1.f : im->px[i];
}

int image_to_rgb(const Image *src, Image *dst) {
    if (src->c == 3) return image_clone(dst, src);
    if (image_alloc(dst, src->w, src->h, 3)) return -1;
    size_t n = (size_t)src->w * src->h;
    for (size_t i = 0; i < n; i++) {
        const float *p = src->px + i * src->c;
        for (int k = 0; k < 3; k++) dst->px[3 * i + k] = src->c >= 3 ? p[k] : p[0];
    }
    return 0;
}

void image_to_chw(const Image *im, float *dst) {
    size_t plane = (size_t)im->w * im->h;
    for (size_t i = 0; i < plane; i++)
        for (int k = 0; k < im->c; k++) dst[k * plane + i] = im->px[i * im->c + k];
}
