/* JPEG files through libjpeg-turbo. Errors longjmp back to the caller through a jmp_buf kept next to the
 * libjpeg error manager. libjpeg reports damaged data only as warnings and carries on (grey padding for a
 * truncated file, garbage blocks for a corrupt scan); every such warning is an error here, so truncated and
 * corrupt files are reported instead of decoding to a wrong image. */
#include "data/file_io.h"
#include "data/image_io.h"
#include "data/image_ops.h"
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <math.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_error_exit_fn(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Every warning (level -1) is an error except the few that say nothing about the pixels: an unknown JFIF
 * revision, an unknown Adobe transform code, a damaged ICC profile (not used here). Among the errors:
 * premature end of file, bad Huffman/arithmetic codes, extraneous bytes before a marker (a scan that ended
 * early: its data is corrupt), resynchronisation, bogus progression. */
static void jpeg_emit_fn(j_common_ptr cinfo, int level) {
    if (level >= 0) return;   /* trace messages */
    switch (cinfo->err->msg_code) {
    case JWRN_JFIF_MAJOR: case JWRN_ADOBE_XFORM:
#ifdef JWRN_BOGUS_ICC
    case JWRN_BOGUS_ICC:
#endif
        break;
    default: jpeg_error_exit_fn(cinfo); break;
    }
}

static void jpeg_quiet_fn(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_err_init(JpegErr *e) {
    memset(e, 0, sizeof *e);
    jpeg_std_error(&e->mgr);
    e->mgr.error_exit = jpeg_error_exit_fn;
    e->mgr.emit_message = jpeg_emit_fn;
    e->mgr.output_message = jpeg_quiet_fn;
}

static unsigned rd16(const unsigned char *p, int le) { return le ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]); }
static uint32_t rd32(const unsigned char *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Orientation tag 0x0112 of IFD0 inside the TIFF block that follows "Exif\0\0" in an APP1 segment. */
static int exif_orientation_tiff(const unsigned char *t, size_t n) {
    if (n < 8) return 1;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 1;
    if (rd16(t + 2, le) != 42) return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd > n || n - ifd < 2) return 1;
    unsigned count = rd16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) return 1;
        if (rd16(t + e, le) == 0x0112) {
            unsigned type = rd16(t + e + 2, le), v = type == 3 ? rd16(t + e + 8, le) : 0;
            return (v >= 1 && v <= 8) ? (int)v : 1;
        }
    }
    return 1;
}

int jpeg_exif_orientation(const unsigned char *buf, size_t len) {
    if (len < 4 || buf[0] != 0xFF || buf[1] != 0xD8) return 1;
    size_t pos = 2;
    while (pos + 4 <= len) {
        if (buf[pos] != 0xFF) return 1;
        unsigned marker = buf[pos + 1];
        if (marker == 0xFF) { pos++; continue; }          /* fill byte */
        if (marker == 0xDA || marker == 0xD9) return 1;    /* start of scan / end of image: no more headers */
        size_t seg = (size_t)buf[pos + 2] << 8 | buf[pos + 3];
        if (seg < 2 || pos + 2 + seg > len) return 1;
        const unsigned char *d = buf + pos + 4;
        size_t dn = seg - 2;
        if (marker == 0xE1 && dn >= 6 && memcmp(d, "Exif\0\0", 6) == 0) return exif_orientation_tiff(d + 6, dn - 6);
        pos += 2 + seg;
    }
    return 1;
}

/* Turns an image stored with EXIF orientation `o` upright (what PIL's ImageOps.exif_transpose does). */
static int apply_orientation(Image *im, int o) {
    Image t, u;
    switch (o) {
    case 2: image_hflip(im); return 0;
    case 3: image_hflip(im); image_vflip(im); return 0;
    case 4: image_vflip(im); return 0;
    case 5: if (image_transpose(im, &t)) return -1; break;
    case 6: if (image_rot90(im, -1, &t)) return -1; break;
    case 7: if (image_transpose(im, &t)) return -1; image_hflip(&t); image_vflip(&t); break;
    case 8: if (image_rot90(im, 1, &t)) return -1; break;
    default: return 0;
    }
    u = *im;
    *im = t;
    image_free(&u);
    return 0;
}

