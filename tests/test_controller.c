/* controller/: DA-CLIP's controller against the PyTorch mirror of the official DaCLIP
 * (tests/reference/gen_daclip.py): content and degradation embeddings, the joint loss and every trainable
 * gradient; the reversed pairing; the zero start (content = plain CLIP bit for bit); the official
 * initial_controller quirk; the frozen CLIP receiving no gradient; and inference with prepacked weights. */
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
#include "controller/controller.h"
#include "nn/contrastive.h"
#include "nn/module.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"


/* The reference's small configuration: CLIP(16, 32, 8, 16, 3, 2, 16, 100, 16, 2, 1). */
static ClipConfig small_config(void) {
    ClipConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "test");
    cfg.vision = (VisionConfig){32, 8, 16, 3, 2, 16};
    cfg.context_length = 16, cfg.vocab_size = 100, cfg.text_width = 16, cfg.text_heads = 2, cfg.text_layers = 1;
    return cfg;
}

typedef struct {
    ParamSet ps;
    Clip clip;
    DaclipController ctl;
} Model;

static void model_init(Model *m, uint64_t seed) {
    params_init(&m->ps);
    TRng rng;
    rng_seed(&rng, seed);
    ClipConfig cfg = small_config();
    assert_int_equal(clip_init(&m->clip, &m->ps, "clip", &cfg, &rng), 0);
    assert_int_equal(controller_init(&m->ctl, &m->ps, &cfg.vision, &rng), 0);
    params_freeze(&m->ps, "clip.", true);
}

static void model_free(Model *m) {
    controller_free(&m->ctl);
    clip_free(&m->clip);
    params_free(&m->ps);
    t_arena_reset();
}

static void load_params(ParamSet *ps, const Fixture *fx) {
    NamedArray *arr = calloc((size_t)fx->count, sizeof *arr);
    int n = 0;
    for (int i = 0; i < fx->count; i++)
        if (!strncmp(fx->names[i], "param.", 6))
            arr[n++] = (NamedArray){fx->names[i] + 6, fx->ndim[i], fx->shape[i], fx->data[i]};
    LoadReport rep;
    int rc = params_load_arrays(ps, n, arr, true, &rep);
    free(arr);
    if (rc) fail_msg("strict load of the PyTorch DaCLIP state dict failed: %s", t_errmsg());
}

static int32_t *fixture_ids(const Fixture *fx, const char *name) {
    int64_t n;
    float *f = fixture_get(fx, name, &n);
    int32_t *ids = t_arena_alloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)f[i];
    return ids;
}

static void test_matches_pytorch(void **state) {
    (void)state;
    Fixture fx;
    fixture_load(&fx, "daclip_small.bin");
    Model m;
    model_init(&m, 3);
    load_params(&m.ps, &fx);   /* strict: proves every name equals the official state dict's */
    params_zero_grad(&m.ps);
    const int B = 4;
    Tensor *img = fixture_tensor(&fx, "img");
    Tensor *content, *degra;
    assert_int_equal(daclip_encode_image(&m.ctl, &m.clip.visual, img, &content, &degra), 0);
    check_tensor_close(content, fixture_get(&fx, "content", NULL), 1e-5, 1e-4, "content embedding");
    check_tensor_close(degra, fixture_get(&fx, "degradation", NULL), 1e-5, 1e-4, "degradation embedding");
    /* the text embeddings are constants of training (frozen tower, no tape) */
    bool prev = t_set_grad_enabled(false);
    Tensor *txt = clip_encode_text(&m.clip, fixture_ids(&fx, "caption_ids"), B);
    Tensor *txt_degra = clip_encode_text(&m.clip, fixture_ids(&fx, "degra_ids"), B);
    t_set_grad_enabled(prev);
    Tensor *l_clip = nn_clip_loss(content, txt, m.ctl.logit_scale, NULL);
    Tensor *l_degra = nn_clip_loss(degra, txt_degra, m.ctl.logit_scale, NULL);
    Tensor *loss = t_add(l_clip, l_degra);
    check_tensor_close(l_clip, fixture_get(&fx, "loss_clip", NULL), 1e-6, 1e-4, "clip loss");
    check_tensor_close(l_degra, fixture_get(&fx, "loss_degra", NULL), 1e-6, 1e-4, "degradation loss");
    check_tensor_close(loss, fixture_get(&fx, "loss", NULL), 1e-6, 1e-4, "total loss");
    t_backward(loss);
    int checked = 0;
    for (int i = 0; i < m.ps.n; i++) {
        Param *p = &m.ps.items[i];
        if (p->frozen) {
            /* the frozen CLIP: no gradient reached it */
            if (p->t->grad)
                for (int64_t k = 0; k < t_numel(p->t); k++)
                    if (p->t->grad[k] != 0.0f) fail_msg("frozen %s received a gradient", p->name);
            continue;
        }
        char key[300];
        snprintf(key, sizeof key, "grad.%s", p->name);
        int64_t n;
        const float *g = fixture_get(&fx, key, &n);
        assert_int_equal(n, t_numel(p->t));
        double scale = 0;
        for (int64_t k = 0; k < n; k++) scale = fmax(scale, fabs(g[k]));
        assert_true(scale > 0);   /* every controller tensor takes part */
        check_close(p->t->grad, g, n, 1e-4 * scale + 1e-7, 1e-4, key);
        checked++;
    }
    /* 5 + 12 per block + 3 tower tensors, 2 per zero layer, logit_scale */
    assert_int_equal(checked, 5 + 12 * 3 + 3 + 2 * 3 + 1);
    model_free(&m);
    fixture_free(&fx);
    t_tape_free();
}

