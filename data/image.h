#ifndef DACLIP_DATA_IMAGE_H
#define DACLIP_DATA_IMAGE_H
/* Images as plain float buffers: interleaved HWC, values in [0,1], c = 1..4 (RGB = 3).
 * data/ stands alone (libc, libpng, zlib, libjpeg-turbo); it hands these buffers to train/. */
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int w, h, c;     /* width, height, channels */
    float *px;       /* [h][w][c], row-major, owned */
} Image;

/* Allocates an uninitialised w×h×c image; returns 0 on success, -1 (with data_error set) on failure. */
int  image_alloc(Image *im, int w, int h, int c);
void image_free(Image *im);
int  image_clone(Image *dst, const Image *src);
static inline float *image_at(const Image *im, int x, int y) { return im->px + ((size_t)y * im->w + x) * im->c; }

/* splitmix64 finaliser: a well-mixed 64-bit hash, used to derive independent seeds from (seed, indices). */
uint64_t data_hash64(uint64_t x);

/* Last error message of data/ functions (thread-local), e.g. "photo.png: truncated PNG data". */
const char *data_error(void);
void data_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
