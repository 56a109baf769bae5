#include "data/image.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[1024];

const char *data_error(void) { return err_buf; }

void data_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
}

int image_alloc(Image *im, int w, int h, int c) {
    memset(im, 0, sizeof *im);
    if (w <= 0 || h <= 0 || c <= 0 || c > 4) {
        data_set_error("invalid image size %dx%dx%d", w, h, c);
        return -1;
    }
    im->px = malloc((size_t)w * (size_t)h * (size_t)c * sizeof(float));
    if (!im->px) {
        data_set_error("out of memory for a %dx%dx%d image", w, h, c);
        return -1;
    }
    im->w = w; im->h = h; im->c = c;
    return 0;
}

void image_free(Image *im) {
    if (!im) return;
    free(im->px);
    memset(im, 0, sizeof *im);
}

int image_clone(Image *dst, const Image *src) {
    if (image_alloc(dst, src->w, src->h, src->c)) return -1;
    memcpy(dst->px, src->px, (size_t)src->w * src->h * src->c * sizeof(float));
    return 0;
}