static Tensor *test_image(int B) {
    Tensor *img = t_new(T_SHAPE(B, 3, 32, 32));
    fill_uniform(img, 7, -1.5f, 1.5f);
    return img;
}

/* At the start (zero controls) the content embedding is the plain CLIP image embedding, bit for bit. */
static void test_zero_start_is_clip(void **state) {
    (void)state;
    Model m;
    model_init(&m, 5);
    assert_int_equal(controller_start_from(&m.ctl, &m.clip.visual, 2.0f, false), 0);
    Tensor *img = test_image(3);
    Tensor *plain = clip_encode_image(&m.clip, img, NULL, NULL);
    Tensor *content, *degra;
    assert_int_equal(daclip_encode_image(&m.ctl, &m.clip.visual, img, &content, &degra), 0);
    assert_int_equal(t_numel(plain), t_numel(content));
    assert_memory_equal(plain->data, content->data, sizeof(float) * (size_t)t_numel(plain));
    /* the controller is a full copy of the tower, so its own embedding starts at the CLIP one too */
    check_close(degra->data, plain->data, t_numel(plain), 1e-5, 1e-4, "degradation at start");
    assert_true(fabsf(m.ctl.logit_scale->data[0] - 2.0f) == 0.0f);
    model_free(&m);
    t_tape_free();
}

/* The reversed pairing (reference §1.3): with zero weights and biases 1000·(i+1), the stream after frozen block
 * j exceeds the uncontrolled block output by exactly 1000·(L−j): block 0 gets zero layer L−1. */
static void test_reversed_pairing(void **state) {
    (void)state;
    Model m;
    model_init(&m, 9);
    assert_int_equal(controller_start_from(&m.ctl, &m.clip.visual, 2.0f, false), 0);
    const int L = 3;
    for (int i = 0; i < L; i++) init_const(m.ctl.zero_modules[i].bias, 1000.0f * (float)(i + 1));
    bool prev = t_set_grad_enabled(false);
    Tensor *img = test_image(2);
    Tensor *controls[3];
    assert_non_null(controller_forward(&m.ctl, img, controls, false));
    const VisionTransformer *v = &m.clip.visual;
    Tensor *hidden[3];
    Tensor *x = vit_embed(v, img);
    assert_non_null(transformer_forward(&v->transformer, x, NULL, controls, hidden));
    for (int j = 0; j < L; j++) {
        Tensor *in = j ? hidden[j - 1] : x;
        Tensor *plain = res_attn_block_forward(&v->transformer.resblocks[j], in, NULL);   /* [B, T, W] */
        float want = 1000.0f * (float)(L - j);
        for (int64_t k = 0; k < t_numel(plain); k++) {
            float got = hidden[j]->data[k] - plain->data[k];
            if (!close_enough(got, want, 1e-2, 0)) fail_msg("block %d: added %g, expected %g", j, got, want);
        }
    }
    t_set_grad_enabled(prev);
    model_free(&m);
}

