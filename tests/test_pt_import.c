/* Official-structure checkpoints written by torch.save load into our models and compute what PyTorch computed:
 * a DA-CLIP training checkpoint (module. names, the visual.* alias, AdamW state with numpy scalars; the official
 * key set at a reduced width, with its open_clip model-config JSON) and a ConditionalUNet state dict laid out
 * like universal-ir.pth (every official key, float16, its options JSON); configurations read from the shapes
 * and from the JSON files agree; `convert` round-trips to our model files. */
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
#include "irsde/unet.h"
#include "nn/pt_state_dict.h"
#include "tensor/ops.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"
#include "train/pt_import.h"

#define PT "tests/fixtures/pt/"

static void test_daclip_checkpoint(void **state) {
    (void)state;
    char err[1024] = "";
    PtStateDict sd;
    if (pt_state_dict_open(PT "daclip_small.pt", &sd)) fail_msg("%s", t_errmsg());
    assert_int_equal(pt_state_dict_kind(&sd), PT_KIND_DACLIP);
    assert_true(sd.aliases_dropped > 0);   /* the visual.* alias of clip.visual.* */
    ClipConfig cfg;
    if (clip_config_from_open_clip_json(PT "daclip_small.json", &cfg, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(cfg.vision.width, 16);
    assert_int_equal(cfg.vision.heads, 2);
    assert_int_equal(cfg.vision.layers, 3);
    assert_int_equal(cfg.text_layers, 1);
    /* from the shapes: all but the head counts (open_clip's head_width 64 does not divide width 16) */
    ClipConfig inferred;
    assert_int_equal(clip_config_from_pt(&sd, "clip.", &inferred, err, sizeof err), -1);
    assert_non_null(strstr(err, "--config"));
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    Clip clip;
    DaclipController ctl;
    assert_int_equal(clip_init(&clip, &ps, "clip", &cfg, &rng), 0);
    assert_int_equal(controller_init(&ctl, &ps, &cfg.vision, &rng), 0);
    LoadReport rep;
    if (params_load_pt(&ps, &sd, true, &rep)) fail_msg("%s", t_errmsg());   /* strict: the official key set */
    assert_int_equal(rep.loaded, ps.n);
    pt_state_dict_close(&sd);
    Fixture fx;
    fixture_load(&fx, "daclip_small.bin");
    Tensor *content, *degra;
    bool prev = t_set_grad_enabled(false);
    assert_int_equal(daclip_encode_image(&ctl, &clip.visual, fixture_tensor(&fx, "img"), &content, &degra), 0);
    t_set_grad_enabled(prev);
    check_tensor_close(content, fixture_get(&fx, "content", NULL), 1e-5, 1e-4, "content from the .pt");
    check_tensor_close(degra, fixture_get(&fx, "degradation", NULL), 1e-5, 1e-4, "degradation from the .pt");
    fixture_free(&fx);
    controller_free(&ctl);
    clip_free(&clip);
    params_free(&ps);
    t_arena_reset();
}

static void unet_matches(const ConditionalUNet *u, const Fixture *fx) {
    int64_t nt;
    const float *time = fixture_get(fx, "input.time", &nt);
    bool prev = t_set_grad_enabled(false);
    Tensor *out = unet_forward(u, fixture_tensor(fx, "input.xt"), fixture_tensor(fx, "input.cond"), time,
                               fixture_tensor(fx, "input.degra"), fixture_tensor(fx, "input.content"));
    t_set_grad_enabled(prev);
    assert_non_null(out);
    int64_t n;
    const float *want = fixture_get(fx, "out", &n);
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    check_tensor_close(out, want, 1e-4 * scale, 1e-4, "U-Net output from the .pth");
}

static void test_unet_checkpoint(void **state) {
    (void)state;
    char err[1024] = "", dir[512], out[700];
    UNetConfig from_json, from_shapes;
    if (unet_config_from_options_json(PT "unet_small_options.json", &from_json, err, sizeof err)) fail_msg("%s", err);
    PtStateDict sd;
    if (pt_state_dict_open(PT "unet_small.pth", &sd)) fail_msg("%s", t_errmsg());
    assert_int_equal(pt_state_dict_kind(&sd), PT_KIND_UNET);
    if (unet_config_from_pt(&sd, &from_shapes, err, sizeof err)) fail_msg("%s", err);
    pt_state_dict_close(&sd);
    assert_int_equal(from_shapes.nf, 8);
    assert_int_equal(from_shapes.depth, 4);
    assert_int_equal(from_shapes.ch_mult[2], 4);
    assert_int_equal(from_shapes.context_dim, 16);
    assert_true(from_shapes.use_degra_context && from_shapes.use_image_context);
    assert_memory_equal(&from_json, &from_shapes, sizeof from_json);
    Fixture fx;
    fixture_load(&fx, "pt/unet_small_expected.bin");
    for (int with_json = 0; with_json < 2; with_json++) {
        ConditionalUNet u;
        ParamSet ps;
        UNetConfig cfg;
        if (unet_model_open(PT "unet_small.pth", with_json ? PT "unet_small_options.json" : NULL, &u, &ps, &cfg, err,
                            sizeof err))
            fail_msg("%s", err);
        assert_int_equal(ps.n, 224);   /* every official key */
        unet_matches(&u, &fx);
        /* convert: our model file round-trips */
        if (with_json) {
            assert_int_equal(test_tmpdir_create(dir, sizeof dir, "pt-import"), 0);
            snprintf(out, sizeof out, "%s/unet.safetensors", dir);
            assert_int_equal(unet_save_file(&ps, &cfg, out), 0);
            ConditionalUNet u2;
            ParamSet ps2;
            UNetConfig cfg2;
            if (unet_model_open(out, NULL, &u2, &ps2, &cfg2, err, sizeof err)) fail_msg("%s", err);
            unet_matches(&u2, &fx);
            params_free(&ps2);
            assert_int_equal(test_tmpdir_remove(dir), 0);
        }
        params_free(&ps);
        t_arena_reset();
    }
    fixture_free(&fx);
    /* a U-Net is not a DA-CLIP and vice versa: clear errors, no crash */
    ConditionalUNet u;
    ParamSet ps;
    UNetConfig cfg;
    assert_int_equal(unet_model_open(PT "daclip_small.pt", NULL, &u, &ps, &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "daclip_small.pt"));
    assert_int_equal(unet_config_from_options_json(PT "daclip_small.json", &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "daclip_small.json"));
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daclip_checkpoint),
        cmocka_unit_test(test_unet_checkpoint),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    return rc;
}
