/* The IR-SDE ConditionalUNet at the official universal config (nf 64, ch_mult 1,2,4,8, context 512, both
 * contexts; 48,975,747 parameters), random weights:
 *   --mode fwd    one forward of 1×3×256² (x_t, μ, time, degradation and content embeddings), no tape —
 *                 the call the restoration loop makes 100 times per image;
 *   --mode train  a training step at batch 4, 128²: forward, loss = L1 of ε̂ against a random target
 *                 (mean), backward, AdamW (lr 1e-4, weight decay 0.01 on the decay group).
 * Timed as the median of --reps runs after two warm-ups (the first grows the arena, the second runs on the
 * single block it is then replaced by, whose pages are touched for the first time: a steady state is what
 * the 100 calls of a restoration see). Prints seconds per call, peak RSS (VmHWM), the
 * arena's high-water mark and the fastest repetition. Peers: bench_unet_torch.py (PyTorch) and
 * bench_unet_onnx.js (ONNX Runtime); scripts/bench-unet.sh runs them side by side.
 * Options: --mode fwd|train, --reps N, --size PX, --batch N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/bench_util.h"
#include "irsde/unet.h"
#include "nn/optim.h"
#include "tensor/ops.h"

static Tensor *random_tensor(int ndim, const int64_t *shape, TRng *r, float lo, float hi) {
    Tensor *t = t_new(ndim, shape);
    t_fill_uniform(t, r, lo, hi);
    return t;
}

int main(int argc, char **argv) {
    int reps = 5, size = 0, batch = 0;
    const char *mode = "fwd";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_unet [--mode fwd|train] [--reps N] [--size PX] [--batch N]\n");
            return 2;
        }
    }
    bool train = !strcmp(mode, "train");
    if (!train && strcmp(mode, "fwd")) {
        fprintf(stderr, "bench_unet: --mode fwd or train\n");
        return 2;
    }
    if (!size) size = train ? 128 : 256;
    if (!batch) batch = train ? 4 : 1;
    if (reps < 1 || size < 16 || batch < 1) {
        fprintf(stderr, "bench_unet: bad --reps/--size/--batch\n");
        return 2;
    }
    t_init();
    UNetConfig cfg;
    unet_config_preset("universal", &cfg);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    ConditionalUNet u;
    if (unet_init(&u, &ps, "", &cfg, &rng)) {
        fprintf(stderr, "bench_unet: %s\n", t_errmsg());
        return 1;
    }
    Optim *opt = NULL;
    if (train) {
        OptConfig oc = optim_adamw_config(1e-4, 0.01);
        opt = optim_new(&ps, &oc);
    } else {
        params_freeze(&ps, "", true);
    }
    const int64_t B = batch, H = size, W = size, cd = cfg.context_dim;
    float *time = malloc(sizeof(float) * (size_t)B);
    const int warm = 2;
    double *times = malloc(sizeof(double) * (size_t)(reps + warm));
    size_t arena_hw = 0;
    for (int r = 0; r < reps + warm; r++) {
        t_arena_reset();
        Tensor *xt = random_tensor(T_SHAPE(B, 3, H, W), &rng, -1.0f, 1.0f);
        Tensor *mu = random_tensor(T_SHAPE(B, 3, H, W), &rng, 0.0f, 1.0f);
        Tensor *degra = random_tensor(T_SHAPE(B, cd), &rng, -0.1f, 0.1f);
        Tensor *content = random_tensor(T_SHAPE(B, cd), &rng, -0.1f, 0.1f);
        Tensor *target = train ? random_tensor(T_SHAPE(B, 3, H, W), &rng, -1.0f, 1.0f) : NULL;
        for (int64_t b = 0; b < B; b++) time[b] = (float)(1 + rng_u32(&rng) % 100);
        size_t base = t_arena_used();
        double t0 = now_s();
        if (train) {
            params_zero_grad_lazy(&ps);
            Tensor *eps = unet_forward(&u, xt, mu, time, degra, content);
            if (!eps) return 1;
            t_backward(t_l1_loss(eps, target));
            optim_step(opt);
        } else {
            bool prev = t_set_grad_enabled(false);
            if (!unet_forward(&u, xt, mu, time, degra, content)) return 1;
            t_set_grad_enabled(prev);
        }
        times[r] = now_s() - t0;
        size_t hw = t_arena_high_water() - base;
        if (hw > arena_hw) arena_hw = hw;
    }
    qsort(times + warm, (size_t)reps, sizeof(double), cmp_double);
    double med = times[warm + reps / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("daclip   %-5s batch %d: %.3f s/batch, %dx%d, peak RSS %.0f MB, arena %.0f MB, threads %d, min %.3f s\n",
           mode, batch, med, size, size, ru.ru_maxrss / 1024.0, arena_hw / 1048576.0, t_threads(), times[warm]);
    free(times);
    free(time);
    optim_free(opt);
    params_free(&ps);
    t_arena_shutdown();
    return 0;
}