/* --official-init: DaCLIP.initial_controller's misaligned copy (reference §1.5). */
static void test_official_quirk(void **state) {
    (void)state;
    Model m;
    model_init(&m, 11);
    const VisionTransformer *v = &m.clip.visual;
    fill_uniform(v->ln_post.weight, 1, 0.5f, 1.5f);
    fill_uniform(v->ln_post.bias, 2, -0.5f, 0.5f);
    assert_int_equal(controller_start_from(&m.ctl, v, 2.0f, true), 0);
    int64_t W = 16;
    for (int64_t r = 0; r < W; r++)
        assert_memory_equal(m.ctl.zero_modules[0].weight->data + r * W, v->ln_post.weight->data, sizeof(float) * W);
    assert_memory_equal(m.ctl.zero_modules[0].bias->data, v->ln_post.bias->data, sizeof(float) * W);
    for (int i = 1; i < 3; i++)
        for (int64_t k = 0; k < W * W; k++) assert_true(m.ctl.zero_modules[i].weight->data[k] == 0.0f);
    for (int64_t k = 0; k < W; k++) {
        assert_true(m.ctl.visual.ln_post.weight->data[k] == 1.0f);
        assert_true(m.ctl.visual.ln_post.bias->data[k] == 0.0f);
    }
    /* everything else is a copy */
    assert_memory_equal(m.ctl.visual.proj->data, v->proj->data, sizeof(float) * (size_t)t_numel(v->proj));
    assert_memory_equal(m.ctl.visual.transformer.resblocks[2].mlp.c_fc.weight->data,
                        v->transformer.resblocks[2].mlp.c_fc.weight->data,
                        sizeof(float) * (size_t)t_numel(v->transformer.resblocks[2].mlp.c_fc.weight));
    model_free(&m);
}

/* A tower of another configuration is refused with a message, not copied. */
static void test_config_mismatch(void **state) {
    (void)state;
    Model m;
    model_init(&m, 13);
    ParamSet ps2;
    params_init(&ps2);
    TRng rng;
    rng_seed(&rng, 1);
    VisionConfig other = {32, 8, 16, 2, 2, 16};
    DaclipController c2;
    assert_int_equal(controller_init(&c2, &ps2, &other, &rng), 0);
    assert_int_equal(controller_start_from(&c2, &m.clip.visual, 1.0f, false), -1);
    assert_non_null(strstr(t_errmsg(), "differ"));
    controller_free(&c2);
    params_free(&ps2);
    model_free(&m);
}

/* Without gradients each block's scratch is freed as soon as its output exists (t_arena_keep): the same
 * embeddings bit for bit as a forward that keeps everything, in a fraction of the arena. */
static void test_no_grad_forward_frees_block_scratch(void **state) {
    (void)state;
    Model m;
    model_init(&m, 17);
    assert_int_equal(controller_start_from(&m.ctl, &m.clip.visual, 2.0f, false), 0);
    for (int i = 0; i < 3; i++) fill_uniform(m.ctl.zero_modules[i].weight, 30 + (unsigned)i, -0.1f, 0.1f);
    Tensor *content[2], *degra[2];
    size_t used[2];
    for (int pass = 0; pass < 2; pass++) {
        t_arena_reset();
        Tensor *img = test_image(4);
        size_t before = t_arena_used();
        bool prev = t_set_grad_enabled(pass == 0);   /* pass 0 records the tape and keeps every activation */
        assert_int_equal(daclip_encode_image(&m.ctl, &m.clip.visual, img, &content[pass], &degra[pass]), 0);
        t_set_grad_enabled(prev);
        used[pass] = t_arena_used() - before;
        /* keep the results past the next reset */
        Tensor *c = t_param_new(content[pass]->ndim, content[pass]->shape, false);
        Tensor *d = t_param_new(degra[pass]->ndim, degra[pass]->shape, false);
        memcpy(c->data, content[pass]->data, sizeof(float) * (size_t)t_numel(c));
        memcpy(d->data, degra[pass]->data, sizeof(float) * (size_t)t_numel(d));
        content[pass] = c, degra[pass] = d;
        t_tape_free();
    }
    assert_memory_equal(content[0]->data, content[1]->data, sizeof(float) * (size_t)t_numel(content[0]));
    assert_memory_equal(degra[0]->data, degra[1]->data, sizeof(float) * (size_t)t_numel(degra[0]));
    if (used[1] * 2 > used[0]) fail_msg("no-grad encode used %zu arena bytes, the taped one %zu", used[1], used[0]);
    for (int i = 0; i < 2; i++) t_free(content[i]), t_free(degra[i]);
    model_free(&m);
}

