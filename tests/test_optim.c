/* AdamW and SGD against torch.optim on a small model (fixture from tests/reference/gen_adamw.py),
 * clip_grad_norm_ parity, the weight-decay rule, LR schedules, EMA. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "nn/ema.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tensor/ops.h"
#include "tests/util_check.h"

static const char *const names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "logit_scale"};
enum { NP = 5, STEPS = 20 };

/* fc1 [16,8], fc2 [4,16], logit_scale [] initialised from the fixture. */
static void build(ParamSet *ps, const Fixture *fx) {
    params_init(ps);
    params_new(ps, "fc1", "weight", T_SHAPE(16, 8));
    params_new(ps, "fc1", "bias", T_SHAPE(16));
    params_new(ps, "fc2", "weight", T_SHAPE(4, 16));
    params_new(ps, "fc2", "bias", T_SHAPE(4));
    params_new(ps, NULL, "logit_scale", 0, NULL);
    for (int i = 0; i < NP; i++) {
        char key[64];
        snprintf(key, sizeof key, "init.%s", names[i]);
        int64_t n;
        const float *src = fixture_get(fx, key, &n);
        assert_int_equal(n, t_numel(ps->items[i].t));
        memcpy(ps->items[i].t->data, src, sizeof(float) * (size_t)n);
    }
}

/* mean((fc2(gelu(fc1(x))) * logit_scale - y)^2), gradients left in the parameters. */
static float loss_and_grad(ParamSet *ps, const Fixture *fx) {
    t_arena_reset();
    params_zero_grad(ps);
    Tensor *x = fixture_tensor(fx, "x"), *y = fixture_tensor(fx, "y");
    Tensor *const *p = (Tensor *[]){ps->items[0].t, ps->items[1].t, ps->items[2].t, ps->items[3].t, ps->items[4].t};
    Tensor *h = t_gelu(t_linear(x, p[0], p[1]));
    Tensor *out = t_mul(t_linear(h, p[2], p[3]), p[4]);
    Tensor *d = t_sub(out, y);
    Tensor *loss = t_mean(t_mul(d, d), 0, NULL, false);
    assert_non_null(loss);
    t_backward(loss);
    return loss->data[0];
}

static void check_params(const ParamSet *ps, const Fixture *fx, const char *prefix, double rtol) {
    for (int i = 0; i < NP; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        check_tensor_close(ps->items[i].t, fixture_get(fx, key, NULL), 1e-7, rtol, key);
    }
}

static void test_adamw_matches_torch(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "adamw_ref.bin")) return;
    ParamSet ps;
    build(&ps, &fx);
    OptConfig cfg = optim_adamw_config(1e-2, 0.2);
    cfg.beta2 = 0.98, cfg.eps = 1e-6;
    Optim *opt = optim_new(&ps, &cfg);
    assert_non_null(opt);
    assert_int_equal(opt->slots[0].group, 0); /* fc1.weight decays */
    assert_int_equal(opt->slots[1].group, 1); /* fc1.bias does not */
    assert_int_equal(opt->slots[4].group, 1); /* logit_scale does not */
    LrSchedule sched = {.kind = LR_WARMUP_COSINE, .base_lr = 1e-2, .warmup = 5, .total = STEPS};
    float losses[STEPS];
    for (int s = 0; s < STEPS; s++) {
        opt->cfg.lr = lr_at(&sched, s);
        losses[s] = loss_and_grad(&ps, &fx);
        optim_step(opt);
    }
    check_close(losses, fixture_get(&fx, "adamw.losses", NULL), STEPS, 0, 1e-6, "adamw losses");
    check_params(&ps, &fx, "adamw.", 1e-6);
    /* moments: m averages gradients of both signs, so its small entries carry the cancellation error
     * of the forward pass; compare relative to each tensor's largest entry */
    for (int i = 0; i < NP; i++) {
        char key[64];
        int64_t n = optim_slot_numel(opt, i);
        for (int k = 0; k < 2; k++) {
            snprintf(key, sizeof key, "adamw.%c.%s", k ? 'v' : 'm', names[i]);
            const float *want = fixture_get(&fx, key, NULL);
            double scale = 0;
            for (int64_t j = 0; j < n; j++) scale = fmax(scale, fabs(want[j]));
            check_close(k ? opt->slots[i].v : opt->slots[i].m, want, n, 1e-5 * scale, 1e-5, key);
        }
    }
    optim_free(opt);
    params_free(&ps);
    fixture_free(&fx);
}

