/* clip/model: both towers of a small random CLIP against the PyTorch mirror of open_clip
 * (tests/reference/gen_clip.py): outputs and every parameter and input gradient; and one ViT-B-32
 * image-tower forward (no grad) with formula-generated weights. Weights are loaded by name, which also
 * proves that our parameter names are open_clip's. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clip/model.h"
#include "nn/module.h"
#include "tensor/ops.h"
#include "tests/util_check.h"


static void load_params(ParamSet *ps, const Fixture *fx) {
    NamedArray *arr = calloc((size_t)fx->count, sizeof *arr);
    int n = 0;
    for (int i = 0; i < fx->count; i++) {
        if (strncmp(fx->names[i], "param.", 6)) continue;
        arr[n++] = (NamedArray){fx->names[i] + 6, fx->ndim[i], fx->shape[i], fx->data[i]};
    }
    LoadReport rep;
    int rc = params_load_arrays(ps, n, arr, true, &rep);
    free(arr);
    if (rc) fail_msg("strict load of the PyTorch weights failed: %s", t_errmsg());
}

static void test_small_clip_matches_pytorch(void **state) {
    (void)state;
    Fixture fx;
    fixture_load(&fx, "clip_small.bin");
    ClipConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "test");
    cfg.vision = (VisionConfig){32, 8, 32, 2, 2, 24};
    cfg.context_length = 16, cfg.vocab_size = 100, cfg.text_width = 32, cfg.text_heads = 2, cfg.text_layers = 2;
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    Clip m;
    assert_int_equal(clip_init(&m, &ps, "", &cfg, &rng), 0);
    load_params(&ps, &fx);

    Tensor *img = fixture_tensor(&fx, "img");
    t_requires_grad(img);
    int64_t nid;
    float *idf = fixture_get(&fx, "ids", &nid);
    int32_t ids[3 * 16];
    for (int i = 0; i < nid; i++) ids[i] = (int32_t)idf[i];

    Tensor *fi = clip_encode_image(&m, img, NULL, NULL);
    Tensor *ft = clip_encode_text(&m, ids, 3);
    check_tensor_close(fi, fixture_get(&fx, "image_features", NULL), 1e-5, 1e-4, "image features");
    check_tensor_close(ft, fixture_get(&fx, "text_features", NULL), 1e-5, 1e-4, "text features");
    Tensor *loss = t_add(t_sum(t_mul(fi, fixture_tensor(&fx, "r_img")), 0, NULL, false),
                         t_sum(t_mul(ft, fixture_tensor(&fx, "r_txt")), 0, NULL, false));
    t_backward(loss);
    check_close(img->grad, fixture_get(&fx, "grad.img", NULL), t_numel(img), 1e-5, 1e-4, "grad img");
    int checked = 0;
    for (int i = 0; i < ps.n; i++) {
        char key[300];
        snprintf(key, sizeof key, "grad.%s", ps.items[i].name);
        Tensor *p = ps.items[i].t;
        int64_t n;
        const float *g = fixture_get(&fx, key, &n);
        assert_int_equal(n, t_numel(p));
        /* relative to the gradient's scale: a few parameters have near-zero gradients */
        double scale = 0;
        for (int64_t k = 0; k < n; k++) scale = fmax(scale, fabs(g[k]));
        check_close(p->grad, g, n, 1e-4 * scale + 1e-6, 1e-4, key);
        checked++;
    }
    assert_true(checked > 40);
    clip_free(&m);
    params_free(&ps);
    fixture_free(&fx);
}

/* Same formula as synth_weight() in tests/reference/gen_clip.py. */
static void synth_weight(const char *name, Tensor *t) {
    uint32_t h = 2166136261u;
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
    int64_t n = t_numel(t);
    int64_t fan = t->ndim ? t->shape[t->ndim - 1] : 1;
    if (strlen(name) >= 12 && !strcmp(name + strlen(name) - 12, "conv1.weight")) fan = n / t->shape[0];
    double a = 2.0 / sqrt((double)fan);
    bool ln_w = strstr(name, "ln_") && strlen(name) >= 6 && !strcmp(name + strlen(name) - 6, "weight");
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = ((uint64_t)i * 2654435761u + h) & 0xFFFFFFFFu;
        x = ((x ^ (x >> 15)) * 2246822519u) & 0xFFFFFFFFu;
        x = x ^ (x >> 13);
        double u = (double)(x & 0xFFFFFF) / (double)(1 << 24) - 0.5;
        t->data[i] = ln_w ? (float)(1.0 + u * 0.2) : (float)(u * a);
    }
}

static void test_vitb32_image_tower_matches_pytorch(void **state) {
    (void)state;
    Fixture fx;
    fixture_load(&fx, "clip_vitb32.bin");
    ClipConfig cfg;
    assert_int_equal(clip_config_preset("ViT-B-32", &cfg), 0);
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    VisionTransformer v;
    assert_int_equal(vit_init(&v, &ps, "visual", "transformer", &cfg.vision, &rng), 0);
    assert_int_equal(params_count(&ps, "", false), 87849216);   /* open_clip ViT-B/32 visual */
    for (int i = 0; i < ps.n; i++) synth_weight(ps.items[i].name, ps.items[i].t);
    Tensor *img = t_new(T_SHAPE(1, 3, 224, 224));
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 224; y++)
            for (int x = 0; x < 224; x++)
                img->data[(c * 224 + y) * 224 + x] = (float)(sin(x / 17.0 + c) * cos(y / 23.0 - c));
    bool prev = t_set_grad_enabled(false);
    Tensor *f = vit_forward(&v, img, NULL, NULL);
    t_set_grad_enabled(prev);
    check_tensor_close(f, fixture_get(&fx, "image_features", NULL), 2e-4, 1e-3, "ViT-B-32 features");
    vit_free(&v);
    params_free(&ps);
    fixture_free(&fx);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_small_clip_matches_pytorch, arena_teardown),
        cmocka_unit_test_teardown(test_vitb32_image_tower_matches_pytorch, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
