#ifndef DACLIP_DATA_RESIZE_H
#define DACLIP_DATA_RESIZE_H
/* Image resizing.
 *  - Bicubic reproduces PIL's Image.resize(size, Image.BICUBIC) exactly: separable convolution, horizontal pass
 *    first, support scaled by the downscale factor (antialiasing), a = -0.5. The uint8 version uses PIL's
 *    22-bit fixed-point coefficients and rounds to uint8 between the passes, like PIL does for "RGB"/"L"
 *    images; the float version is PIL's "F" mode (double weights, no rounding).
 *  - Bilinear and area follow OpenCV's INTER_LINEAR (half-pixel centres, no antialiasing) and INTER_AREA
 *    (exact pixel-area averaging when shrinking; bilinear when enlarging) on float data. */
#include <stdint.h>
#include "data/image.h"

typedef enum { RESIZE_BICUBIC = 0, RESIZE_BILINEAR, RESIZE_AREA } ResizeFilter;

/* PIL-exact bicubic on interleaved uint8 (c channels). dst holds ow*oh*c bytes. Returns 0 or -1 (data_error). */
int resize_bicubic_u8(const uint8_t *src, int w, int h, int c, uint8_t *dst, int ow, int oh);

/* Resizes a float image into dst (allocated here, free with image_free). Bicubic = PIL "F" mode. */
int image_resize(const Image *src, Image *dst, int ow, int oh, ResizeFilter filter);

/* PIL-uint8 bicubic on a float image: quantise to uint8 (round, or truncate when `truncate` is set, which is what
 * the CLIP preprocessing does), resize exactly as PIL, back to float /255. */
int image_resize_bicubic_pil_u8(const Image *src, Image *dst, int ow, int oh, int truncate);

#endif
