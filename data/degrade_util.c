/* Shared image helpers of the degradations: blur, sparse convolution, smooth noise, sampling, splatting. */
#include "data/degrade_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

float *deg_alloc_floats(size_t n, const char *what) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) data_set_error("degrade: out of memory for %s (%zu floats)", what, n);
    return p;
}

/* Exact separable Gaussian (radius 3σ). tmp holds w×h×c floats. */
static void blur_gauss(float *buf, float *tmp, int w, int h, int c, float sigma, float *kern, int r,
                       float *row) {
    float s = 0.0f;
    for (int k = -r; k <= r; k++) s += kern[k + r] = expf(-0.5f * (float)(k * k) / (sigma * sigma));
    for (int k = 0; k <= 2 * r; k++) kern[k] /= s;
    size_t wc = (size_t)w * c;
    /* horizontal: buf -> tmp, through a row padded by reflection */
    for (int y = 0; y < h; y++) {
        const float *src = buf + (size_t)y * wc;
        for (int x = -r; x < w + r; x++)
            memcpy(row + (size_t)(x + r) * c, src + (size_t)deg_reflect(x, w) * c, (size_t)c * sizeof(float));
        float *dst = tmp + (size_t)y * wc;
        for (size_t i = 0; i < wc; i++) {
            float acc = 0.0f;
            for (int k = 0; k <= 2 * r; k++) acc += kern[k] * row[i + (size_t)k * c];
            dst[i] = acc;
        }
    }
    /* vertical: tmp -> buf, whole rows at a time */
    for (int y = 0; y < h; y++) {
        float *dst = buf + (size_t)y * wc;
        memset(dst, 0, wc * sizeof(float));
        for (int k = -r; k <= r; k++) {
            const float *src = tmp + (size_t)deg_reflect(y + k, h) * wc;
            float g = kern[k + r];
            for (size_t i = 0; i < wc; i++) dst[i] += g * src[i];
        }
    }
}

/* One box pass of radius r along x (in -> out) or y, running sums in double to avoid drift. */
static void box_pass_x(const float *in, float *out, int w, int h, int c, int r) {
    double inv = 1.0 / (2 * r + 1);
    for (int y = 0; y < h; y++) {
        const float *src = in + (size_t)y * w * c;
        float *dst = out + (size_t)y * w * c;
        for (int ch = 0; ch < c; ch++) {
            double s = 0.0;
            for (int k = -r; k <= r; k++) s += src[(size_t)deg_reflect(k, w) * c + ch];
            for (int x = 0; x < w; x++) {
                dst[(size_t)x * c + ch] = (float)(s * inv);
                s += src[(size_t)deg_reflect(x + r + 1, w) * c + ch] - src[(size_t)deg_reflect(x - r, w) * c + ch];
            }
        }
    }
}

static void box_pass_y(const float *in, float *out, int w, int h, int c, int r, double *acc) {
    size_t wc = (size_t)w * c;
    double inv = 1.0 / (2 * r + 1);
    memset(acc, 0, wc * sizeof(double));
    for (int k = -r; k <= r; k++) {
        const float *src = in + (size_t)deg_reflect(k, h) * wc;
        for (size_t i = 0; i < wc; i++) acc[i] += src[i];
    }
    for (int y = 0; y < h; y++) {
        float *dst = out + (size_t)y * wc;
        const float *add = in + (size_t)deg_reflect(y + r + 1, h) * wc;
        const float *sub = in + (size_t)deg_reflect(y - r, h) * wc;
        for (size_t i = 0; i < wc; i++) {
            dst[i] = (float)(acc[i] * inv);
            acc[i] += add[i] - sub[i];
        }
    }
}

int deg_blur(float *buf, int w, int h, int c, float sigma) {
    if (!(sigma > 0.0f)) return 0;
    size_t n = (size_t)w * h * c;
    float *tmp = deg_alloc_floats(n, "blur buffer");
    if (!tmp) return -1;
    if (sigma <= 6.0f) {
        int r = (int)ceilf(3.0f * sigma);
        float *kern = deg_alloc_floats((size_t)(2 * r + 1), "blur kernel");
        float *row = deg_alloc_floats((size_t)(w + 2 * r) * c, "blur row");
        if (!kern || !row) { free(kern); free(row); free(tmp); return -1; }
        blur_gauss(buf, tmp, w, h, c, sigma, kern, r, row);
        free(kern);
        free(row);
    } else {
        /* three boxes of radius r have variance 3·((2r+1)²−1)/12 = σ²  =>  2r+1 = sqrt(4σ²+1) */
        int r = (int)lrintf((sqrtf(4.0f * sigma * sigma + 1.0f) - 1.0f) * 0.5f);
        double *acc = malloc((size_t)w * c * sizeof(double));
        if (!acc) { free(tmp); data_set_error("degrade: out of memory for blur sums"); return -1; }
        for (int pass = 0; pass < 3; pass++) {
            box_pass_x(buf, tmp, w, h, c, r);
            box_pass_y(tmp, buf, w, h, c, r, acc);
        }
        free(acc);
    }
    free(tmp);
    return 0;
}

