/* ViT-B/32 image tower (open_clip VisionTransformer, random weights): encode_image at batch B in
 * no-grad mode, or a forward+backward training step, timed as the median of --reps runs after one
 * warm-up. Prints seconds per batch, images/s and peak RSS. Peer scripts: bench_clip_image_torch.py,
 * bench_clip_image_onnx.js; scripts/bench-clip.sh runs all of them side by side. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clip/model.h"
#include "nn/vision_transformer.h"
#include "tensor/ops.h"
#include "train/progress.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int batch = 8, reps = 5;
    const char *mode = "fwd";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
    }
    bool train = !strcmp(mode, "train");
    t_init();
    ClipConfig cfg;
    clip_config_preset("ViT-B-32", &cfg);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    VisionTransformer v;
    if (vit_init(&v, &ps, "visual", "transformer", &cfg.vision, &rng)) return 1;
    if (!train) params_freeze(&ps, "", true);
    double *times = malloc(sizeof(double) * (size_t)(reps + 1));
    for (int r = 0; r <= reps; r++) {
        t_arena_reset();
        Tensor *img = t_new(T_SHAPE(batch, 3, 224, 224));
        t_fill_normal(img, &rng, 0, 1);
        double t0 = progress_now();
        if (train) {
            params_zero_grad_lazy(&ps);
            Tensor *f = vit_forward(&v, img, NULL, NULL);             /* [B, 512] */
            t_backward(t_sum(t_mul(f, f), 0, NULL, false));
        } else {
            bool prev = t_set_grad_enabled(false);
            vit_forward(&v, img, NULL, NULL);
            t_set_grad_enabled(prev);
        }
        times[r] = progress_now() - t0;
    }
    qsort(times + 1, (size_t)reps, sizeof(double), cmp_d);
    double med = times[1 + reps / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("daclip   %-5s batch %d: %.3f s/batch, %.1f img/s, peak RSS %.0f MB, threads %d, min %.3f s\n", mode, batch,
           med, batch / med, ru.ru_maxrss / 1024.0, t_threads(), times[1]);
    free(times);
    vit_free(&v);
    params_free(&ps);
    t_arena_shutdown();
    return 0;
}
