/* PNG files through libpng. libpng reports errors by longjmp to the jmp_buf of the png struct; our error
 * callback stores the message first so the caller can name the file and the problem. */
#include "data/file_io.h"
#include "data/image_io.h"
#include <png.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char msg[256]; } PngErr;

static void png_err_fn(png_structp png, png_const_charp msg) {
    PngErr *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}
static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int png_read(const char *path, Image *im) {
    memset(im, 0, sizeof *im);
    FILE *f = data_open_regular(path, 0, NULL);
    if (!f) return -1;
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(f);
        data_set_error("%s: not a PNG file", path);
        return -1;
    }
    PngErr err = { "" };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        fclose(f);
        data_set_error("%s: out of memory", path);
        return -1;
    }
    unsigned char *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(buf);
        free(rows);
        image_free(im);
        data_set_error("%s: corrupt or truncated PNG (%s)", path, err.msg);
        return -1;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((int64_t)w * (int64_t)h > image_pixel_limit()) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        data_set_error("%s: image is %ux%u, above the %lld-pixel limit", path, (unsigned)w, (unsigned)h,
                       (long long)image_pixel_limit());
        return -1;
    }
    int color = png_get_color_type(png, info);
    /* Everything becomes RGB: palette expanded, low-bit grey to 8 bits, grey replicated, alpha dropped.
     * Expanding a palette also turns its tRNS chunk into an alpha channel; that alpha is dropped below
     * (ch == 4), like any other, so transparent palette images read as their palette colours. */
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int depth = png_get_bit_depth(png, info), ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 3 && ch != 4) || (depth != 8 && depth != 16) || rowbytes != (size_t)w * ch * (depth / 8))
        png_error(png, "unsupported pixel format");
    buf = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!buf || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    if (image_alloc(im, (int)w, (int)h, 3)) png_error(png, "out of memory");
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            size_t j = i * (size_t)ch + (size_t)k;   /* sample k of pixel i, alpha skipped */
            im->px[3 * i + (size_t)k] = depth == 8 ? buf[j] / 255.f : (float)((buf[2 * j] << 8 | buf[2 * j + 1]) / 65535.0);
        }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(buf);
    free(rows);
    return 0;
}

int png_write(const char *path, const Image *im, int bit_depth) {
    if ((bit_depth != 8 && bit_depth != 16) || im->c < 1 || im->c > 4 || !im->px) {
        data_set_error("%s: cannot write a %d-channel image at %d bits", path, im->c, bit_depth);
        return -1;
    }
    static const int types[5] = { 0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                  PNG_COLOR_TYPE_RGB_ALPHA };
    size_t bps = (size_t)bit_depth / 8, rowbytes = (size_t)im->w * im->c * bps;
    unsigned char *buf = malloc(rowbytes * im->h);
    png_bytep *rows = malloc(sizeof(png_bytep) * im->h);
    if (!buf || !rows) { free(buf); free(rows); data_set_error("%s: out of memory", path); return -1; }
    size_t n = (size_t)im->w * im->h * im->c;
    double maxv = bit_depth == 8 ? 255.0 : 65535.0;
    for (size_t i = 0; i < n; i++) {
        float v = im->px[i];
        v = v > 0.f ? (v < 1.f ? v : 1.f) : 0.f;
        unsigned q = (unsigned)floor(v * maxv + 0.5);
        if (bit_depth == 8) buf[i] = (unsigned char)q;
        else { buf[2 * i] = (unsigned char)(q >> 8); buf[2 * i + 1] = (unsigned char)q; }
    }
    for (int y = 0; y < im->h; y++) rows[y] = buf + (size_t)y * rowbytes;

    DataOutFile out;   /* a temporary renamed over path at the end: a failed write keeps the old file */
    if (data_out_open(&out, path)) { free(buf); free(rows); return -1; }
    PngErr err = { "" };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        data_out_abort(&out);
        free(buf);
        free(rows);
        data_set_error("%s: PNG write failed (%s)", path, err.msg[0] ? err.msg : "out of memory");
        return -1;
    }
    png_init_io(png, out.fp);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, bit_depth, types[im->c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(buf);
    free(rows);
    return data_out_commit(&out);
}