void deg_convolve_taps(const float *in, float *out, int w, int h, int c, const int *dx, const int *dy,
                       const float *wt, size_t n) {
    size_t wc = (size_t)w * c;
    memset(out, 0, wc * h * sizeof(float));
    for (size_t k = 0; k < n; k++) {
        int ox = dx[k];
        /* x range where x+ox stays inside the row: a straight shifted copy; reflect only at the ends */
        int x0 = ox < 0 ? -ox : 0, x1 = ox > 0 ? w - ox : w;
        if (x0 > w) x0 = w;
        if (x1 < x0) x1 = x0;
        float g = wt[k];
        for (int y = 0; y < h; y++) {
            const float *src = in + (size_t)deg_reflect(y + dy[k], h) * wc;
            float *dst = out + (size_t)y * wc;
            for (int x = 0; x < x0; x++)
                for (int ch = 0; ch < c; ch++) dst[(size_t)x * c + ch] += g * src[(size_t)deg_reflect(x + ox, w) * c + ch];
            const float *s = src + (ptrdiff_t)ox * c;
            for (size_t i = (size_t)x0 * c; i < (size_t)x1 * c; i++) dst[i] += g * s[i];
            for (int x = x1; x < w; x++)
                for (int ch = 0; ch < c; ch++) dst[(size_t)x * c + ch] += g * src[(size_t)deg_reflect(x + ox, w) * c + ch];
        }
    }
}

void deg_value_noise(float *out, int w, int h, float cell, int octaves, Pcg32 *rng) {
    memset(out, 0, (size_t)w * h * sizeof(float));
    float amp = 1.0f, total = 0.0f;
    for (int o = 0; o < octaves; o++, cell *= 0.5f, amp *= 0.5f) {
        if (cell < 1.0f) cell = 1.0f;
        int gw = (int)((float)w / cell) + 2, gh = (int)((float)h / cell) + 2;
        float *grid = malloc((size_t)gw * gh * sizeof(float));
        if (!grid) break;   /* a coarser field is still a valid smooth field */
        for (size_t i = 0; i < (size_t)gw * gh; i++) grid[i] = pcg_uniform(rng);
        /* random sub-cell offset so lattice lines of different octaves do not line up */
        float offx = pcg_uniform(rng), offy = pcg_uniform(rng);
        for (int y = 0; y < h; y++) {
            float gyf = (float)y / cell + offy;
            int gy = (int)gyf;
            if (gy > gh - 2) gy = gh - 2;
            float ty = deg_smoothstep(0.0f, 1.0f, gyf - (float)gy);
            for (int x = 0; x < w; x++) {
                float gxf = (float)x / cell + offx;
                int gx = (int)gxf;
                if (gx > gw - 2) gx = gw - 2;
                float tx = deg_smoothstep(0.0f, 1.0f, gxf - (float)gx);
                const float *g0 = grid + (size_t)gy * gw + gx, *g1 = g0 + gw;
                float v = (g0[0] * (1 - tx) + g0[1] * tx) * (1 - ty) + (g1[0] * (1 - tx) + g1[1] * tx) * ty;
                out[(size_t)y * w + x] += amp * v;
            }
        }
        free(grid);
        total += amp;
    }
    if (total > 0.0f)
        for (size_t i = 0; i < (size_t)w * h; i++) out[i] /= total;
}

void deg_sample_bilinear(const float *buf, int w, int h, int c, float x, float y, float *out) {
    if (x < 0.0f) x = 0.0f;
    if (y < 0.0f) y = 0.0f;
    if (x > (float)(w - 1)) x = (float)(w - 1);
    if (y > (float)(h - 1)) y = (float)(h - 1);
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    float tx = x - (float)x0, ty = y - (float)y0;
    const float *p00 = buf + ((size_t)y0 * w + x0) * c, *p01 = buf + ((size_t)y0 * w + x1) * c;
    const float *p10 = buf + ((size_t)y1 * w + x0) * c, *p11 = buf + ((size_t)y1 * w + x1) * c;
    for (int ch = 0; ch < c; ch++)
        out[ch] = (p00[ch] * (1 - tx) + p01[ch] * tx) * (1 - ty) + (p10[ch] * (1 - tx) + p11[ch] * tx) * ty;
}

void deg_splat(float *plane, int w, int h, float x, float y, float v) {
    if (!(x > -1.0f && y > -1.0f && x < (float)w && y < (float)h)) return;
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float tx = x - (float)x0, ty = y - (float)y0;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int xx = x0 + i, yy = y0 + j;
            if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
            plane[(size_t)yy * w + xx] += v * (i ? tx : 1 - tx) * (j ? ty : 1 - ty);
        }
}