/* Inference with the towers' linear weights packed for the GEMM kernels (controller_prepack, vit_prepack)
 * gives the same embeddings bit for bit, and a model saved afterwards holds the plain weights. Width 96 and
 * 65 tokens × 8 images, so every linear weight can be packed and every product is large enough for the
 * kernels (the path that reads the packing). */
static void test_prepacked_encode_is_identical(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 21);
    ClipConfig cfg = small_config();
    cfg.vision = (VisionConfig){64, 8, 96, 2, 2, 32};
    Clip clip;
    DaclipController ctl;
    assert_int_equal(clip_init(&clip, &ps, "clip", &cfg, &rng), 0);
    assert_int_equal(controller_init(&ctl, &ps, &cfg.vision, &rng), 0);
    assert_int_equal(controller_start_from(&ctl, &clip.visual, 2.0f, false), 0);
    for (int i = 0; i < 2; i++) t_fill_normal(ctl.zero_modules[i].weight, &rng, 0, 0.05f);
    params_freeze(&ps, "", true);
    bool prev = t_set_grad_enabled(false);
    Tensor *img = t_new(T_SHAPE(8, 3, 64, 64));
    fill_uniform(img, 3, -1.5f, 1.5f);
    Tensor *content0, *degra0, *content1, *degra1;
    assert_int_equal(daclip_encode_image(&ctl, &clip.visual, img, &content0, &degra0), 0);

    char dir[256], before[300], after[300];
    assert_int_equal(test_tmpdir_create(dir, sizeof dir, "prepack"), 0);
    snprintf(before, sizeof before, "%s/before.safetensors", dir);
    snprintf(after, sizeof after, "%s/after.safetensors", dir);
    assert_int_equal(params_save_file(&ps, before, NULL), 0);

    vit_prepack(&clip.visual);
    controller_prepack(&ctl);
    const Tensor *w = ctl.visual.transformer.resblocks[1].mlp.c_proj.weight;   /* [96, 384] */
    bool kernels = strcmp(t_sgemm_backend(), "blas") != 0;
    assert_true(t_sgemm_is_packed(w->data) == kernels);
    assert_true(t_sgemm_is_packed(ctl.zero_modules[0].weight->data) == kernels);
    assert_true(t_sgemm_is_packed(clip.visual.transformer.resblocks[0].attn.in_proj_weight->data) == kernels);
    assert_int_equal(daclip_encode_image(&ctl, &clip.visual, img, &content1, &degra1), 0);
    assert_memory_equal(content0->data, content1->data, sizeof(float) * (size_t)t_numel(content0));
    assert_memory_equal(degra0->data, degra1->data, sizeof(float) * (size_t)t_numel(degra0));
    t_set_grad_enabled(prev);

    assert_int_equal(params_save_file(&ps, after, NULL), 0);   /* unpacks first */
    assert_false(t_sgemm_is_packed(w->data));
    if (!test_files_equal(before, after)) fail_msg("the model saved after packing differs from the one before");
    assert_int_equal(test_tmpdir_remove(dir), 0);
    controller_free(&ctl);
    clip_free(&clip);
    params_free(&ps);
    t_arena_reset();
}

static void ignore_error(const char *msg) { (void)msg; }
static int quiet_errors(void **state) {
    (void)state;
    t_set_error_handler(ignore_error);
    return 0;
}
static int loud_errors(void **state) {
    (void)state;
    t_set_error_handler(NULL);
    return 0;
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_zero_start_is_clip),
        cmocka_unit_test(test_reversed_pairing),
        cmocka_unit_test(test_official_quirk),
        cmocka_unit_test(test_prepacked_encode_is_identical),
        cmocka_unit_test(test_no_grad_forward_frees_block_scratch),
        cmocka_unit_test_setup_teardown(test_config_mismatch, quiet_errors, loud_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    return rc;
}
