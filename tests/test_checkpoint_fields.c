/* Issue 10, class 1 (crafted files): every field of a training checkpoint is checked before use, one crafted
 * file per field, and a refused file leaves the run untouched; the safetensors reader refuses headers that
 * break the format (overlaps, gaps, duplicate fields, bad JSON). Class 4: temporaries that killed saves left
 * behind are removed by the next save or load, temporaries of live writers are not. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "nn/checkpoint.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"
#include "tests/util_tmpdir.h"

static char dir[96], good[160], crafted[160];

/* A small state: two parameters, AdamW, EMA and rng, after one update so nothing is zero. */
typedef struct {
    ParamSet ps;
    Optim *opt;
    Ema ema;
    TRng rng;
} Run;

static void run_init(Run *r, float v) {
    params_init(&r->ps);
    Tensor *w = params_new(&r->ps, "fc", "weight", T_SHAPE(3, 2));
    Tensor *b = params_new(&r->ps, "fc", "bias", T_SHAPE(3));
    for (int i = 0; i < 6; i++) w->data[i] = v + (float)i;
    for (int i = 0; i < 3; i++) b->data[i] = v - (float)i;
    OptConfig cfg = optim_adamw_config(1e-2, 0.1);
    r->opt = optim_new(&r->ps, &cfg);
    EmaConfig ec = ema_default_config(0.9, 1);
    assert_int_equal(ema_init(&r->ema, &r->ps, &ec), 0);
    rng_seed(&r->rng, (uint64_t)v);
    for (int k = 0; k < r->opt->n; k++)
        for (int64_t i = 0; i < optim_slot_numel(r->opt, k); i++) r->opt->slots[k].m[i] = v, r->opt->slots[k].v[i] = v;
    r->opt->step = 5;
    r->ema.step = 5;
}

static void run_free(Run *r) {
    optim_free(r->opt);
    ema_free(&r->ema);
    params_free(&r->ps);
}

static TrainState run_state(Run *r, int64_t step) {
    return (TrainState){.params = &r->ps, .opt = r->opt, .rng = &r->rng, .ema = &r->ema, .step = step, .lr = 1e-3};
}

static int setup(void **state) {
    (void)state;
    if (test_tmpdir_create(dir, sizeof dir, "ckpt-fields")) return -1;
    snprintf(good, sizeof good, "%s/good.safetensors", dir);
    snprintf(crafted, sizeof crafted, "%s/crafted.safetensors", dir);
    Run r;
    run_init(&r, 1.0f);
    TrainState st = run_state(&r, 5);
    int rc = ckpt_save(good, &st);
    run_free(&r);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    t_arena_reset();
    return test_tmpdir_remove(dir);
}

/* Copies the good checkpoint with one metadata entry set (value NULL: removed) and, when `tensor` is given, that
 * tensor's values replaced by `fill` (or its shape by [n_wrong] when n_wrong > 0). */
static void craft(const char *key, const char *value, const char *tensor, float fill, int64_t n_wrong) {
    StFile *f = st_open(good);
    assert_non_null(f);
    JsonObject meta;
    assert_int_equal(st_meta(f, &meta), 0);
    JsonObject edited = {0};
    for (int i = 0; i < meta.n; i++)
        if (!key || strcmp(meta.items[i].key, key) || value)
            assert_int_equal(json_object_set(&edited, meta.items[i].key,
                                             key && !strcmp(meta.items[i].key, key) ? value : meta.items[i].value),
                             0);
    if (key && value && !json_object_get(&meta, key)) assert_int_equal(json_object_set(&edited, key, value), 0);
    char *text = json_object_write(&edited);
    size_t mark = t_arena_mark();
    const char *names[32];
    Tensor *ts[32];
    for (int i = 0; i < f->n; i++) {
        const StEntry *e = &f->entries[i];
        names[i] = e->name;
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        bool target = tensor && !strcmp(e->name, tensor);
        Tensor *t = target && n_wrong > 0 ? t_new(1, (int64_t[]){n_wrong}) : t_new(e->ndim, e->shape);
        for (int64_t k = 0; k < t_numel(t); k++) t->data[k] = target ? fill : (k < n ? e->data[k] : 0);
        ts[i] = t;
    }
    assert_int_equal(st_save(crafted, f->n, names, ts, text), 0);
    t_arena_release(mark);
    free(text);
    json_object_free(&meta);
    json_object_free(&edited);
    st_close(f);
}

/* Loading `crafted` into a fresh run must fail with `why` in the message (which names the file) and change
 * nothing in the run. */
