/* The IR-SDE U-Net blocks, batch 4, forward (no grad) and forward+backward; PyTorch side in
 * bench/bench_unet_blocks_torch.py, both run by scripts/bench-unet-blocks.sh.
 *   spatial_transformer  Residual(PreNorm(256, SpatialTransformer(256, 8×32, context 512))) on [4,256,32,32],
 *                        context [4,1,512]
 *   resblock             ResBlock 128 -> 128 with a 256-wide time embedding on [4,128,64,64]
 * The backward seeds d out = 1 and computes every parameter and input gradient (inputs require grad).
 * Prints CSV rows: impl,block,mode,threads,batch,ms_per_iter,ms_best,cpu_ms_per_iter,peak_rss_mb
 * Usage: bench_unet_blocks [--iters N] [--warmup N] [--only st|resblock]   (threads: DACLIP_THREADS) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nn/module.h"
#include "nn/resblock.h"
#include "nn/spatial_transformer.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

#define BATCH 4

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

typedef struct {
    SpatialTransformerBlock st;
    ResBlock rb;
    ParamSet *ps;
    float *x, *ctx;       /* persistent inputs (malloc), copied into the arena each step */
    int64_t x_shape[4], ctx_shape[3];
    bool is_st;
} Bench;

/* One step: reset the arena, forward, and (when grad) backward with d out = 1. */
static void step(Bench *b, bool grad) {
    t_arena_reset();
    bool prev = t_set_grad_enabled(grad);
    Tensor *x = t_from(4, b->x_shape, b->x), *c = t_from(b->is_st ? 3 : 2, b->ctx_shape, b->ctx);
    if (grad) {
        params_zero_grad_lazy(b->ps);
        t_requires_grad(x);
        t_requires_grad(c);
    }
    Tensor *out = b->is_st ? spatial_transformer_block_forward(&b->st, x, c) : resblock_forward(&b->rb, x, c);
    if (!out) {
        fprintf(stderr, "bench_unet_blocks: forward failed\n");
        exit(1);
    }
    if (grad) t_backward(out);
    t_set_grad_enabled(prev);
}

static void run(Bench *b, const char *name, bool grad, int warmup, int iters) {
    for (int i = 0; i < warmup; i++) step(b, grad);
    double total = 0, best = 1e30, cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < iters; i++) {
        double t0 = clock_s(CLOCK_MONOTONIC);
        step(b, grad);
        double dt = clock_s(CLOCK_MONOTONIC) - t0;
        total += dt;
        if (dt < best) best = dt;
    }
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("c,%s,%s,%d,%d,%.2f,%.2f,%.2f,%.0f\n", name, grad ? "fwdbwd" : "fwd", t_threads(), BATCH,
           1e3 * total / iters, 1e3 * best, 1e3 * cpu / iters, peak_rss_mb());
    fflush(stdout);
}

static float *random_buffer(int64_t n, TRng *r) {
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) {
        fprintf(stderr, "bench_unet_blocks: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = rng_normal(r);
    return p;
}

/* Random inputs, both modes, then frees the inputs and the parameters. */
static void bench_block(Bench *b, const char *name, int64_t ctx_numel, TRng *r, int warmup, int iters) {
    b->x = random_buffer(b->x_shape[0] * b->x_shape[1] * b->x_shape[2] * b->x_shape[3], r);
    b->ctx = random_buffer(ctx_numel, r);
    run(b, name, false, warmup, iters);
    run(b, name, true, warmup, iters);
    free(b->x);
    free(b->ctx);
    params_free(b->ps);
}

int main(int argc, char **argv) {
    int iters = 10, warmup = 2;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--iters N] [--warmup N] [--only st|resblock]\n", argv[0]);
            return 2;
        }
    }
    if (iters < 1) iters = 1;
    t_init();
    TRng r;
    rng_seed(&r, 0);
    printf("impl,block,mode,threads,batch,ms_per_iter,ms_best,cpu_ms_per_iter,peak_rss_mb\n");

    if (!only || !strcmp(only, "st")) {
        ParamSet ps;
        params_init(&ps);
        Bench b = {.ps = &ps, .is_st = true, .x_shape = {BATCH, 256, 32, 32}, .ctx_shape = {BATCH, 1, 512}};
        spatial_transformer_block_init(&b.st, &ps, "downs.3.2", 256, 8, 32, 512, &r);
        bench_block(&b, "spatial_transformer", BATCH * 512, &r, warmup, iters);
    }
    if (!only || !strcmp(only, "resblock")) {
        ParamSet ps;
        params_init(&ps);
        Bench b = {.ps = &ps, .is_st = false, .x_shape = {BATCH, 128, 64, 64}, .ctx_shape = {BATCH, 256}};
        resblock_init(&b.rb, &ps, "downs.2.0", 128, 128, 256, &r);
        bench_block(&b, "resblock", BATCH * 256, &r, warmup, iters);
    }
    t_arena_shutdown();
    return 0;
}
