/* Tensor-op benchmark, our side (bench/bench_ops_torch.py is PyTorch's; scripts/bench-ops.sh runs both).
 * Prints CSV "name,shape,ms,gflops" with ms the median over several repetitions of one call (each
 * repetition times enough calls to last ~50 ms). GEMM rows come in pairs: the op through the tensor API
 * and the same product(s) as raw cblas_sgemm calls, so the API overhead shows as a ratio.
 * Threads: DACLIP_THREADS (else OMP_NUM_THREADS, else all cores), applied by t_init().
 * Usage: bench_ops [--reps N] [--filter SUBSTRING] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/ops.h"
#include "bench/bench_util.h"
#include "tensor/tensor.h"

static int reps = 9;
static const char *filter;

typedef void (*BenchFn)(void *ctx);

/* Median milliseconds of one call of fn. */
static double time_ms(BenchFn fn, void *ctx) {
    fn(ctx);   /* warm-up: arena sized, pages touched, BLAS buffers allocated */
    /* calibrate on the fastest of a few calls: on a shared machine one call can include a preemption */
    double one = 1e9, t0;
    for (int i = 0; i < 5; i++) {
        t0 = now_s();
        fn(ctx);
        double t = now_s() - t0;
        if (t < one) one = t;
    }
    int inner = one > 0.05 ? 1 : (int)(0.05 / (one > 1e-6 ? one : 1e-6)) + 1;
    double samples[64];
    int n = reps < 64 ? reps : 64;
    for (int r = 0; r < n; r++) {
        t0 = now_s();
        for (int i = 0; i < inner; i++) fn(ctx);
        samples[r] = (now_s() - t0) / inner * 1e3;
    }
    qsort(samples, (size_t)n, sizeof(double), cmp_double);
    return samples[n / 2];
}

static void report(const char *name, const char *shape, double flops, BenchFn fn, void *ctx) {
    if (filter && !strstr(name, filter)) return;
    double ms = time_ms(fn, ctx);
    printf("%s,%s,%.4f,%.1f\n", name, shape, ms, flops > 0 ? flops / (ms * 1e6) : 0.0);
    fflush(stdout);
}

static Tensor *param_rand(int ndim, const int64_t *shape, float scale, unsigned seed) {
    Tensor *t = t_param_new(ndim, shape, true);
    int64_t n = t_numel(t);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;   /* LCG: libc rand() would dominate the set-up time */
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        t->data[i] = scale * ((float)(s >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
    return t;
}

/* ---------------------------------------------------------------- GEMM at ViT-B/32 shapes */

typedef struct {
    int64_t M, N, K;      /* y[M, N] = x[M, K] W[N, K]^T */
    Tensor *x, *w, *b, *dy;
} Gemm;

static void linear_fwd(void *c) {
    Gemm *g = c;
    bool prev = t_set_grad_enabled(false);
    t_linear(g->x, g->w, NULL);
    t_set_grad_enabled(prev);
    t_arena_reset();
}

static void raw_fwd(void *c) {
    Gemm *g = c;
    float *y = t_arena_alloc(sizeof(float) * (size_t)(g->M * g->N));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->M, (int)g->N, (int)g->K, 1.0f, g->x->data,
                (int)g->K, g->w->data, (int)g->K, 0.0f, y, (int)g->N);
    t_arena_reset();
}

static void matmul_fwd(void *c) {
    Gemm *g = c;
    bool prev = t_set_grad_enabled(false);
    t_matmul(g->x, t_transpose(g->w, 0, 1));   /* W^T as a transpose flag, not a copy */
    t_set_grad_enabled(prev);
    t_arena_reset();
}

static void linear_fwd_bwd(void *c) {
    Gemm *g = c;
    Tensor *y = t_linear(g->x, g->w, NULL);
    t_backward_with(y, g->dy->data);
    t_arena_reset();
}

/* forward + dX = dY W + dW += dY^T X, as raw sgemm calls (the same three products) */
static void raw_fwd_bwd(void *c) {
    Gemm *g = c;
    float *y = t_arena_alloc(sizeof(float) * (size_t)(g->M * g->N));
    float *dx = t_arena_calloc(sizeof(float) * (size_t)(g->M * g->K));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->M, (int)g->N, (int)g->K, 1.0f, g->x->data,
                (int)g->K, g->w->data, (int)g->K, 0.0f, y, (int)g->N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->M, (int)g->K, (int)g->N, 1.0f, g->dy->data,
                (int)g->N, g->w->data, (int)g->K, 1.0f, dx, (int)g->K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g->N, (int)g->K, (int)g->M, 1.0f, g->dy->data,
                (int)g->N, g->x->data, (int)g->K, 1.0f, g->w->grad, (int)g->K);
    t_arena_reset();
}

