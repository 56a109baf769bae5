#ifndef DACLIP_NN_FAST_MATH_H
#define DACLIP_NN_FAST_MATH_H
/* Branch-free exp and erf for the fused elementwise kernels of nn/ (libm's expf/erff are one call per
 * element and block vectorisation). Straight-line float code, so loops using them vectorise under T_SIMD.
 *   nn_expf: Cephes range reduction + degree-6 polynomial, ~2 ulp on [-87, 88]; inputs are clamped there
 *            (exp(-87) ~ 1.6e-38 stands in for anything smaller).
 *   nn_erff: Abramowitz & Stegun 7.1.26, |error| <= 6e-7 absolute in float (1.5e-7 in exact arithmetic). */
#include <math.h>
#include <stdint.h>

static inline float nn_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* n = round(x / ln 2) by the 1.5·2^23 trick (floorf blocks vectorisation without -ffast-math) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};   /* 2^n, n in [-126, 127] */
    return p * scale.f;
}

static inline float nn_sigmoidf(float z) { return 1.0f / (1.0f + nn_expf(-z)); }

static inline float nn_erff(float x) {
    float a = fabsf(x), t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float y = 1.0f - poly * nn_expf(-a * a);
    return copysignf(y, x);
}

#endif
