#ifndef DACLIP_TENSOR_CONV_GEOM_H
#define DACLIP_TENSOR_CONV_GEOM_H
/* Geometry of one 2-D convolution ([N, Cin, H, W] * [Cout, Cin, kh, kw] -> [N, Cout, Ho, Wo]) and the two
 * ways it is computed: tiles of im2col + GEMM (tensor/ops_conv.c, any stride), and the implicit GEMM over
 * shifted windows of a padded copy of the input (tensor/conv_implicit.c, stride 1, AVX-512), and one GEMM
 * over the patch matrix when the windows tile the input (tensor/conv_patchify.c). Internal. */
#include <stdbool.h>
#include <stdint.h>

#include "tensor/conv_fused.h"

typedef struct {
    int64_t N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, Ho, Wo, K;
    int64_t rows;        /* output rows per tile */
    int64_t tiles;       /* tiles per image */
    bool direct;         /* 1×1, stride 1, no padding: col is the input itself */
    int64_t C1;          /* channels from the first input, the rest (Cin − C1) from the second */
} ConvGeom;

/* The input of a convolution: channel c of image n is plane(n, c) of x1 (c < C1) or of x2. */
typedef struct {
    const float *x1, *x2;
    int64_t C1, C, HW;
} ConvSrc;

static inline const float *conv_src_plane(const ConvSrc *s, int64_t n, int64_t c) {
    return c < s->C1 ? s->x1 + (n * s->C1 + c) * s->HW : s->x2 + (n * (s->C - s->C1) + c - s->C1) * s->HW;
}

/* Where results go: channel c of image n to plane(n, c) of d1 (c < C1) or of d2 (NULL: dropped). */
typedef struct {
    float *d1, *d2;
    int64_t C1, C, HW;
} ConvDst;

static inline float *conv_dst_plane(const ConvDst *d, int64_t n, int64_t c) {
    if (c < d->C1) return d->d1 ? d->d1 + (n * d->C1 + c) * d->HW : NULL;
    return d->d2 ? d->d2 + (n * (d->C - d->C1) + c - d->C1) * d->HW : NULL;
}

/* What happens to the convolution's result z (bias included) on its way to y (see conv_fused.h). */
typedef struct {
    int act;             /* CONV_ACT_* */
    const float *ss;     /* SCALE_SHIFT_SILU: [N, 2·Cout] */
    const float *res;    /* SILU_ADD: [N, Cout, Ho, Wo] */
    float *pre;          /* NULL, or [N, Cout, Ho, Wo] that receives z too */
} ConvEpi;

/* Stores z (one row of n pixels of image `img`, channel c) into y with the epilogue; `add`: y += z
 * (only without an activation). */
void conv_epi_row(const ConvEpi *e, int64_t Cout, int64_t HWo, int64_t img, int64_t c, int64_t pix, const float *z,
                  float *y, int64_t n, bool add);

/* Whether the implicit path takes this convolution: stride 1, a window larger than 1×1, padding below the
 * window size, and our GEMM kernel available. */
bool conv_implicit_ok(const ConvGeom *g);

/* Largest padded input chunk (bytes) one implicit GEMM covers; tests lower it to exercise chunking. */
extern int64_t conv_implicit_chunk_bytes;

/* y [N, Cout, Ho, Wo] = epi(conv(cat(x1, x2)) + b) (b may be NULL). Workspace from the arena, released. */
void conv_implicit_forward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *b,
                           float *y, const ConvEpi *epi);

/* Accumulates the gradients asked for (non-NULL): dx1/dx2 (the two inputs' channels), dw [Cout, Cin, kh, kw],
 * db [Cout]. */
void conv_implicit_backward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *dy,
                            float *dx1, float *dx2, float *dw, float *db);

/* Shared by the implicit paths (tensor/conv_implicit.c, tensor/conv_upsample.c): */
/* Images per GEMM: all while the padded chunk of C channels of Hp×Wp stays under conv_implicit_chunk_bytes. */
int64_t conv_chunk_images(int64_t N, int64_t C, int64_t Hp, int64_t Wp);
/* dst [C, nb, Hp, Wp] = images n0.. of src placed at (top, left), zero elsewhere, then `slack` zeros. */
void conv_pad_planes(const ConvSrc *src, int64_t n0, int64_t nb, int64_t H, int64_t W, int64_t top, int64_t left,
                     int64_t Hp, int64_t Wp, float *dst, int64_t slack);
/* Where a product's columns go: q = (n·Hp + y)·Wp + x over a chunk of images starting at image n0, each a
 * [C, Hp, Wp] plane of which the top-left H×W corner is kept (a forward's y, a backward's dX). */
typedef struct {
    const ConvDst *dst;
    const ConvEpi *epi;   /* the forward's epilogue, or NULL (dst then has one part) */
    bool add;             /* dst += (without an epilogue) */
    int64_t C, H, W, n0, Hp, Wp;
} ConvSettle;
/* t_sgemm_shifted_settle's callback (ctx: a ConvSettle): stores columns [j0, j0 + ncols) of the product, the
 * kept ones, through the epilogue. */
void conv_settle_columns(void *ctx, int64_t j0, int64_t ncols, const float *c, int64_t ldc);
/* Floats past a padded input that the GEMM may read: the last window's run rounded up to 48. */
#define CONV_WINDOW_SLACK(kw) ((kw) + 64)

/* 3×3, stride 1, pad 1 with many channels by Winograd F(2×2, 3×3) (tensor/conv_winograd.c); the same
 * arguments as the implicit path. */
bool conv_wino_ok(const ConvGeom *g);
void conv_wino_forward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *b, float *y,
                       const ConvEpi *epi);
void conv_wino_backward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *dy,
                        float *dx1, float *dx2, float *dw, float *db);
/* The forward in cache-sized blocks of tiles on our GEMM's micro-kernels (from fewer channels; needs our
 * kernels): the same result as conv_wino_forward up to rounding. */
bool conv_wino_blocked_ok(const ConvGeom *g);
void conv_wino_blocked_forward(const ConvGeom *g, const float *x1, const float *x2, const float *w, const float *b,
                               float *y, const ConvEpi *epi);

/* Nearest ×2 upsampling then a 3×3, pad 1, stride 1 convolution (g describes that convolution: H, W
 * are the upsampled sizes), by four 2×2 phase convolutions of x [N, Cin, H/2, W/2] (tensor/conv_upsample.c). */
bool conv_up2x_ok(const ConvGeom *g);
void conv_up2x_forward(const ConvGeom *g, const float *x, const float *w, const float *b, float *y,
                       const ConvEpi *epi);
void conv_up2x_backward(const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                        float *db);

/* db [Cout] += the sum of dy [N, Cout, Ho, Wo] over everything but the channel (one thread per channel,
 * a fixed order). */
void conv_bias_grad(const ConvGeom *g, const float *dy, float *db);

/* Windows that tile the input exactly (stride = kernel, no padding; ViT's patch embedding): one GEMM of
 * the patch matrix for the whole batch (tensor/conv_patchify.c). */
bool conv_patchify_ok(const ConvGeom *g);
void conv_patchify_forward(const ConvGeom *g, const float *x, const float *w, const float *b, float *y);
void conv_patchify_backward(const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db);

#endif