static void expect_refused(const char *why) {
    Run r;
    run_init(&r, 7.0f);
    TrainState st = run_state(&r, 3);
    TRng rng_before = r.rng;
    assert_int_equal(ckpt_load(crafted, &st), -1);
    print_message("  -> %s\n", t_errmsg());
    assert_non_null(strstr(t_errmsg(), crafted));
    if (!strstr(t_errmsg(), why)) fail_msg("expected '%s' in: %s", why, t_errmsg());
    assert_int_equal(st.step, 3);
    assert_int_equal(r.opt->step, 5);
    assert_int_equal(r.ema.step, 5);
    assert_memory_equal(&r.rng, &rng_before, sizeof rng_before);
    assert_true(r.ps.items[0].t->data[0] == 7.0f && r.opt->slots[0].m[0] == 7.0f && r.opt->slots[1].v[2] == 7.0f);
    assert_true(r.ema.shadow[0][0] == 7.0f);
    run_free(&r);
}

static void test_good_checkpoint_loads(void **state) {
    (void)state;
    craft(NULL, NULL, NULL, 0, 0);   /* an unchanged copy through the crafting path */
    Run r;
    run_init(&r, 7.0f);
    TrainState st = run_state(&r, 0);
    assert_int_equal(ckpt_load(crafted, &st), 0);
    assert_int_equal(st.step, 5);
    assert_true(r.ps.items[0].t->data[0] == 1.0f && r.opt->slots[0].m[0] == 1.0f);
    run_free(&r);
}