int jpeg_decode_mem(const unsigned char *buf, size_t len, const char *name, Image *im) {
    memset(im, 0, sizeof *im);
    struct jpeg_decompress_struct cinfo;
    JpegErr err;
    jpeg_err_init(&err);
    cinfo.err = &err.mgr;
    unsigned char *volatile row = NULL;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        image_free(im);
        data_set_error("%s: corrupt or truncated JPEG (%s)", name, err.msg);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if ((int64_t)cinfo.image_width * cinfo.image_height > image_pixel_limit()) {
        jpeg_destroy_decompress(&cinfo);
        data_set_error("%s: image is %ux%u, above the %lld-pixel limit", name, cinfo.image_width,
                       cinfo.image_height, (long long)image_pixel_limit());
        return -1;
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        data_set_error("%s: CMYK JPEGs are not supported", name);
        return -1;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    if (cinfo.output_components != 3) ERREXIT(&cinfo, JERR_BAD_J_COLORSPACE);
    row = malloc((size_t)w * 3);
    if (!row || image_alloc(im, w, h, 3)) ERREXIT1(&cinfo, JERR_OUT_OF_MEMORY, 0);
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        JSAMPROW r = row;
        jpeg_read_scanlines(&cinfo, &r, 1);
        float *dst = image_at(im, 0, y);
        for (size_t i = 0; i < (size_t)w * 3; i++) dst[i] = row[i] / 255.f;
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (apply_orientation(im, jpeg_exif_orientation(buf, len))) { image_free(im); return -1; }
    return 0;
}

int jpeg_encode_mem(const Image *im, int quality, unsigned char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (im->c < 1 || im->c > 4 || !im->px || quality < 1 || quality > 100) {
        data_set_error("jpeg: cannot encode a %d-channel image at quality %d", im->c, quality);
        return -1;
    }
    int comps = im->c >= 3 ? 3 : 1;
    struct jpeg_compress_struct cinfo;
    JpegErr err;
    jpeg_err_init(&err);
    cinfo.err = &err.mgr;
    unsigned char *volatile row = NULL;
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(row);
        free(mem);
        data_set_error("jpeg: encoding failed (%s)", err.msg);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &mem, &mem_len);
    cinfo.image_width = (JDIMENSION)im->w;
    cinfo.image_height = (JDIMENSION)im->h;
    cinfo.input_components = comps;
    cinfo.in_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    row = malloc((size_t)im->w * comps);
    if (!row) ERREXIT1(&cinfo, JERR_OUT_OF_MEMORY, 0);
    while (cinfo.next_scanline < cinfo.image_height) {
        const float *src = image_at(im, 0, (int)cinfo.next_scanline);
        for (int x = 0; x < im->w; x++)
            for (int k = 0; k < comps; k++) {
                float v = src[(size_t)x * im->c + k];
                v = v > 0.f ? (v < 1.f ? v : 1.f) : 0.f;
                row[(size_t)x * comps + k] = (unsigned char)floorf(v * 255.f + 0.5f);
            }
        JSAMPROW r = row;
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(row);
    *out = mem;
    *out_len = mem_len;
    return 0;
}

/* Reads a whole regular file with a size cap (a JPEG never needs more than ~ a few bytes per pixel). */
static int read_file(const char *path, unsigned char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    int64_t n;
    FILE *f = data_open_regular(path, 16 * image_pixel_limit() + (1 << 20), &n);
    if (!f) return -1;
    *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!*buf) { fclose(f); data_set_error("%s: out of memory", path); return -1; }
    if (fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f); free(*buf); *buf = NULL;
        data_set_error("%s: read error", path);
        return -1;
    }
    fclose(f);
    *len = (size_t)n;
    return 0;
}

int jpeg_read(const char *path, Image *im) {
    memset(im, 0, sizeof *im);
    unsigned char *buf;
    size_t len;
    if (read_file(path, &buf, &len)) return -1;
    if (len < 3 || buf[0] != 0xFF || buf[1] != 0xD8 || buf[2] != 0xFF) {
        free(buf);
        data_set_error("%s: not a JPEG file", path);
        return -1;
    }
    int rc = jpeg_decode_mem(buf, len, path, im);
    free(buf);
    return rc;
}

int jpeg_write(const char *path, const Image *im, int quality) {
    unsigned char *buf;
    size_t len;
    if (jpeg_encode_mem(im, quality, &buf, &len)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", data_error());
        data_set_error("%s: %s", path, msg);
        return -1;
    }
    DataOutFile out;   /* a temporary renamed over path at the end: a failed write keeps the old file */
    if (data_out_open(&out, path)) { free(buf); return -1; }
    size_t wr = fwrite(buf, 1, len, out.fp);
    free(buf);
    if (wr != len) {
        data_set_error("%s: write error: %s (the previous file, if any, is untouched)", path, strerror(errno));
        data_out_abort(&out);
        return -1;
    }
    return data_out_commit(&out);
}
