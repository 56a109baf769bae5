#include "data/clip_preprocess.h"
#include "data/image_ops.h"
#include "data/resize.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const float clip_mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
const float clip_std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };

/* Python's round() on x.5 values goes to the even neighbour; the crop offsets (d/2) are the only halves here. */
static int py_round_half(int d) {
    int q = d / 2;
    if (d % 2 == 0) return q;
    return (q % 2 == 0) ? q : q + 1;   /* d/2 = q + 0.5 -> even of q, q+1 */
}

int clip_preprocess(const Image *im, int size, float *out) {
    if (size <= 0 || !im->px || im->c < 1 || im->c > 4) {
        data_set_error("clip_preprocess: invalid input (%dx%dx%d, size %d)", im->w, im->h, im->c, size);
        return -1;
    }
    /* The shorter side is resized to `size`, so the intermediate image grows with the aspect ratio (a 1x100000
     * image would need a 224x22400000 one, 15 GB) while the output keeps only its centre. Refuse such shapes
     * before allocating anything. */
    int64_t lo = im->w < im->h ? im->w : im->h, hi = im->w < im->h ? im->h : im->w;
    if (hi > CLIP_MAX_ASPECT * lo) {
        data_set_error("clip_preprocess: a %dx%d image has an aspect ratio above %d:1 (the centre crop would keep "
                       "under 1/%d of it)", im->w, im->h, CLIP_MAX_ASPECT, CLIP_MAX_ASPECT);
        return -1;
    }
    Image rgb;
    if (image_to_rgb(im, &rgb)) return -1;
    int w = rgb.w, h = rgb.h;
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    int nl = (int)((double)size * longer / shorter);   /* torchvision: int(size * long / short) */
    int nw = w <= h ? size : nl, nh = w <= h ? nl : size;
    size_t n_in = (size_t)w * h * 3;
    uint8_t *u8 = malloc(n_in), *rs = malloc((size_t)nw * nh * 3);
    if (!u8 || !rs) {
        free(u8); free(rs); image_free(&rgb);
        data_set_error("clip_preprocess: out of memory");
        return -1;
    }
    image_to_u8(&rgb, u8, 1);
    image_free(&rgb);
    int rc = 0;
    if (nw == w && nh == h) memcpy(rs, u8, n_in);
    else rc = resize_bicubic_u8(u8, w, h, 3, rs, nw, nh);
    free(u8);
    if (rc) { free(rs); return -1; }
    /* torchvision CenterCrop: offsets int(round((dim - size) / 2)); pads with zeros if the image is smaller,
     * which cannot happen here since the shorter side is exactly `size`. */
    int top = py_round_half(nh - size), left = py_round_half(nw - size);
    size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            const uint8_t *p = rs + ((size_t)(y + top) * nw + (x + left)) * 3;
            for (int k = 0; k < 3; k++)
                out[k * plane + (size_t)y * size + x] = (p[k] / 255.f - clip_mean[k]) / clip_std[k];
        }
    free(rs);
    return 0;
}
