/* ResBlock with time-embedding scale/shift, and its fused modulation + SiLU op. */
#include "nn/resblock.h"

#include <math.h>

#include "tensor/ops.h"
#include "tensor/simd.h"
#include "tensor/vmath.h"

void resblock_init(ResBlock *b, ParamSet *ps, const char *prefix, int64_t dim_in, int64_t dim_out,
                   int64_t time_emb_dim, TRng *r) {
    char p[256];
    /* registration order follows the PyTorch module: mlp, block1, block2, res_conv */
    b->has_mlp = time_emb_dim > 0;
    if (b->has_mlp) linear_init(&b->mlp, ps, nn_join(p, sizeof p, prefix, "mlp.1"), time_emb_dim, 2 * dim_out, true, r);
    conv2d_init(&b->block1, ps, nn_join(p, sizeof p, prefix, "block1.proj"), dim_in, dim_out, 3, 1, 1, false, r);
    conv2d_init(&b->block2, ps, nn_join(p, sizeof p, prefix, "block2.proj"), dim_out, dim_out, 3, 1, 1, false, r);
    b->has_res_conv = dim_in != dim_out;
    if (b->has_res_conv)
        conv2d_init(&b->res_conv, ps, nn_join(p, sizeof p, prefix, "res_conv"), dim_in, dim_out, 1, 1, 0, false, r);
}

Tensor *resblock_forward(const ResBlock *b, Tensor *x, Tensor *temb) {
    Tensor *h = conv2d_forward(&b->block1, x);                            /* [N, Cout, H, W] */
    if (b->has_mlp && temb)
        h = nn_scale_shift_silu(h, linear_forward(&b->mlp, t_silu(temb)));   /* ss [N, 2·Cout] */
    else
        h = t_silu(h);
    /* block2's SiLU and the residual add in one pass */
    return nn_silu_add(conv2d_forward(&b->block2, h), b->has_res_conv ? conv2d_forward(&b->res_conv, x) : x);
}

/* ---------------------------------------------------------------- fused scale/shift + SiLU */

static inline float sigmoid_(float z) { return 1.0f / (1.0f + t_expf(-z)); }

/* One (n, c) plane of P pixels: y = silu(h·a + s) with a = 1 + scale. */
T_SIMD static void sss_plane_forward(const float *h, float *y, int64_t P, float a, float s) {
    for (int64_t i = 0; i < P; i++) {
        float z = h[i] * a + s;
        y[i] = z * sigmoid_(z);
    }
}

/* dz = dy·silu'(z); dh += dz·a; returns (Σ dz·h, Σ dz) for d scale and d shift. */
T_SIMD static void sss_plane_backward(const float *h, const float *dy, float *dh, int64_t P, float a, float s,
                                      float *dscale, float *dshift) {
    float ds = 0.0f, db = 0.0f;
    for (int64_t i = 0; i < P; i++) {
        float z = h[i] * a + s, sg = sigmoid_(z);
        float dz = dy[i] * sg * (1.0f + z * (1.0f - sg));
        if (dh) dh[i] += dz * a;
        ds += dz * h[i];
        db += dz;
    }
    *dscale = ds;
    *dshift = db;
}

static void scale_shift_silu_backward(TNode *n) {
    Tensor *h = n->in[0], *ss = n->in[1], *y = n->out;
    int64_t N = h->shape[0], C = h->shape[1], P = t_numel(h) / (N * C);
    float *dh = h->requires_grad ? t_grad_buf(h) : NULL;
    float *dss = ss->requires_grad ? t_grad_buf(ss) : NULL;
#pragma omp parallel for schedule(static) if (N * C * P > 32768)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t b = nc / C, c = nc % C;
        float a = 1.0f + ss->data[b * 2 * C + c], s = ss->data[b * 2 * C + C + c], dscale, dshift;
        sss_plane_backward(h->data + nc * P, y->grad + nc * P, dh ? dh + nc * P : NULL, P, a, s, &dscale, &dshift);
        if (dss) {   /* each (b, c) pair is owned by one iteration: no race */
            dss[b * 2 * C + c] += dscale;
            dss[b * 2 * C + C + c] += dshift;
        }
    }
}

Tensor *nn_scale_shift_silu(Tensor *h, Tensor *ss) {
    if (!h || !ss) return NULL;
    char sh[96], sv[96];
    if (h->ndim < 2 || ss->ndim != 2 || ss->shape[0] != h->shape[0] || ss->shape[1] != 2 * h->shape[1]) {
        t_error("scale_shift_silu", "h %s needs ss [N, 2C], got %s", t_shape_str(h, sh, sizeof sh),
                t_shape_str(ss, sv, sizeof sv));
        return NULL;
    }
    h = t_contiguous(h);
    ss = t_contiguous(ss);
    int64_t N = h->shape[0], C = h->shape[1], P = t_numel(h) / (N * C);
    Tensor *y = t_new_like(h);
#pragma omp parallel for schedule(static) if (N * C * P > 32768)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t b = nc / C, c = nc % C;
        sss_plane_forward(h->data + nc * P, y->data + nc * P, P, 1.0f + ss->data[b * 2 * C + c],
                          ss->data[b * 2 * C + C + c]);
    }
    Tensor *in[2] = {h, ss};
    t_record("scale_shift_silu", y, scale_shift_silu_backward, 2, in);
    return y;
}

/* ---------------------------------------------------------------- fused SiLU + residual */

T_SIMD static void silu_add_forward(const float *a, const float *r, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * sigmoid_(a[i]) + r[i];
}

T_SIMD static void silu_add_backward(const float *a, const float *dy, float *da, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float sg = sigmoid_(a[i]);
        da[i] += dy[i] * sg * (1.0f + a[i] * (1.0f - sg));
    }
}

#define SILU_CHUNK 16384

static void silu_add_backward_node(TNode *n) {
    Tensor *a = n->in[0], *r = n->in[1], *y = n->out;
    int64_t total = t_numel(y);
    if (a->requires_grad) {
        float *da = t_grad_buf(a);
#pragma omp parallel for schedule(static) if (total > 32768)
        for (int64_t c = 0; c < total; c += SILU_CHUNK)
            silu_add_backward(a->data + c, y->grad + c, da + c, total - c < SILU_CHUNK ? total - c : SILU_CHUNK);
    }
    if (r->requires_grad) {
        float *dr = t_grad_buf(r);
#pragma omp parallel for schedule(static) if (total > 32768)
        for (int64_t i = 0; i < total; i++) dr[i] += y->grad[i];
    }
}

Tensor *nn_silu_add(Tensor *a, Tensor *r) {
    if (!a || !r) return NULL;
    char sa[96], sr[96];
    if (!t_same_shape(a, r)) {
        t_error("silu_add", "shapes differ: %s and %s", t_shape_str(a, sa, sizeof sa), t_shape_str(r, sr, sizeof sr));
        return NULL;
    }
    a = t_contiguous(a);
    r = t_contiguous(r);
    Tensor *y = t_new_like(a);
    int64_t total = t_numel(y);
#pragma omp parallel for schedule(static) if (total > 32768)
    for (int64_t c = 0; c < total; c += SILU_CHUNK)
        silu_add_forward(a->data + c, r->data + c, y->data + c, total - c < SILU_CHUNK ? total - c : SILU_CHUNK);
    Tensor *in[2] = {a, r};
    t_record("silu_add", y, silu_add_backward_node, 2, in);
    return y;
}
