#include "tests/util_tiny_daclip.h"

#include <stdio.h>
#include <string.h>

#include "tests/util_check.h"
#include "train/clip_io.h"
#include "train/daclip_model.h"

int test_write_tiny_daclip(const char *clip_path, const char *daclip_path, float controller_spread) {
    ClipConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "test");
    cfg.vision = (VisionConfig){32, 8, 32, 2, 2, 16};
    cfg.context_length = 16, cfg.vocab_size = 49408, cfg.text_width = 32, cfg.text_heads = 2, cfg.text_layers = 1;
    char meta[6000], err[2048] = "";
    const char *vocab = clip_vocab_path(NULL);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 4);
    Clip clip;
    memset(&clip, 0, sizeof clip);   /* clip_free is safe whether or not clip_init ran */
    int rc = !vocab || clip_init(&clip, &ps, "", &cfg, &rng) || clip_model_meta(&cfg, vocab, meta, sizeof meta) ||
             params_save_file(&ps, clip_path, meta);
    if (rc) fprintf(stderr, "tiny CLIP %s: %s\n", clip_path, vocab ? t_errmsg() : "no vocabulary");
    clip_free(&clip);
    params_free(&ps);
    if (rc) return -1;
    DaclipModel m;
    if (daclip_model_from_clip(clip_path, NULL, false, &m, err, sizeof err)) {
        fprintf(stderr, "tiny DA-CLIP: %s\n", err);
        return -1;
    }
    if (controller_spread > 0)
        for (int i = 0; i < m.ps.n; i++)
            if (!strncmp(m.ps.items[i].name, "visual_control.", 15))
                fill_uniform(m.ps.items[i].t, (uint64_t)i, -controller_spread, controller_spread);
    rc = daclip_model_save(&m, daclip_path);
    if (rc) fprintf(stderr, "tiny DA-CLIP %s: %s\n", daclip_path, t_errmsg());
    daclip_model_free(&m);
    return rc ? -1 : 0;
}
