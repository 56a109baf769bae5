/* The universal U-Net's convolutions one by one (batch 1, 256² input; --batch 4 --size 128 for the training
 * shapes), no tape: t_conv2d against a dense GEMM of the same M×N×K (t_sgemm with op(B) a materialised
 * [K, N] matrix, N = output pixels), alternating, median of --reps. Prints CSV: shape, conv ms, GEMM ms,
 * conv GFLOP/s, conv time / GEMM time (1.0 = "runs at GEMM speed"; medians, then the fastest runs).
 * Upsampling cases run the fused op (tensor/conv_fused.h: 2×2 phase kernels, 4/9 of the work); their
 * GFLOP/s and GEMM count the 3×3 convolution of the upsampled image, i.e. what they replace.
 * With --grad, times forward+backward of the convolution (dX and dW) against three GEMMs of the same sizes.
 * Options: --reps N (7), --batch N (1), --size PX (256), --grad, --only SUBSTRING (of the printed label). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "tensor/conv_fused.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

typedef struct {
    const char *what;
    int cin, cout, k, stride, pad, level;   /* level: input plane is size >> level */
    bool upsample;                          /* nearest ×2 before the convolution */
} ConvCase;

static const ConvCase cases[] = {
    {"resblock 3x3", 64, 64, 3, 1, 1, 0, false},    {"up resblock 3x3", 128, 64, 3, 1, 1, 0, false},
    {"resblock 3x3", 128, 128, 3, 1, 1, 1, false},  {"up resblock 3x3", 192, 128, 3, 1, 1, 1, false},
    {"resblock 3x3", 256, 256, 3, 1, 1, 2, false},  {"up resblock 3x3", 384, 256, 3, 1, 1, 2, false},
    {"resblock 3x3", 512, 512, 3, 1, 1, 3, false},  {"up resblock 3x3", 768, 512, 3, 1, 1, 3, false},
    {"upsample+3x3", 512, 256, 3, 1, 1, 3, true},   {"upsample+3x3", 256, 128, 3, 1, 1, 2, true},
    {"upsample+3x3", 128, 64, 3, 1, 1, 1, true},    {"down 4x4 s2", 64, 128, 4, 2, 1, 0, false},
    {"down 4x4 s2", 128, 256, 4, 2, 1, 1, false},   {"down 4x4 s2", 256, 512, 4, 2, 1, 2, false},
    {"to_qkv 1x1", 64, 384, 1, 1, 0, 0, false},     {"res_conv 1x1", 128, 64, 1, 1, 0, 0, false},
    {"init 7x7", 6, 64, 7, 1, 3, 0, false},
};

static Tensor *rnd(int ndim, const int64_t *shape, TRng *r) {
    Tensor *t = t_new(ndim, shape);
    t_fill_uniform(t, r, -1.0f, 1.0f);
    return t;
}

int main(int argc, char **argv) {
    int reps = 7, batch = 1, size = 256;
    bool grad = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--grad")) grad = true;
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--size")) size = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--only")) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_unet_convs [--reps N] [--batch N] [--size PX] [--grad] [--only S]\n");
            return 2;
        }
    }
    t_init();
    TRng rng;
    rng_seed(&rng, 1);
    printf("shape,conv_ms,gemm_ms,conv_gflops,conv_over_gemm,min_conv_over_min_gemm\n");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const ConvCase *cc = &cases[c];
        int64_t H = size >> cc->level, Hc = cc->upsample ? 2 * H : H;
        char label[96];
        snprintf(label, sizeof label, "%s %d->%d %lldx%lld%s", cc->what, cc->cin, cc->cout, (long long)H, (long long)H,
                 grad ? " fwd+bwd" : "");
        if (only && !strstr(label, only)) continue;
        int64_t Ho = (Hc + 2 * cc->pad - cc->k) / cc->stride + 1, N = (int64_t)batch * Ho * Ho;
        int64_t K = (int64_t)cc->cin * cc->k * cc->k;
        double flops = 2.0 * cc->cout * N * K * (grad ? 3 : 1);
        double *tc = malloc(sizeof(double) * (size_t)reps), *tg = malloc(sizeof(double) * (size_t)reps);
        for (int r = 0; r <= reps; r++) {
            t_arena_reset();
            bool prev = t_set_grad_enabled(grad);
            Tensor *x = rnd(T_SHAPE(batch, cc->cin, H, H), &rng);
            Tensor *w = rnd(T_SHAPE(cc->cout, cc->cin, cc->k, cc->k), &rng);
            if (grad) {
                t_requires_grad(x);
                t_requires_grad(w);
            }
            double t0 = now_s();
            ConvFusedArgs a = {.x = x, .w = w, .stride = cc->stride, .pad = cc->pad, .upsample2x = cc->upsample};
            Tensor *y = t_conv2d_fused(&a);
            if (grad) t_backward(t_sum(y, 0, NULL, false));
            double t1 = now_s();
            t_set_grad_enabled(prev);
            Tensor *b = rnd(T_SHAPE(K, N), &rng), *o = t_new(T_SHAPE(cc->cout, N));
            double t2 = now_s();
            t_sgemm(false, false, cc->cout, N, K, 1.0f, w->data, K, b->data, N, 0.0f, o->data, N);
            if (grad) {
                Tensor *dx = t_new(T_SHAPE(K, N)), *dw = t_new(T_SHAPE(cc->cout, K));
                t_sgemm(true, false, K, N, cc->cout, 1.0f, w->data, K, o->data, N, 0.0f, dx->data, N);
                t_sgemm(false, true, cc->cout, K, N, 1.0f, o->data, N, b->data, N, 0.0f, dw->data, K);
            }
            double t3 = now_s();
            if (r > 0) tc[r - 1] = t1 - t0, tg[r - 1] = t3 - t2;
        }
        qsort(tc, (size_t)reps, sizeof(double), cmp_double);
        qsort(tg, (size_t)reps, sizeof(double), cmp_double);
        double mc = tc[reps / 2], mg = tg[reps / 2];
        printf("%s,%.2f,%.2f,%.1f,%.2f,%.2f\n", label, 1e3 * mc, 1e3 * mg, flops / mc / 1e9, mc / mg, tc[0] / tg[0]);
        fflush(stdout);
        free(tc);
        free(tg);
    }
    t_arena_shutdown();
    return 0;
}
