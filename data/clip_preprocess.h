#ifndef DACLIP_DATA_CLIP_PREPROCESS_H
#define DACLIP_DATA_CLIP_PREPROCESS_H
/* The image fed to DA-CLIP (reference §1.6, uir/data/util.py:clip_transform):
 * float [0,1] -> uint8 by truncation (x255), PIL-bicubic resize so the shorter side is `size`
 * (longer side = int(size·long/short), torchvision Resize), centre crop size×size (offsets round((d)/2),
 * Python rounding), /255, per-channel (x − mean)/std with the OpenAI constants. Output is CHW float. */
#include "data/image.h"

#define CLIP_IMAGE_SIZE 224
/* Longest side / shortest side accepted: beyond it the resized intermediate (shorter side = size) grows
 * without bound while the centre crop keeps a sliver; such inputs are refused with an error. */
#define CLIP_MAX_ASPECT 100
extern const float clip_mean[3], clip_std[3];

/* im: 1 (grey, replicated), 3 or 4 (alpha dropped) channels. out holds 3*size*size floats.
 * Returns 0, or -1 with data_error set (also for an aspect ratio above CLIP_MAX_ASPECT). */
int clip_preprocess(const Image *im, int size, float *out);

#endif
