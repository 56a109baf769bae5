#ifndef DACLIP_DATA_IMAGE_IO_H
#define DACLIP_DATA_IMAGE_IO_H
/* Reading and writing image files (PNG via libpng, JPEG via libjpeg-turbo) as Image (HWC float [0,1]).
 *
 * Loading always yields an RGB image (c = 3): grey is replicated to the three channels, palette images are
 * expanded, 16-bit samples are scaled by 1/65535, 8-bit by 1/255. An alpha channel is DROPPED (not composited),
 * which is what the official pipeline's cv2.imread(path, IMREAD_COLOR) does with RGBA PNGs.
 * JPEG files are turned upright according to their EXIF orientation tag (1..8).
 *
 * Every function returns 0 on success, or -1 with data_error() set to a message that names the file and the
 * problem ("x.png: truncated PNG data", "x.jpg: image is 20000x20000, above the 100000000-pixel limit"). On
 * failure the output image is left empty (px == NULL). Corrupt input never aborts the process. */
#include <stddef.h>
#include <stdint.h>
#include "data/image.h"

/* Largest accepted width*height on load (default 100 Mpx). Applies to every thread; set it at start-up. */
void    image_set_pixel_limit(int64_t max_pixels);
int64_t image_pixel_limit(void);

/* Loads a PNG or JPEG, chosen by the file's magic bytes (not its extension). */
int image_load(const char *path, Image *im);
/* Saves by extension: .png (8-bit), .jpg/.jpeg (quality 95). Channels 1 (grey), 3 (RGB) or 4 (RGBA for PNG;
 * alpha dropped for JPEG). Values are clamped to [0,1] and rounded to the nearest level. */
int image_save(const char *path, const Image *im);

/* PNG. png_write: bit_depth 8 or 16. */
int png_read(const char *path, Image *im);
int png_write(const char *path, const Image *im, int bit_depth);

/* JPEG. quality 1..100; 4:2:0 chroma subsampling for colour images (libjpeg's default, as OpenCV/PIL). */
int jpeg_read(const char *path, Image *im);
int jpeg_write(const char *path, const Image *im, int quality);
/* In-memory JPEG: encode to a malloc'd buffer (*buf, free() it) / decode from memory. `name` only labels errors.
 * jpeg_decode_mem applies the EXIF orientation like jpeg_read. Grey input encodes as a 1-component JPEG and
 * decodes back to RGB. */
int jpeg_encode_mem(const Image *im, int quality, unsigned char **buf, size_t *len);
int jpeg_decode_mem(const unsigned char *buf, size_t len, const char *name, Image *im);

/* EXIF orientation (1..8) of a JPEG in memory, 1 if absent or unreadable (parsed from APP1 "Exif", IFD0 tag
 * 0x0112, bounds-checked). Exposed for tests. */
int jpeg_exif_orientation(const unsigned char *buf, size_t len);

#endif
