#ifndef DACLIP_DATA_CLIP_AUGMENT_H
#define DACLIP_DATA_CLIP_AUGMENT_H
/* The DA-CLIP training view (reference §2.3, open_clip transform.py in training mode): torchvision's
 * RandomResizedCrop(size, scale = (scale_min, 1), ratio = (3/4, 4/3), bicubic) on the uint8 image, then the
 * OpenAI mean/std normalisation, CHW. The crop is drawn from `seed` alone (10 tries of area and log-ratio,
 * else the centre crop of the whole image clamped to the ratio range, as torchvision), so a batch is the
 * same whatever the thread count. */
#include <stdint.h>

#include "data/image.h"

int clip_preprocess_train(const Image *im, int size, double scale_min, uint64_t seed, float *out);

#endif
