#ifndef DACLIP_DATA_SHAPES_H
#define DACLIP_DATA_SHAPES_H
/* A synthetic caption task for testing that contrastive training learns: coloured shapes (circle,
 * square, triangle, cross) of several colours at random positions and sizes on a noisy background,
 * captioned "a <colour> <shape>". Deterministic for a seed. */
#include <stdint.h>

#include "data/image.h"

#define SHAPES_N_COLOURS 4
#define SHAPES_N_KINDS 4

/* Renders one sample of class (colour, kind) at size×size; writes its caption into caption. */
int shapes_render(int colour, int kind, uint64_t seed, int size, Image *out, char *caption, size_t cap);
const char *shapes_colour_name(int colour);
const char *shapes_kind_name(int kind);

#endif
