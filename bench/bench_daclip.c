/* DA-CLIP at ViT-B-32 size (random weights, batch B, 224 px): "encode" = encode_image with control (the
 * controller pass + the frozen tower steered by it, no tape), "train" = one controller training step (forward of
 * both towers, the joint contrastive loss against cached text embeddings — the text tower is frozen, so captions
 * and names are encoded once per run, not per step — backward through the controls only, AdamW step).
 * Timed as the median of --reps after one warm-up; prints seconds per batch and peak RSS.
 * Peer: bench_daclip_torch.py (the official DaCLIP module structure); scripts/bench-daclip.sh runs both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/bench_util.h"
#include "clip/model.h"
#include "controller/controller.h"
#include "nn/contrastive.h"
#include "nn/optim.h"
#include "tensor/ops.h"
#include "train/daclip_train.h"

int main(int argc, char **argv) {
    int batch = 8, reps = 5;
    const char *mode = "encode";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
    }
    if (batch < 2 || reps < 1) return 2;
    bool train = !strcmp(mode, "train");
    t_init();
    ClipConfig cfg;
    clip_config_preset("ViT-B-32", &cfg);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    Clip clip;
    DaclipController ctl;
    if (clip_init(&clip, &ps, "clip", &cfg, &rng) || controller_init(&ctl, &ps, &cfg.vision, &rng)) return 1;
    params_freeze(&ps, "clip.", true);
    controller_start_from(&ctl, &clip.visual, clip.logit_scale->data[0], false);
    /* trained zero layers are not zero: give them values so no product is trivially cheap */
    for (int i = 0; i < cfg.vision.layers; i++) t_fill_normal(ctl.zero_modules[i].weight, &rng, 0, 0.01f);
    Optim *opt = NULL;
    if (train) {
        OptConfig oc = optim_adamw_config(2e-5, 0.05);
        oc.beta2 = 0.98, oc.eps = 1e-6, oc.group_of = daclip_decay_group;
        opt = optim_new(&ps, &oc);
    } else {
        params_freeze(&ps, "", true);
        /* as daclip encode / classify / restore do (daclip_model_prepack); DACLIP_PREPACK=0 to compare */
        const char *pp = getenv("DACLIP_PREPACK");
        if (!pp || strcmp(pp, "0") != 0) {
            vit_prepack(&clip.visual);
            controller_prepack(&ctl);
        }
    }
    int64_t E = cfg.vision.embed_dim;
    Tensor *captions = t_param_new(T_SHAPE(batch, E), false), *names = t_param_new(T_SHAPE(batch, E), false);
    t_fill_normal(captions, &rng, 0, 1);
    t_fill_normal(names, &rng, 0, 1);
    double *times = malloc(sizeof(double) * (size_t)(reps + 1));
    for (int r = 0; r <= reps; r++) {
        t_arena_reset();
        Tensor *img = t_new(T_SHAPE(batch, 3, 224, 224));
        t_fill_normal(img, &rng, 0, 1);
        double t0 = now_s();
        Tensor *content, *degra;
        if (train) {
            params_zero_grad_lazy(&ps);
            daclip_encode_image(&ctl, &clip.visual, img, &content, &degra);
            Tensor *loss = t_add(nn_clip_loss(content, captions, ctl.logit_scale, NULL),
                                 nn_clip_loss(degra, names, ctl.logit_scale, NULL));
            t_backward(loss);
            optim_step(opt);
        } else {
            bool prev = t_set_grad_enabled(false);
            daclip_encode_image(&ctl, &clip.visual, img, &content, &degra);
            t_set_grad_enabled(prev);
        }
        times[r] = now_s() - t0;
    }
    qsort(times + 1, (size_t)reps, sizeof(double), cmp_double);
    double med = times[1 + reps / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("daclip   %-6s batch %d: %.3f s/batch, %.1f img/s, peak RSS %.0f MB, threads %d, min %.3f s\n", mode, batch,
           med, batch / med, ru.ru_maxrss / 1024.0, t_threads(), times[1]);
    fprintf(stderr, "activation arena: high water %.0f MB, capacity %.0f MB\n", t_arena_high_water() / 1048576.0,
            t_arena_capacity() / 1048576.0);
    free(times);
    optim_free(opt);
    t_free(captions);
    t_free(names);
    controller_free(&ctl);
    clip_free(&clip);
    params_free(&ps);
    t_arena_shutdown();
    return 0;
}
