/* A 12-layer ViT-B/32-sized stack of ResidualAttentionBlocks (width 768, 12 heads, MLP 3072) on
 * batch × 50 tokens: forward in no-grad mode, and forward+backward (loss = sum of the output), in
 * images/s, with the process's peak RSS (VmHWM). The PyTorch twin is bench/bench_vit_stack_torch.py;
 * scripts/bench-vit-stack.sh runs both side by side.
 * usage: build/bench/bench_vit_stack [--mode fwd|fwdbwd|both] [--iters 5] [--warmup 2] [--batch 8]
 *        [--threads 2] [--layers 12]
 * Prints CSV rows: impl,mode,threads,batch,seconds_per_iter,images_per_s,peak_rss_mb,cpu_s_per_iter,arena_mb
 * (arena_mb: the activation arena's high-water mark, gradients of activations included). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/module.h"
#include "nn/transformer.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Peak resident set size in MiB, from /proc/self/status VmHWM (kB). */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
    fclose(f);
    return kb / 1024.0;
}

typedef struct {
    const Transformer *tf;
    ParamSet *ps;
    Tensor *x_data;   /* persistent input */
    int batch;
} Ctx;

static void step_forward(const Ctx *c) {
    bool prev = t_set_grad_enabled(false);
    Tensor *x = t_wrap(c->x_data->data, T_SHAPE(c->batch, 50, c->tf->width));
    Tensor *y = transformer_forward(c->tf, x, NULL, NULL, NULL);
    if (!y) exit(1);
    t_set_grad_enabled(prev);
    t_arena_reset();
}

static void step_forward_backward(const Ctx *c) {
    params_zero_grad_lazy(c->ps);
    Tensor *x = t_wrap(c->x_data->data, T_SHAPE(c->batch, 50, c->tf->width));
    t_requires_grad(x);   /* as in the torch script: the input gradient is computed too */
    Tensor *y = transformer_forward(c->tf, x, NULL, NULL, NULL);
    if (!y) exit(1);
    t_backward(y);        /* d(sum y)/dy = 1 */
    t_arena_reset();
}

static void run(const char *mode, void (*step)(const Ctx *), const Ctx *c, int warmup, int iters) {
    for (int i = 0; i < warmup; i++) step(c);
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < iters; i++) step(c);
    double s = (clock_s(CLOCK_MONOTONIC) - t0) / iters, cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / iters;
    printf("daclip,%s,%d,%d,%.4f,%.2f,%.1f,%.4f,%.1f\n", mode, t_threads(), c->batch, s, c->batch / s, peak_rss_mb(),
           cpu, t_arena_high_water() / 1048576.0);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *mode = "both";
    int iters = 5, warmup = 2, batch = 8, threads = 0, layers = 12;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: %s [--mode fwd|fwdbwd|both] [--iters N] [--warmup N] [--batch N] [--threads N] "
                   "[--layers N]\n",
                   argv[0]);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "bench_vit_stack: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--layers")) layers = atoi(v);
        else {
            fprintf(stderr, "bench_vit_stack: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    bool mode_ok = !strcmp(mode, "fwd") || !strcmp(mode, "fwdbwd") || !strcmp(mode, "both");
    if (iters < 1 || warmup < 0 || batch < 1 || layers < 1 || !mode_ok) {
        fprintf(stderr, "bench_vit_stack: bad arguments (see --help)\n");
        return 2;
    }
    t_init();
    if (threads > 0) t_set_threads(threads);
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 0);
    Transformer tf;
    if (transformer_init(&tf, &ps, "transformer", 768, layers, 12, 4.0, &r) != 0) return 1;
    Tensor *x = t_param_new(T_SHAPE(batch, 50, 768), false);
    t_fill_normal(x, &r, 0.0f, 1.0f);
    Ctx c = {&tf, &ps, x, batch};
    bool both = !strcmp(mode, "both");
    if (both || !strcmp(mode, "fwd")) run("fwd", step_forward, &c, warmup, iters);
    if (both || !strcmp(mode, "fwdbwd")) run("fwdbwd", step_forward_backward, &c, warmup, iters);
    t_free(x);
    transformer_free(&tf);
    params_free(&ps);
    t_arena_shutdown();
    return 0;
}
