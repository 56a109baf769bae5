#include "data/image.h"
#include "data/file_io.h"
#include "data/image_io.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[1024];

uint64_t data_hash64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

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

/* ---- file dispatch (data/image_io.h) ---- */

static int64_t pixel_limit = 100000000;

void    image_set_pixel_limit(int64_t max_pixels) { pixel_limit = max_pixels > 0 ? max_pixels : 100000000; }
int64_t image_pixel_limit(void) { return pixel_limit; }

int image_load(const char *path, Image *im) {
    memset(im, 0, sizeof *im);
    FILE *f = data_open_regular(path, 0, NULL);   /* a FIFO or device is refused, not waited on */
    if (!f) return -1;
    unsigned char m[8] = { 0 };
    size_t n = fread(m, 1, sizeof m, f);
    fclose(f);
    if (n >= 8 && memcmp(m, "\x89PNG\r\n\x1a\n", 8) == 0) return png_read(path, im);
    if (n >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF) return jpeg_read(path, im);
    data_set_error("%s: unknown image format (neither PNG nor JPEG)", path);
    return -1;
}

static int ext_is(const char *path, const char *ext) {
    const char *dot = strrchr(path, '.');
    if (!dot) return 0;
    for (dot++; *dot && *ext; dot++, ext++)
        if (tolower((unsigned char)*dot) != *ext) return 0;
    return *dot == 0 && *ext == 0;
}

int image_save(const char *path, const Image *im) {
    if (ext_is(path, "png")) return png_write(path, im, 8);
    if (ext_is(path, "jpg") || ext_is(path, "jpeg")) return jpeg_write(path, im, 95);
    data_set_error("%s: unknown extension (use .png, .jpg or .jpeg)", path);
    return -1;
}
