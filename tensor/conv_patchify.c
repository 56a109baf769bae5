/* Convolution whose windows tile the input exactly (stride = kernel, no padding, e.g. ViT's patch
 * embedding conv1: 32×32 windows, stride 32): each output pixel sees its own patch, so the convolution is
 * one GEMM of the patch matrix against the weights,
 *     T [N·Ho·Wo, Cout] = P [N·Ho·Wo, Cin·kh·kw] · Wᵀ        (bias fused)
 * followed by a transpose into [N, Cout, Ho, Wo]. The tile path would run one 768×49×3072 product per
 * image (49 columns fill one 48-wide panel and waste most of a second); here all images share a
 * 392×768×3072 product. Backward: dW += dTᵀ P, dP = dT W, scattered back into dX. */
#include <string.h>

#include "tensor/conv_geom.h"
#include "tensor/gemm.h"
#include "tensor/internal.h"

bool conv_patchify_ok(const ConvGeom *g) {
    return g->sh == g->kh && g->sw == g->kw && g->ph == 0 && g->pw == 0 && g->H % g->kh == 0 &&
           g->W % g->kw == 0 && !g->direct && g->Ho * g->Wo * g->N >= 8;
}

/* P [N·Ho·Wo, Cin·kh·kw] from x [N, Cin, H, W], or (to_x) x += the scatter of P. */
static void patches(const ConvGeom *g, float *x, float *P, bool to_x) {
    const int64_t HoWo = g->Ho * g->Wo, rows = g->N * HoWo;
#pragma omp parallel for if (rows * g->K > T_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / HoWo, oy = (r % HoWo) / g->Wo, ox = r % g->Wo;
        float *p = P + r * g->K;
        for (int64_t c = 0; c < g->Cin; c++)
            for (int64_t i = 0; i < g->kh; i++) {
                float *src = x + ((n * g->Cin + c) * g->H + oy * g->kh + i) * g->W + ox * g->kw;
                float *dst = p + (c * g->kh + i) * g->kw;
                if (to_x)
                    for (int64_t j = 0; j < g->kw; j++) src[j] += dst[j];
                else
                    memcpy(dst, src, sizeof(float) * (size_t)g->kw);
            }
    }
}

/* dst [N, B, A] = src [N, A, B] (transpose per image) */
static void swap_last_two(const float *src, float *dst, int64_t N, int64_t A, int64_t B) {
#pragma omp parallel for collapse(2) if (N * A * B > T_PAR_MIN) schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < B; b++) {
            const float *s = src + n * A * B + b;
            float *d = dst + (n * B + b) * A;
            for (int64_t a = 0; a < A; a++) d[a] = s[a * B];
        }
}

void conv_patchify_forward(const ConvGeom *g, const float *x, const float *w, const float *b, float *y) {
    const int64_t HoWo = g->Ho * g->Wo, R = g->N * HoWo;
    size_t mark = t_arena_mark();
    float *P = t_arena_alloc(sizeof(float) * (size_t)(R * g->K));        /* [R, K] */
    float *T = t_arena_alloc(sizeof(float) * (size_t)(R * g->Cout));     /* [N, HoWo, Cout] */
    if (!P || !T) {   /* out of memory (reported): the caller sees t_arena_failed() */
        t_arena_release(mark);
        return;
    }
    patches(g, (float *)x, P, false);
    t_sgemm_bias(false, true, R, g->Cout, g->K, 1.0f, P, g->K, w, g->K, 0.0f, T, g->Cout, NULL, b);
    swap_last_two(T, y, g->N, HoWo, g->Cout);
    t_arena_release(mark);
}

void conv_patchify_backward(const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db) {
    const int64_t HoWo = g->Ho * g->Wo, R = g->N * HoWo;
    size_t mark = t_arena_mark();
    float *dT = t_arena_alloc(sizeof(float) * (size_t)(R * g->Cout));    /* [N, HoWo, Cout] */
    float *P = t_arena_alloc(sizeof(float) * (size_t)(R * g->K));        /* [R, K] */
    if (!dT || !P) {   /* out of memory (reported): t_backward reports it */
        t_arena_release(mark);
        return;
    }
    swap_last_two(dy, dT, g->N, g->Cout, HoWo);
    if (db) conv_bias_grad(g, dy, db);
    if (dw) {
        patches(g, (float *)x, P, false);
        t_sgemm(true, false, g->Cout, g->K, R, 1.0f, dT, g->Cout, P, g->K, 1.0f, dw, g->K);
    }
    if (dx) {
        t_sgemm(false, false, R, g->K, g->Cout, 1.0f, dT, g->Cout, w, g->K, 0.0f, P, g->K);
        patches(g, dx, P, true);
    }
    t_arena_release(mark);
}