static void test_every_metadata_field(void **state) {
    (void)state;
    static const struct {
        const char *key, *value, *why;
    } cases[] = {
        {"format", "something-else", "not a training checkpoint"},
        {"format", NULL, "not a training checkpoint"},
        {"version", "2", "checkpoint version 2"},
        {"version", "1x", "checkpoint version 1x"},
        {"step", "-1", "'step' = -1 is outside 0..1000000000000"},
        {"step", "9223372036854775807", "'step' = 9223372036854775807 is outside"},   /* overflowed the heap */
        {"step", "99999999999999999999", "'step' = '99999999999999999999' is not an integer"},
        {"step", "1e3", "'step' = '1e3' is not an integer"},
        {"step", " 5", "is not an integer"},
        {"step", NULL, "'step' is missing"},
        {"optim_step", "-5", "'optim_step' = -5 is outside"},
        {"optim_step", "5000000000000", "'optim_step' = 5000000000000 is outside"},
        {"optim", "sgd", "checkpoint optimizer is 'sgd', the run uses 'adamw'"},
        {"ema_step", "-1", "'ema_step' = -1 is outside"},
        {"ema_step", "abc", "'ema_step' = 'abc' is not an integer"},
        {"lr", "nan", "'lr' is not a finite non-negative number"},
        {"lr", "-1", "'lr' is not a finite non-negative number"},
        {"lr", "1e400", "'lr' is not a finite non-negative number"},
        {"rng", "0000000000000001:0000000000000002", "'rng' is malformed"},
        {"rng", "0x00000000000001:0000000000000002:0000000000000000:0000000000000000", "'rng' is malformed"},
        {"rng", "0000000000000001:0000000000000002:0000000000000009:0000000000000000", "'rng' is malformed"},
        {"rng", "0000000000000001:0000000000000000:0000000000000002:0000000000000000", "'rng' is malformed"},
        {"rng", "0000000000000001:0000000000000002:0000000000000004:0000000000000001", "'rng' is malformed"},
        {"rng", "0000000000000001:0000000000000002:0000000000000004:0000000000000000x", "'rng' is malformed"},
        {"rng", "none:0000000000000000:0000000000000000:0000000000000000:0000000000000000", "no random-generator"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("%s = %s\n", cases[i].key, cases[i].value ? cases[i].value : "(removed)");
        craft(cases[i].key, cases[i].value, NULL, 0, 0);
        expect_refused(cases[i].why);
    }
}

static void test_every_tensor_kind(void **state) {
    (void)state;
    static const struct {
        const char *tensor;
        float fill;
        int64_t n_wrong;
        const char *why;
    } cases[] = {
        {"fc.weight", NAN, 0, "parameter 'fc.weight' element 0 is not finite"},
        {"fc.bias", 0, 4, "wrong shape"},
        {"optim/exp_avg/fc.weight", 0, 6, "'optim/exp_avg/fc.weight' has shape [6], the parameter has [3,2]"},
        {"optim/exp_avg/fc.bias", INFINITY, 0, "'optim/exp_avg/fc.bias' element 0 is inf (not finite)"},
        {"optim/exp_avg_sq/fc.weight", -1.0f, 0, "'optim/exp_avg_sq/fc.weight' element 0 is -1 (negative)"},
        {"optim/exp_avg_sq/fc.bias", 0, 2, "has shape [2], the parameter has [3]"},
        {"ema/fc.weight", NAN, 0, "'ema/fc.weight' element 0 is nan (not finite)"},
        {"ema/fc.bias", 0, 7, "'ema/fc.bias' has shape [7]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("%s\n", cases[i].tensor);
        craft(NULL, NULL, cases[i].tensor, cases[i].fill, cases[i].n_wrong);
        expect_refused(cases[i].why);
    }
}

/* ---- the safetensors reader's own strictness ---- */

static void write_raw(const char *path, const char *header, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = strlen(header);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(n >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    assert_int_equal(fclose(f), 0);
}

static void test_safetensors_header_rules(void **state) {
    (void)state;
    static const struct {
        const char *header;
        size_t data;
        const char *why;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "leave a gap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, "trailing bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "duplicate field \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "duplicate field \"dtype\""},
        {"{\"__metadata__\":{\"x\":\"1\"},\"__metadata__\":{\"x\":\"2\"}}", 0, "duplicate \"__metadata__\""},
        {"{\"__metadata__\":{\"x\":1}}", 0, "values must be strings"},
        {"{\"__metadata__\":{\"x\":\"1\",\"x\":\"2\"}}", 0, "duplicate key"},
        {"{\"__metadata__\":[]}", 0, "__metadata__ must be an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1-2}}", 4, "expected ',' or '}'"},
        {"{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "invalid UTF-8"},
    };
    char path[200];
    snprintf(path, sizeof path, "%s/raw.safetensors", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(path, cases[i].header, cases[i].data);
        StFile *f = st_open(path);
        print_message("%s -> %s\n", cases[i].header, f ? "opened" : t_errmsg());
        assert_null(f);
        assert_non_null(strstr(t_errmsg(), path));
        assert_non_null(strstr(t_errmsg(), cases[i].why));
    }
    /* a FIFO is refused at once (an open without O_NONBLOCK would wait for a writer forever) */
    char fifo[200];
    snprintf(fifo, sizeof fifo, "%s/fifo.safetensors", dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    alarm(20);
    assert_null(st_open(fifo));
    alarm(0);
    assert_non_null(strstr(t_errmsg(), "not a regular file (a FIFO)"));
    unlink(fifo);
    /* zero-sized tensors may share an offset, any order of records is fine */
    write_raw(path,
              "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
              "\"data_offsets\":[4,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
              8);
    StFile *f = st_open(path);
    assert_non_null(f);
    st_close(f);
}

/* ---- class 4: stale temporaries ---- */

static pid_t dead_pid(void) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return pid;
}

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("half a checkpoint", f);
    fclose(f);
}

static void test_stale_temporaries_removed(void **state) {
    (void)state;
    char ck[200], dead[300], live[300], other[300], recent_old_style[300];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", dir);
    snprintf(dead, sizeof dead, "%s.tmp.%ld.AbC123", ck, (long)dead_pid());
    snprintf(live, sizeof live, "%s.tmp.%ld.xYz789", ck, (long)getppid());   /* our parent is alive */
    snprintf(other, sizeof other, "%s/model.safetensors.tmp.%ld.AbC123", dir, (long)dead_pid());   /* another file's */
    snprintf(recent_old_style, sizeof recent_old_style, "%s.tmp.QwErTy", ck);   /* pid-less, but fresh */
    touch(dead);
    touch(live);
    touch(other);
    touch(recent_old_style);
    Run r;
    run_init(&r, 2.0f);
    TrainState st = run_state(&r, 1);
    assert_int_equal(ckpt_save(ck, &st), 0);
    assert_int_equal(access(dead, F_OK), -1);        /* removed by the save */
    assert_int_equal(access(live, F_OK), 0);         /* a live writer's: kept */
    assert_int_equal(access(other, F_OK), 0);        /* not this checkpoint's */
    assert_int_equal(access(recent_old_style, F_OK), 0);
    /* the load of a checkpoint path also clears them */
    snprintf(dead, sizeof dead, "%s.tmp.%ld.ZZZZZZ", ck, (long)dead_pid());
    touch(dead);
    assert_int_equal(ckpt_load(ck, &st), 0);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(st_remove_stale_temps(ck), 0);
    unlink(live);
    unlink(other);
    unlink(recent_old_style);
    unlink(ck);
    run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_checkpoint_loads),
        cmocka_unit_test(test_every_metadata_field),
        cmocka_unit_test(test_every_tensor_kind),
        cmocka_unit_test(test_safetensors_header_rules),
        cmocka_unit_test(test_stale_temporaries_removed),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    t_arena_shutdown();
    return rc;
}
