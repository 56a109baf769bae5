/* Row kernels of the ResBlock's activations (see tensor/conv_act.h). */
#include "tensor/conv_act.h"

#include "tensor/simd.h"
#include "tensor/vmath.h"

static inline float sigmoid_(float z) { return 1.0f / (1.0f + t_expf(-z)); }

/* silu'(z) = sigmoid(z)·(1 + z·(1 − sigmoid(z))) */
static inline float dsilu_(float z) {
    float sg = sigmoid_(z);
    return sg * (1.0f + z * (1.0f - sg));
}

T_SIMD void act_sss_forward(const float *z, float *y, int64_t n, float a, float s) {
    for (int64_t i = 0; i < n; i++) {
        float v = z[i] * a + s;
        y[i] = v * sigmoid_(v);
    }
}

T_SIMD void act_sss_backward(const float *z, const float *dy, float *dz, bool add, int64_t n, float a, float s,
                             float *dscale, float *dshift) {
    float ds = 0.0f, db = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float g = dy[i] * dsilu_(z[i] * a + s);
        if (dz) dz[i] = add ? dz[i] + g * a : g * a;
        ds += g * z[i];
        db += g;
    }
    *dscale = ds;
    *dshift = db;
}

T_SIMD void act_silu_add_forward(const float *z, const float *r, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = z[i] * sigmoid_(z[i]) + r[i];
}

T_SIMD void act_silu_backward(const float *z, const float *dy, float *dz, bool add, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = dy[i] * dsilu_(z[i]);
        dz[i] = add ? dz[i] + g : g;
    }
}
