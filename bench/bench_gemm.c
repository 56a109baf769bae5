/* GEMM benchmark: our t_sgemm (tensor/gemm.c) against OpenBLAS's cblas_sgemm, alternating, at the shapes
 * this project runs (ViT-B/32 linears and their backward products, 3×3 convolution GEMMs of the U-Net).
 * Prints CSV "shape,ta,tb,ours_ms,blas_ms,ours_gflops,blas_gflops,max_rel_diff"; each time is the
 * median of --reps repetitions. Threads: DACLIP_THREADS (t_init).
 * Usage: bench_gemm [--reps N] */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/gemm.h"
#include "bench/bench_util.h"
#include "tensor/tensor.h"

typedef struct {
    const char *name;
    int64_t M, N, K;
    bool ta, tb;
} Shape;

static const Shape shapes[] = {
    {"vit qkv x·Wᵀ", 400, 2304, 768, false, true},
    {"vit out x·Wᵀ", 400, 768, 768, false, true},
    {"vit fc x·Wᵀ", 400, 3072, 768, false, true},
    {"vit proj x·Wᵀ", 400, 768, 3072, false, true},
    {"vit fc dX=dY·W", 400, 768, 3072, false, false},
    {"vit fc dW=dYᵀ·X", 3072, 768, 400, true, false},
    {"conv3x3 fwd W·col", 64, 16384, 576, false, false},
    {"conv3x3 dW dY·colᵀ", 64, 576, 16384, false, true},
    {"conv3x3 dcol Wᵀ·dY", 576, 16384, 64, true, false},
    {"square 1024", 1024, 1024, 1024, false, false},
};

static void fill(float *p, int64_t n, unsigned *s) {
    for (int64_t i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        p[i] = (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

int main(int argc, char **argv) {
    int reps = 11, use_min = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min")) use_min = 1;
        else {
            fprintf(stderr, "usage: bench_gemm [--reps N]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 101) reps = 11;
    t_init();
    printf("# backend %s\nshape,M,N,K,ta,tb,ours_ms,blas_ms,ours_gflops,blas_gflops,max_rel_diff\n", t_sgemm_backend());
    unsigned seed = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const Shape *s = &shapes[si];
        float *A = malloc(sizeof(float) * s->M * s->K), *B = malloc(sizeof(float) * s->K * s->N);
        float *C1 = malloc(sizeof(float) * s->M * s->N), *C2 = malloc(sizeof(float) * s->M * s->N);
        fill(A, s->M * s->K, &seed);
        fill(B, s->K * s->N, &seed);
        int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
        double t_ours[101], t_blas[101];
        for (int r = -1; r < reps; r++) {
            double t0 = now_s();
            t_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C1, s->N);
            double t1 = now_s();
            cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                        (int)s->M, (int)s->N, (int)s->K, 1.0f, A, (int)lda, B, (int)ldb, 0.0f, C2, (int)s->N);
            double t2 = now_s();
            if (r >= 0) {
                t_ours[r] = (t1 - t0) * 1e3;
                t_blas[r] = (t2 - t1) * 1e3;
            }
        }
        double maxd = 0, maxv = 0;
        for (int64_t i = 0; i < s->M * s->N; i++) {
            double d = fabs((double)C1[i] - C2[i]);
            if (d > maxd) maxd = d;
            if (fabs(C2[i]) > maxv) maxv = fabs(C2[i]);
        }
        qsort(t_ours, (size_t)reps, sizeof(double), cmp_double);
        qsort(t_blas, (size_t)reps, sizeof(double), cmp_double);
        double fl = 2.0 * s->M * s->N * s->K / 1e6, mo = t_ours[use_min ? 0 : reps / 2], mb = t_blas[use_min ? 0 : reps / 2];
        printf("%s,%lld,%lld,%lld,%d,%d,%.3f,%.3f,%.1f,%.1f,%.2e\n", s->name, (long long)s->M, (long long)s->N,
               (long long)s->K, s->ta, s->tb, mo, mb, fl / mo, fl / mb, maxv > 0 ? maxd / maxv : maxd);
        fflush(stdout);
        free(A), free(B), free(C1), free(C2);
    }
    /* implicit-GEMM convolution (t_sgemm_shifted) against the same product on a materialised im2col */
    const int64_t convs[][4] = {{4, 64, 128, 128}, {4, 128, 64, 64}, {4, 128, 32, 32}};   /* N, C, H, W; 3×3 pad 1 */
    printf("conv_shape,ours_shifted_ms,ours_dense_ms,blas_dense_ms,shifted_gflops\n");
    for (size_t ci = 0; ci < sizeof convs / sizeof convs[0]; ci++) {
        int64_t n = convs[ci][0], C = convs[ci][1], Hp = convs[ci][2] + 2, Wp = convs[ci][3] + 2, K = C * 9;
        int64_t plane = n * Hp * Wp, Nq = plane - 2 * Wp;
        float *src = calloc((size_t)(C * plane + 128), sizeof(float)), *W = malloc(sizeof(float) * (size_t)(C * K));
        float *col = malloc(sizeof(float) * (size_t)(K * Nq)), *Cm = malloc(sizeof(float) * (size_t)(C * plane));
        int64_t *off = malloc(sizeof(int64_t) * (size_t)K);
        fill(src, C * plane, &seed);
        fill(W, C * K, &seed);
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < 3; i++)
                for (int64_t j = 0; j < 3; j++) off[(c * 3 + i) * 3 + j] = c * plane + i * Wp + j;
        for (int64_t k = 0; k < K; k++) memcpy(col + k * Nq, src + off[k], sizeof(float) * (size_t)Nq);
        double ts[101], td[101], tb[101];
        for (int r = -1; r < reps; r++) {
            double t0 = now_s();
            t_sgemm_shifted(false, C, Nq, K, 1.0f, W, K, src, off, 0.0f, Cm, plane, NULL);
            double t1 = now_s();
            t_sgemm(false, false, C, Nq, K, 1.0f, W, K, col, Nq, 0.0f, Cm, plane);
            double t2 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C, (int)Nq, (int)K, 1.0f, W, (int)K, col,
                        (int)Nq, 0.0f, Cm, (int)plane);
            double t3 = now_s();
            if (r >= 0) ts[r] = (t1 - t0) * 1e3, td[r] = (t2 - t1) * 1e3, tb[r] = (t3 - t2) * 1e3;
        }
        qsort(ts, (size_t)reps, sizeof(double), cmp_double);
        qsort(td, (size_t)reps, sizeof(double), cmp_double);
        qsort(tb, (size_t)reps, sizeof(double), cmp_double);
        int m = use_min ? 0 : reps / 2;
        printf("%lldx%lldx%lldx%lld k3,%.3f,%.3f,%.3f,%.1f\n", (long long)n, (long long)C, (long long)convs[ci][2],
               (long long)convs[ci][3], ts[m], td[m], tb[m], 2.0 * C * Nq * K / 1e6 / ts[m]);
        free(src), free(W), free(col), free(Cm), free(off);
    }
    return 0;
}