static void bench_gemm(void) {
    const int64_t shapes[][3] = {{400, 768, 768}, {400, 3072, 768}, {400, 768, 3072}};
    for (int s = 0; s < 3; s++) {
        Gemm g = {shapes[s][0], shapes[s][1], shapes[s][2], NULL, NULL, NULL, NULL};
        g.x = param_rand(T_SHAPE(g.M, g.K), 1.0f, 1);
        g.w = param_rand(T_SHAPE(g.N, g.K), 0.05f, 2);
        g.dy = param_rand(T_SHAPE(g.M, g.N), 1.0f, 3);
        char shape[64];
        snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)g.M, (long long)g.N, (long long)g.K);
        double f = 2.0 * (double)g.M * (double)g.N * (double)g.K;
        report("linear_fwd", shape, f, linear_fwd, &g);
        report("matmul_fwd", shape, f, matmul_fwd, &g);
        report("sgemm_fwd", shape, f, raw_fwd, &g);
        report("linear_fwd_bwd", shape, 3 * f, linear_fwd_bwd, &g);
        report("sgemm_fwd_bwd", shape, 3 * f, raw_fwd_bwd, &g);
        t_free(g.x);
        t_free(g.w);
        t_free(g.dy);
    }
}

/* ---------------------------------------------------------------- conv2d */

typedef struct {
    Tensor *x, *w, *b, *dy;
    int stride, pad;
} Conv;

static void conv_fwd(void *c) {
    Conv *v = c;
    bool prev = t_set_grad_enabled(false);
    t_conv2d(v->x, v->w, v->b, v->stride, v->pad);
    t_set_grad_enabled(prev);
    t_arena_reset();
}

static void conv_fwd_bwd(void *c) {
    Conv *v = c;
    Tensor *y = t_conv2d(v->x, v->w, v->b, v->stride, v->pad);
    t_backward_with(y, v->dy->data);
    t_arena_reset();
}

static void bench_conv(void) {
    /* N, Cin, H, W, Cout, k, stride, pad: the shape first, then U-Net-like extras */
    const int64_t cases[][8] = {{4, 64, 128, 128, 64, 3, 1, 1}, {4, 64, 128, 128, 64, 1, 1, 0},
                                {4, 128, 32, 32, 128, 3, 1, 1}};
    for (int i = 0; i < 3; i++) {
        const int64_t *c = cases[i];
        Conv v = {NULL, NULL, NULL, NULL, (int)c[6], (int)c[7]};
        v.x = param_rand(T_SHAPE(c[0], c[1], c[2], c[3]), 1.0f, 4);
        v.w = param_rand(T_SHAPE(c[4], c[1], c[5], c[5]), 0.05f, 5);
        v.b = param_rand(T_SHAPE(c[4]), 0.1f, 6);
        int64_t ho = (c[2] + 2 * c[7] - c[5]) / c[6] + 1, wo = (c[3] + 2 * c[7] - c[5]) / c[6] + 1;
        v.dy = param_rand(T_SHAPE(c[0], c[4], ho, wo), 1.0f, 7);
        char shape[96];
        snprintf(shape, sizeof shape, "%lldx%lldx%lldx%lld-%lld-k%lld-s%lld-p%lld", (long long)c[0], (long long)c[1],
                 (long long)c[2], (long long)c[3], (long long)c[4], (long long)c[5], (long long)c[6], (long long)c[7]);
        double f = 2.0 * (double)(c[0] * c[4] * ho * wo) * (double)(c[1] * c[5] * c[5]);
        report("conv2d_fwd", shape, f, conv_fwd, &v);
        report("conv2d_fwd_bwd", shape, 3 * f, conv_fwd_bwd, &v);
        t_free(v.x);
        t_free(v.w);
        t_free(v.b);
        t_free(v.dy);
    }
}

