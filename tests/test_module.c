/* ParamSet: names, freeze/count, strict and non-strict loading by name, safetensors round trip with a
 * "module." prefix, initialiser ranges. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "nn/module.h"
#include "tensor/safetensors.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"

/* fc.weight [4,3], fc.bias [4], ln.weight [4] */
static void small_model(ParamSet *ps) {
    params_init(ps);
    params_new(ps, "fc", "weight", T_SHAPE(4, 3));
    params_new(ps, "fc", "bias", T_SHAPE(4));
    params_new(ps, "ln", "weight", T_SHAPE(4));
}

static void test_names_freeze_count(void **state) {
    (void)state;
    ParamSet ps;
    small_model(&ps);
    params_new(&ps, "", "logit_scale", 0, NULL);
    params_new(&ps, "fcx", "weight", T_SHAPE(2));
    Param *p = params_find(&ps, "fc.weight");
    assert_non_null(p);
    assert_string_equal(p->t->name, "fc.weight");
    assert_ptr_equal(p->t->name, p->name);
    assert_non_null(params_find(&ps, "logit_scale"));
    assert_null(params_find(&ps, "fc"));
    assert_int_equal(params_count(&ps, "", false), 12 + 4 + 4 + 1 + 2);
    assert_int_equal(params_count(&ps, "fc", false), 16); /* not "fcx" */
    params_freeze(&ps, "fc", true);
    assert_true(params_find(&ps, "fc.bias")->frozen);
    assert_false(params_find(&ps, "fc.bias")->t->requires_grad);
    assert_false(params_find(&ps, "fcx.weight")->frozen);
    assert_int_equal(params_count(&ps, "", true), 4 + 1 + 2);
    params_freeze(&ps, "", false);
    assert_int_equal(params_count(&ps, "", true), 23);
    p->t->grad[3] = 5;
    params_zero_grad(&ps);
    assert_true(p->t->grad[3] == 0);
    char buf[32];
    assert_string_equal(nn_join(buf, sizeof buf, "a.b", "c"), "a.b.c");
    assert_string_equal(nn_join(buf, sizeof buf, NULL, "c"), "c");
    params_free(&ps);
}

static void test_strict_lists_all_three(void **state) {
    (void)state;
    ParamSet ps;
    small_model(&ps);
    float w[12], b[4], extra[2] = {1, 2}, wrong[3] = {0};
    for (int i = 0; i < 12; i++) w[i] = (float)i;
    for (int i = 0; i < 4; i++) b[i] = 10.0f + (float)i;
    const int64_t sw[2] = {4, 3}, sb[1] = {4}, se[1] = {2}, swr[1] = {3};
    /* ln.weight missing, extra.bias unexpected, fc.bias wrong shape */
    NamedArray arr[] = {{"fc.weight", 2, sw, w}, {"extra.bias", 1, se, extra}, {"fc.bias", 1, swr, wrong}};
    LoadReport rep;
    assert_int_equal(params_load_arrays(&ps, 3, arr, true, &rep), -1);
    const char *msg = t_errmsg();
    assert_non_null(strstr(msg, "1 missing key: ln.weight"));
    assert_non_null(strstr(msg, "1 unexpected key: extra.bias"));
    assert_non_null(strstr(msg, "1 wrong shape: fc.bias (model [4], file [3])"));
    assert_int_equal(rep.missing, 1);
    assert_int_equal(rep.unexpected, 1);
    assert_int_equal(rep.wrong_shape, 1);
    assert_int_equal(rep.loaded, 0);
    assert_true(params_find(&ps, "fc.weight")->t->data[5] == 0); /* strict failure loads nothing */

    /* non-strict: loads what matches, reports the rest */
    assert_int_equal(params_load_arrays(&ps, 3, arr, false, &rep), 0);
    assert_int_equal(rep.loaded, 1);
    assert_int_equal(rep.missing + rep.unexpected + rep.wrong_shape, 3);
    assert_non_null(strstr(t_errmsg(), "ln.weight"));
    assert_true(params_find(&ps, "fc.weight")->t->data[5] == 5);

    /* all good */
    const int64_t sl[1] = {4};
    NamedArray good[] = {{"fc.weight", 2, sw, w}, {"fc.bias", 1, sb, b}, {"ln.weight", 1, sl, b}};
    assert_int_equal(params_load_arrays(&ps, 3, good, true, &rep), 0);
    assert_int_equal(rep.loaded, 3);
    assert_true(params_find(&ps, "ln.weight")->t->data[2] == 12);
    params_free(&ps);
}