static void test_sgd_momentum_matches_torch(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "adamw_ref.bin")) return;
    ParamSet ps;
    build(&ps, &fx);
    OptConfig cfg = optim_sgd_config(0.05, 0.9, 1e-3);
    Optim *opt = optim_new(&ps, &cfg);
    float losses[STEPS];
    for (int s = 0; s < STEPS; s++) {
        losses[s] = loss_and_grad(&ps, &fx);
        optim_step(opt);
    }
    check_close(losses, fixture_get(&fx, "sgd.losses", NULL), STEPS, 0, 1e-6, "sgd losses");
    check_params(&ps, &fx, "sgd.", 1e-6);
    optim_free(opt);
    params_free(&ps);
    fixture_free(&fx);
}

static void test_clip_grad_norm_matches_torch(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "adamw_ref.bin")) return;
    ParamSet ps;
    build(&ps, &fx);
    loss_and_grad(&ps, &fx);
    double total = clip_grad_norm(&ps, 0.05);
    assert_true(fabs(total - fixture_get(&fx, "clip.total_norm", NULL)[0]) < 1e-6 * total);
    for (int i = 0; i < NP; i++) {
        char key[64];
        snprintf(key, sizeof key, "clip.%s", names[i]);
        check_close(ps.items[i].t->grad, fixture_get(&fx, key, NULL), t_numel(ps.items[i].t), 1e-9, 1e-6, key);
    }
    /* below the threshold nothing changes */
    float before = ps.items[0].t->grad[0];
    clip_grad_norm(&ps, 10.0);
    assert_true(ps.items[0].t->grad[0] == before);
    params_free(&ps);
    fixture_free(&fx);
}

static void test_frozen_params_untouched(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "adamw_ref.bin")) return;
    ParamSet ps;
    build(&ps, &fx);
    params_freeze(&ps, "fc1", true);
    OptConfig cfg = optim_adamw_config(1e-2, 0.1);
    Optim *opt = optim_new(&ps, &cfg);
    assert_int_equal(opt->n, 3); /* fc1.* got no state */
    float w0[128];
    memcpy(w0, ps.items[0].t->data, sizeof w0);
    loss_and_grad(&ps, &fx);
    optim_step(opt);
    assert_memory_equal(w0, ps.items[0].t->data, sizeof w0);
    assert_true(ps.items[2].t->data[0] != fixture_get(&fx, "init.fc2.weight", NULL)[0]);
    optim_free(opt);
    params_free(&ps);
    fixture_free(&fx);
}

static void test_decay_rule(void **state) {
    (void)state;
    assert_true(optim_wants_decay("visual.transformer.resblocks.0.attn.in_proj_weight", 2));
    assert_true(optim_wants_decay("visual.conv1.weight", 4));
    assert_true(optim_wants_decay("text_projection", 2));
    assert_false(optim_wants_decay("visual.transformer.resblocks.0.ln_1.weight", 1));
    assert_false(optim_wants_decay("visual.transformer.resblocks.0.attn.in_proj_bias", 1));
    assert_false(optim_wants_decay("logit_scale", 0));
    assert_false(optim_wants_decay("visual.class_embedding", 1));
    assert_false(optim_wants_decay("visual.positional_embedding", 2));
    assert_false(optim_wants_decay("token_embedding.weight", 2));
    assert_false(optim_wants_decay("down.0.norm.weight", 2));
    assert_false(optim_wants_decay("encoder.bn1.weight", 2));
}

