#ifndef DACLIP_DATA_IMAGE_OPS_H
#define DACLIP_DATA_IMAGE_OPS_H
/* Geometric and colour operations on Image (HWC float). Functions with a `dst` allocate it (free with
 * image_free) and return 0, or -1 with data_error set; dst must not alias src. In-place ones cannot fail. */
#include <stdint.h>
#include "data/image.h"

/* Copies the w×h window whose top-left corner is (x, y); the window must lie inside src. */
int  image_crop(const Image *src, int x, int y, int w, int h, Image *dst);
void image_hflip(Image *im);                        /* mirror left-right (img[:, ::-1]) */
void image_vflip(Image *im);                        /* mirror top-bottom (img[::-1]) */
int  image_transpose(const Image *src, Image *dst); /* swap x and y (img.transpose(1, 0, 2), the official "rot90") */
int  image_rot90(const Image *src, int k, Image *dst); /* rotate by k·90° counter-clockwise (np.rot90), any k */
/* Reflect padding without repeating the edge pixel (numpy "reflect", OpenCV BORDER_REFLECT_101). Each pad must
 * be smaller than the corresponding image side. */
int  image_pad_reflect(const Image *src, int top, int bottom, int left, int right, Image *dst);

/* BT.601 luma as in the official evaluation (MATLAB rgb2ycbcr): Y = (65.481 R + 128.553 G + 24.966 B + 16·255)/255
 * for RGB in [0,1], i.e. Y in [16/255, 235/255]; dst has 1 channel. Grey input is copied. */
int  image_rgb_to_y(const Image *src, Image *dst);
/* Full BT.601 YCbCr (MATLAB convention, [0,1] scale) and its inverse; both 3-channel. */
int  image_rgb_to_ycbcr(const Image *src, Image *dst);
int  image_ycbcr_to_rgb(const Image *src, Image *dst);

/* Float [0,1] <-> uint8 levels. to_u8 clamps, then rounds (truncate = 0) or truncates (truncate = 1). */
void image_to_u8(const Image *im, uint8_t *out, int truncate);
int  image_from_u8(const uint8_t *px, int w, int h, int c, Image *dst);
void image_clamp(Image *im);
/* Converts to RGB (grey replicated, alpha dropped); a 3-channel image is cloned. */
int  image_to_rgb(const Image *src, Image *dst);
/* HWC -> CHW float copy (dst holds w*h*c floats). */
void image_to_chw(const Image *im, float *dst);

#endif