/* ---------------------------------------------------------------- memory-bound ops */

enum { E_LAYER_NORM, E_GELU, E_SOFTMAX, E_ADD };
static const char *elt_names[] = {"layer_norm", "gelu", "softmax", "add"};

typedef struct {
    int op;
    Tensor *x, *x2, *w, *b, *dy;
} Elt;

static Tensor *elt_apply(Elt *e) {
    switch (e->op) {
    case E_LAYER_NORM: return t_layer_norm(e->x, e->w, e->b, 1e-5f);
    case E_GELU: return t_gelu(e->x);
    case E_SOFTMAX: return t_softmax(e->x, -1);
    default: return t_add(e->x, e->x2);
    }
}

static void elt_fwd(void *c) {
    bool prev = t_set_grad_enabled(false);
    elt_apply(c);
    t_set_grad_enabled(prev);
    t_arena_reset();
}

static void elt_fwd_bwd(void *c) {
    Elt *e = c;
    Tensor *y = elt_apply(e);
    t_backward_with(y, e->dy->data);
    t_arena_reset();
}

static void bench_elementwise(void) {
    const int64_t shapes[][4] = {{400, 3072, 0, 0}, {4, 64, 128, 128}};
    const int ranks[] = {2, 4};
    for (int s = 0; s < 2; s++)
        for (int op = 0; op < 4; op++) {
            Elt e = {op, NULL, NULL, NULL, NULL, NULL};
            int nd = ranks[s];
            int64_t D = shapes[s][nd - 1];
            e.x = param_rand(nd, shapes[s], 2.0f, 8);
            e.x2 = param_rand(nd, shapes[s], 1.0f, 9);
            e.dy = param_rand(nd, shapes[s], 1.0f, 10);
            e.w = param_rand(T_SHAPE(D), 1.0f, 11);
            e.b = param_rand(T_SHAPE(D), 1.0f, 12);
            char shape[64], name[64];
            if (nd == 2)
                snprintf(shape, sizeof shape, "%lldx%lld", (long long)shapes[s][0], (long long)shapes[s][1]);
            else
                snprintf(shape, sizeof shape, "%lldx%lldx%lldx%lld", (long long)shapes[s][0], (long long)shapes[s][1],
                         (long long)shapes[s][2], (long long)shapes[s][3]);
            snprintf(name, sizeof name, "%s_fwd", elt_names[op]);
            report(name, shape, 0, elt_fwd, &e);
            snprintf(name, sizeof name, "%s_fwd_bwd", elt_names[op]);
            report(name, shape, 0, elt_fwd_bwd, &e);
            t_free(e.x);
            t_free(e.x2);
            t_free(e.dy);
            t_free(e.w);
            t_free(e.b);
        }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1) reps = 1;
        } else if (!strcmp(argv[i], "--filter") && i + 1 < argc) {
            filter = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--reps N] [--filter SUBSTRING]\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    t_init();
    fprintf(stderr, "bench_ops: %d threads, median of %d\n", t_threads(), reps);
    printf("name,shape,ms,gflops\n");
    bench_gemm();
    bench_conv();
    bench_elementwise();
    t_arena_shutdown();
    t_tape_free();
    return 0;
}
