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

/* Whether the view of `seed` is mirrored (a coin independent of the crop's draws), and the mirroring itself:
 * a left-right flip of a CHW view [3, size, size] in place. Not part of the official recipe; an option of the
 * trainers, for data whose labels survive a mirror (all ten degradations here are left-right symmetric). */
int clip_view_mirror_coin(uint64_t seed);
void clip_view_mirror(float *chw, int size);

#endif