static void test_schedules(void **state) {
    (void)state;
    const double base = 3e-5;
    /* warmup: lr*(step+1)/warmup */
    assert_true(fabs(lr_warmup_cosine(base, 100, 1000, 0) - base / 100) < 1e-18);
    assert_true(fabs(lr_warmup_cosine(base, 100, 1000, 49) - base * 50 / 100) < 1e-18);
    assert_true(fabs(lr_warmup_cosine(base, 100, 1000, 99) - base) < 1e-18);
    /* cosine: 0.5 (1 + cos(pi e / es)) lr */
    assert_true(fabs(lr_warmup_cosine(base, 100, 1000, 100) - base) < 1e-18);
    assert_true(fabs(lr_warmup_cosine(base, 100, 1000, 550) - base / 2) < 1e-15);
    assert_true(fabs(lr_warmup_cosine(base, 100, 1000, 325) - base * (1 + sqrt(0.5)) / 2) < 1e-15);
    assert_true(lr_warmup_cosine(base, 100, 1000, 1000) < 1e-20);
    for (int64_t s = 101; s < 1000; s++)
        assert_true(lr_warmup_cosine(base, 100, 1000, s) < lr_warmup_cosine(base, 100, 1000, s - 1));
    /* cosine annealing to a floor */
    assert_true(fabs(lr_cosine_anneal(2e-4, 1e-6, 700000, 0) - 2e-4) < 1e-18);
    assert_true(fabs(lr_cosine_anneal(2e-4, 1e-6, 700000, 350000) - (2e-4 + 1e-6) / 2) < 1e-15);
    assert_true(fabs(lr_cosine_anneal(2e-4, 1e-6, 700000, 700000) - 1e-6) < 1e-15);
    LrSchedule s = {.kind = LR_COSINE_ANNEAL, .base_lr = 1, .total = 10, .eta_min = 0.5};
    assert_true(fabs(lr_at(&s, 5) - 0.75) < 1e-12);
    s.kind = LR_CONSTANT;
    assert_true(lr_at(&s, 5) == 1);
}

static void test_ema(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    Tensor *w = params_new(&ps, "w", "weight", T_SHAPE(3));
    Ema e;
    EmaConfig cfg = {.beta = 0.5, .update_every = 2, .update_after_step = 0, .warmup = false};
    assert_int_equal(ema_init(&e, &ps, &cfg), 0);
    /* calls 0..5 with w = call index; updates on even calls: call 0 copies, calls 2 and 4 average */
    for (int call = 0; call < 6; call++) {
        init_const(w, (float)call);
        ema_update(&e);
    }
    /* shadow: 0 -> 0.5*0 + 0.5*2 = 1 -> 0.5*1 + 0.5*4 = 2.5 */
    assert_true(e.shadow[0][1] == 2.5f);
    ema_swap(&e);
    assert_true(w->data[2] == 2.5f);
    assert_true(e.swapped);
    ema_swap(&e);
    assert_true(w->data[2] == 5.0f);
    /* ema_pytorch's warmup: decay = 1 - (1 + epoch)^-2/3, capped at beta */
    EmaConfig wc = {.beta = 0.995, .update_every = 1, .update_after_step = 3, .warmup = true,
                    .inv_gamma = 1, .power = 2.0 / 3.0};
    Ema e2;
    assert_int_equal(ema_init(&e2, &ps, &wc), 0);
    for (int i = 0; i < 5; i++) ema_update(&e2);
    assert_true(fabs(ema_current_decay(&e2) - (1 - pow(2.0, -2.0 / 3.0))) < 1e-12);
    ema_free(&e);
    ema_free(&e2);
    params_free(&ps);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_adamw_matches_torch, arena_teardown),
        cmocka_unit_test_teardown(test_sgd_momentum_matches_torch, arena_teardown),
        cmocka_unit_test_teardown(test_clip_grad_norm_matches_torch, arena_teardown),
        cmocka_unit_test_teardown(test_frozen_params_untouched, arena_teardown),
        cmocka_unit_test_teardown(test_decay_rule, arena_teardown),
        cmocka_unit_test_teardown(test_schedules, arena_teardown),
        cmocka_unit_test_teardown(test_ema, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