static void test_file_round_trip_with_prefix(void **state) {
    (void)state;
    char dir[64], path[128], path2[128];
    assert_int_equal(test_tmpdir_create(dir, sizeof dir, "test-mod"), 0);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/b.safetensors", dir);
    ParamSet a, b;
    small_model(&a);
    small_model(&b);
    for (int i = 0; i < a.n; i++) fill_uniform(a.items[i].t, 10 + (uint64_t)i, -1, 1);
    assert_int_equal(params_save_file(&a, path, "{\"epoch\":\"3\"}"), 0);
    LoadReport rep;
    assert_int_equal(params_load_file(&b, path, true, NULL, &rep), 0);
    for (int i = 0; i < a.n; i++)
        assert_memory_equal(a.items[i].t->data, b.items[i].t->data, sizeof(float) * (size_t)t_numel(a.items[i].t));

    /* a DDP-style file: every key has "module." in front */
    const char *names[3] = {"module.fc.weight", "module.fc.bias", "module.ln.weight"};
    Tensor *ts[3] = {a.items[0].t, a.items[1].t, a.items[2].t};
    assert_int_equal(st_save(path2, 3, names, ts, NULL), 0);
    assert_int_equal(params_load_file(&b, path2, true, NULL, &rep), -1);
    assert_non_null(strstr(t_errmsg(), path2));
    assert_non_null(strstr(t_errmsg(), "3 missing keys"));
    assert_int_equal(params_load_file(&b, path2, true, "module.", &rep), 0);
    assert_int_equal(rep.loaded, 3);
    assert_int_equal(test_tmpdir_remove(dir), 0);
    params_free(&a);
    params_free(&b);
}

static void test_initialisers(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    Tensor *w = params_new(&ps, "conv", "weight", T_SHAPE(16, 8, 3, 3));
    Tensor *b = params_new(&ps, "conv", "bias", T_SHAPE(16));
    Tensor *e = params_new(&ps, "emb", "weight", T_SHAPE(100, 20));
    TRng r;
    rng_seed(&r, 1);
    int64_t fan_in = 8 * 9;
    init_kaiming_uniform(w, &r, fan_in);
    init_uniform_fan_in(b, &r, fan_in);
    init_normal(e, &r, 0.02f);
    float bound = 1.0f / sqrtf((float)fan_in), mx = 0;
    for (int64_t i = 0; i < t_numel(w); i++) mx = fmaxf(mx, fabsf(w->data[i]));
    assert_true(mx <= bound && mx > 0.95f * bound); /* fills the range, never exceeds it */
    for (int i = 0; i < 16; i++) assert_true(fabsf(b->data[i]) <= bound);
    double s2 = 0;
    for (int i = 0; i < 2000; i++) s2 += (double)e->data[i] * e->data[i];
    assert_true(fabs(sqrt(s2 / 2000) - 0.02) < 0.002);
    init_const(b, 1.0f);
    assert_true(b->data[15] == 1.0f);
    params_free(&ps);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_names_freeze_count, arena_teardown),
        cmocka_unit_test_teardown(test_strict_lists_all_three, arena_teardown),
        cmocka_unit_test_teardown(test_file_round_trip_with_prefix, arena_teardown),
        cmocka_unit_test_teardown(test_initialisers, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
