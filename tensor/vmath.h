#ifndef DACLIP_TENSOR_VMATH_H
#define DACLIP_TENSOR_VMATH_H
/* Branch-free float math that GCC vectorises inside loops (libm's expf/erff are scalar calls unless
 * -ffast-math). Accuracy: t_expf ~1 ulp on [-87, 88] (clamped outside; Cephes coefficients);
 * t_erfcf_pos relative error ~1e-7 for moderate z (Numerical Recipes' Chebyshev fit), growing to
 * ~1e-5 only where erfc < 1e-20. */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float t_expf(float x) {
    /* plain compares and the 1.5*2^23 rounding trick: fminf/rintf would be libm calls without -ffast-math */
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;   /* x - k ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;   /* 2^k */
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

/* erfc(z) for z >= 0 */
static inline float t_erfcf_pos(float z) {
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * t_expf(p - z * z);
}

/* Phi(x) = P(N(0,1) <= x) = 0.5 erfc(-x/sqrt 2), accurate in both tails */
static inline float t_normal_cdf(float x) {
    float h = 0.5f * t_erfcf_pos(fabsf(x) * 0.70710678118654752f);
    return x >= 0.0f ? 1.0f - h : h;
}

#endif
