/* jpeg-compressed: a real libjpeg-turbo encode + decode in memory (data/image_io.h) at the given quality, standard
 * tables and 4:2:0 chroma subsampling, which is what OpenCV's imencode does in the official synthesis
 * (reference §3.4). Deterministic: the seed only matters through randomised parameters. */
#include "data/degrade_internal.h"
#include <stdlib.h>
#include "data/image_io.h"

int degrade_jpeg(Image *im, const DegradeParams *p, Pcg32 *rng) {
    (void)rng;
    unsigned char *jpg = NULL;
    size_t len = 0;
    if (jpeg_encode_mem(im, p->jpeg_quality, &jpg, &len)) return -1;   /* encodes the colour channels only */
    Image dec;
    int rc = jpeg_decode_mem(jpg, len, "jpeg-compressed degradation", &dec);
    free(jpg);
    if (rc) return -1;
    if (dec.w != im->w || dec.h != im->h) {
        data_set_error("degrade: jpeg-compressed: decoded %dx%d, expected %dx%d", dec.w, dec.h, im->w, im->h);
        image_free(&dec);
        return -1;
    }
    int nc = deg_colour_channels(im);   /* a grey image decodes as RGB with equal channels: keep the first */
    size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < nc; ch++) im->px[i * im->c + ch] = dec.px[i * 3 + ch];
    image_free(&dec);
    return 0;
}
