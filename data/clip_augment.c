#include "data/clip_augment.h"

#include <math.h>
#include <stdlib.h>

#include "data/clip_preprocess.h"
#include "data/image_ops.h"
#include "data/resize.h"

/* uniform in [0, 1) from a counter-based stream */
static double next_unit(uint64_t *s) {
    *s = data_hash64(*s + 0x9E3779B97F4A7C15ull);
    return (double)(*s >> 11) * (1.0 / 9007199254740992.0);
}

static void crop_box(int w, int h, double scale_min, uint64_t seed, int *x0, int *y0, int *cw, int *ch) {
    double area = (double)w * h, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    uint64_t s = seed;
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (scale_min + (1.0 - scale_min) * next_unit(&s));
        double ratio = exp(lr0 + (lr1 - lr0) * next_unit(&s));
        int ww = (int)lround(sqrt(target * ratio)), hh = (int)lround(sqrt(target / ratio));
        if (ww > 0 && hh > 0 && ww <= w && hh <= h) {
            *y0 = (int)(next_unit(&s) * (h - hh + 1));
            *x0 = (int)(next_unit(&s) * (w - ww + 1));
            *cw = ww, *ch = hh;
            return;
        }
    }
    /* fallback: the whole image, clamped to the ratio range, centred */
    double in_ratio = (double)w / h;
    int ww = w, hh = h;
    if (in_ratio < 3.0 / 4.0) hh = (int)lround(w / (3.0 / 4.0));
    else if (in_ratio > 4.0 / 3.0) ww = (int)lround(h * (4.0 / 3.0));
    *cw = ww, *ch = hh, *x0 = (w - ww) / 2, *y0 = (h - hh) / 2;
}

int clip_preprocess_train(const Image *im, int size, double scale_min, uint64_t seed, float *out) {
    if (size <= 0 || !im->px || im->w < 1 || im->h < 1 || !(scale_min > 0 && scale_min <= 1)) {
        data_set_error("clip_preprocess_train: invalid input (%dx%dx%d, size %d, scale %g)", im->w, im->h, im->c,
                       size, scale_min);
        return -1;
    }
    Image rgb;
    if (image_to_rgb(im, &rgb)) return -1;
    int x0, y0, cw, ch;
    crop_box(rgb.w, rgb.h, scale_min, seed, &x0, &y0, &cw, &ch);
    uint8_t *u8 = malloc((size_t)cw * ch * 3), *rs = malloc((size_t)size * size * 3);
    if (!u8 || !rs) {
        free(u8), free(rs), image_free(&rgb);
        data_set_error("clip_preprocess_train: out of memory");
        return -1;
    }
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw * 3; x++) {
            float v = rgb.px[((size_t)(y + y0) * rgb.w + x0) * 3 + x];   /* PIL's uint8: round */
            u8[(size_t)y * cw * 3 + x] = (uint8_t)(v <= 0 ? 0 : v >= 1 ? 255 : lrintf(v * 255.0f));
        }
    image_free(&rgb);
    int rc = resize_bicubic_u8(u8, cw, ch, 3, rs, size, size);
    free(u8);
    if (!rc) {
        size_t plane = (size_t)size * size;
        for (size_t p = 0; p < plane; p++)
            for (int k = 0; k < 3; k++) out[k * plane + p] = (rs[p * 3 + k] / 255.f - clip_mean[k]) / clip_std[k];
    }
    free(rs);
    return rc;
}

int clip_view_mirror_coin(uint64_t seed) { return (int)(data_hash64(seed ^ 0xD1B54A32D192ED03ull) >> 63); }

void clip_view_mirror(float *chw, int size) {
    for (int64_t row = 0; row < (int64_t)3 * size; row++) {
        float *r = chw + row * size;
        for (int x = 0; x < size / 2; x++) {
            float t = r[x];
            r[x] = r[size - 1 - x];
            r[size - 1 - x] = t;
        }
    }
}
