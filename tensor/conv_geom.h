#ifndef DACLIP_TENSOR_CONV_GEOM_H
#define DACLIP_TENSOR_CONV_GEOM_H
/* Geometry of one 2-D convolution ([N, Cin, H, W] * [Cout, Cin, kh, kw] -> [N, Cout, Ho, Wo]) and the two
 * ways it is computed: tiles of im2col + GEMM (tensor/ops_conv.c, any stride), and the implicit GEMM over
 * shifted windows of a padded copy of the input (tensor/conv_implicit.c, stride 1, AVX-512), and one GEMM
 * over the patch matrix when the windows tile the input (tensor/conv_patchify.c). Internal. */
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, Ho, Wo, K;
    int64_t rows;        /* output rows per tile */
    int64_t tiles;       /* tiles per image */
    bool direct;         /* 1×1, stride 1, no padding: col is the input itself */
} ConvGeom;

/* Whether the implicit path takes this convolution: stride 1, a window larger than 1×1, padding below the
 * window size, and our GEMM kernel available. */
bool conv_implicit_ok(const ConvGeom *g);

/* Largest padded input chunk (bytes) one implicit GEMM covers; tests lower it to exercise chunking. */
extern int64_t conv_implicit_chunk_bytes;

/* y [N, Cout, Ho, Wo] = conv(x) + b (b may be NULL). Workspace from the arena, released. */
void conv_implicit_forward(const ConvGeom *g, const float *x, const float *w, const float *b, float *y);

/* Accumulates the gradients asked for (non-NULL): dx [N, Cin, H, W], dw [Cout, Cin, kh, kw], db [Cout]. */
void conv_implicit_backward(const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db);

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
