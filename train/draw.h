#ifndef DACLIP_TRAIN_DRAW_H
#define DACLIP_TRAIN_DRAW_H
/* Drawing on an Image (HWC float [0,1]) for the pictures the CLI writes. Everything is clipped. */
#include "data/image.h"

/* Text in a 5x7 bitmap font (upper-cased; A-Z 0-9 - + = . : / and space), top-left at (x, y), each font
 * pixel a scale×scale square. */
void draw_text_rgb(Image *im, int x, int y, const char *text, int scale, const float rgb[3]);
void draw_text(Image *im, int x, int y, const char *text, int scale, float grey);
void draw_point(Image *im, int x, int y, const float rgb[3]);
void draw_line(Image *im, int x0, int y0, int x1, int y1, int width, const float rgb[3]);
void draw_fill(Image *im, int x0, int y0, int x1, int y1, const float rgb[3]);

#endif
