/* safetensors: a hand-written Python fixture (F16, BF16, unaligned F32, metadata), write/read round trip,
 * and malformed files (built here) that must give an error naming the file and the problem. */
#include <dirent.h>
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

#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"

static char tmpdir[64];

static int setup_dir(void **state) {
    (void)state;
    return test_tmpdir_create(tmpdir, sizeof tmpdir, "test-st");
}

static int remove_dir(void **state) {
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static void test_python_fixture(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "st_mixed_expect.bin")) return;
    StFile *f = st_open("tests/fixtures/st_mixed.safetensors");
    assert_non_null(f);
    assert_int_equal(f->n, 4);
    const char *names[3] = {"half", "brain", "weight"};
    for (int i = 0; i < 3; i++) {
        const StEntry *e = st_find(f, names[i]);
        assert_non_null(e);
        int64_t n;
        const float *want = fixture_get(&fx, names[i], &n);
        /* exact: F16/BF16 -> F32 is lossless; compare bits (inf and -0 included) */
        assert_memory_equal(e->data, want, sizeof(float) * (size_t)n);
    }
    assert_true(signbit(st_find(f, "half")->data[5]));
    assert_true(isinf(st_find(f, "half")->data[4]));
    assert_int_equal(st_find(f, "weight")->shape[1], 3);
    const StEntry *empty = st_find(f, "empty");
    assert_int_equal(empty->ndim, 2);
    assert_int_equal(empty->shape[0], 0);
    assert_non_null(f->metadata_json);
    assert_non_null(strstr(f->metadata_json, "\"format\""));
    char buf[64];
    assert_int_equal(st_meta_get(f, "note", buf, sizeof buf), 0);
    assert_string_equal(buf, "quote \" and \xc3\xa9");
    assert_int_equal(st_meta_get(f, "absent", buf, sizeof buf), -1);
    assert_int_equal(st_meta_get(f, "note", buf, 4), -1); /* too long for buf */
    st_close(f);
    fixture_free(&fx);
}

static void test_round_trip(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    Tensor *a = t_new(T_SHAPE(3, 5)), *b = t_new(T_SHAPE(7)), *s = t_scalar(2.5f);
    fill_uniform(a, 1, -1, 1);
    fill_uniform(b, 2, -1, 1);
    Tensor *at = t_transpose(a, 0, 1); /* non-contiguous: written in logical order */
    const char *names[] = {"a.t", "b \"quoted\"", "s", "a"};
    Tensor *ts[] = {at, b, s, a};
    assert_int_equal(st_save(path, 4, names, ts, "{\"step\":\"12\",\"lr\":\"1e-3\"}"), 0);

    FILE *fp = fopen(path, "rb");
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, fp), 8);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    assert_int_equal((8 + hlen) % 8, 0);

    StFile *f = st_open(path);
    assert_non_null(f);
    assert_int_equal(f->n, 4);
    assert_string_equal(f->entries[1].name, "b \"quoted\"");
    const StEntry *e = st_find(f, "a.t");
    assert_int_equal(e->ndim, 2);
    assert_int_equal(e->shape[0], 5);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) assert_true(e->data[i * 3 + j] == a->data[j * 5 + i]);
    assert_memory_equal(st_find(f, "a")->data, a->data, sizeof(float) * 15);
    /* aligned F32 is used in place, not copied */
    assert_true((const char *)st_find(f, "a")->data > (const char *)f->map);
    assert_int_equal(f->n_owned, 0);
    assert_int_equal(st_find(f, "s")->ndim, 0);
    assert_true(st_find(f, "s")->data[0] == 2.5f);
    char buf[16];
    assert_int_equal(st_meta_get(f, "step", buf, sizeof buf), 0);
    assert_string_equal(buf, "12");
    st_close(f);

    /* no temporary file left behind */
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while ((de = readdir(d))) assert_null(strstr(de->d_name, ".tmp."));
    closedir(d);
}

/* st_save_f16 rounds as numpy's astype(float16) does (bit for bit, ties to even, subnormals, -0), the
 * file says F16 and is half the size, and a value beyond F16's range is refused with the old file kept. */
static void test_save_f16_matches_numpy(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "f16_rounding.bin")) return;
    int64_t n, n2;
    const float *in = fixture_get(&fx, "input", &n), *want = fixture_get(&fx, "numpy_f16", &n2);
    assert_int_equal(n, n2);
    Tensor *x = t_new(T_SHAPE(n));
    memcpy(x->data, in, sizeof(float) * (size_t)n);
    char path[128];
    snprintf(path, sizeof path, "%s/half.safetensors", tmpdir);
    const char *names[] = {"x"};
    Tensor *ts[] = {x};
    assert_int_equal(st_save_f16(path, 1, names, ts, "{\"k\":\"v\"}"), 0);
    StFile *f = st_open(path);
    assert_non_null(f);
    assert_int_equal(f->n_owned, 1);   /* converted on reading: it was F16 */
    assert_true(f->map_len < (size_t)n * 2 + 256);
    assert_memory_equal(st_find(f, "x")->data, want, sizeof(float) * (size_t)n);
    char buf[8];
    assert_int_equal(st_meta_get(f, "k", buf, sizeof buf), 0);
    st_close(f);

    x->data[n / 2] = 70000.0f;
    assert_int_equal(st_save_f16(path, 1, names, ts, NULL), -1);
    assert_non_null(strstr(t_errmsg(), "'x'"));
    assert_non_null(strstr(t_errmsg(), "F16"));
    f = st_open(path);   /* the earlier file is intact */
    assert_non_null(f);
    assert_memory_equal(st_find(f, "x")->data, want, sizeof(float) * (size_t)n);
    st_close(f);
    fixture_free(&fx);
}

/* Writes 8-byte length `hlen` (or strlen(json) when hlen < 0), the JSON, then `data`. */
static void write_raw(const char *path, long long hlen, const char *json, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    uint64_t h = hlen < 0 ? strlen(json) : (uint64_t)hlen;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(h >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(json, 1, strlen(json), fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

static void expect_error(const char *path, const char *needle) {
    StFile *f = st_open(path);
    if (f) {
        st_close(f);
        fail_msg("%s: opened, expected an error containing '%s'", path, needle);
    }
    const char *msg = t_errmsg();
    if (!strstr(msg, path) || !strstr(msg, needle)) fail_msg("error '%s' lacks the path or '%s'", msg, needle);
}

static void test_malformed_files(void **state) {
    (void)state;
    char p[128];
    float data[8] = {0};
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);

    write_raw(p, 0, "", NULL, 0);
    truncate(p, 5);
    expect_error(p, "truncated");

    write_raw(p, 1000, "{}", NULL, 0);
    expect_error(p, "past the end");

    const char *ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    write_raw(p, -1, ok, data, 16);
    StFile *f = st_open(p);
    assert_non_null(f); /* the control case is valid */
    st_close(f);

    write_raw(p, -1, ok, data, 12); /* data cut short */
    expect_error(p, "out of range");

    /* header text, data bytes, expected words in the error */
    static const struct { const char *json; size_t data; const char *needle; } bad[] = {
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,4]}}", 16, "out of range"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "need 12"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}", 16, "need"},
        {"{\"x\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "unknown dtype 'I64'"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 16, "malformed JSON"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 16, "malformed JSON"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} junk", 16, "trailing"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "duplicate tensor name 'x'"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 16, "missing data_offsets"},
        {"{\"__metadata__\":{\"a\":1}}", 0, "strings"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_raw(p, -1, bad[i].json, data, bad[i].data);
        expect_error(p, bad[i].needle);
    }

    write_raw(p, -1, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]", data, 0);
    expect_error(p, "malformed JSON");

    /* deep nesting inside an ignored field must not recurse without bound */
    char deep[600];
    int k = snprintf(deep, sizeof deep, "{\"x\":{\"extra\":");
    for (int i = 0; i < 200; i++) deep[k++] = '[';
    deep[k] = 0;
    write_raw(p, -1, deep, data, 0);
    expect_error(p, "malformed JSON");

    snprintf(p, sizeof p, "%s/does-not-exist.safetensors", tmpdir);
    expect_error(p, "cannot open");
}

static void test_save_errors_keep_old_file(void **state) {
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/keep.safetensors", tmpdir);
    Tensor *a = t_full(T_SHAPE(4), 1.0f);
    const char *names[] = {"a", "a"};
    Tensor *ts[] = {a, a};
    assert_int_equal(st_save(p, 1, names, ts, NULL), 0);
    assert_int_equal(st_save(p, 2, names, ts, NULL), -1);
    assert_non_null(strstr(t_errmsg(), "duplicate"));
    assert_int_equal(st_save(p, 1, names, ts, "{\"a\":"), -1);
    assert_non_null(strstr(t_errmsg(), "metadata"));
    StFile *f = st_open(p);
    assert_non_null(f);
    assert_int_equal(f->n, 1);
    st_close(f);
    assert_int_equal(st_save("/nonexistent-dir/x.safetensors", 1, names, ts, NULL), -1);
    assert_non_null(strstr(t_errmsg(), "/nonexistent-dir/x.safetensors"));
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_python_fixture, arena_teardown),
        cmocka_unit_test_teardown(test_round_trip, arena_teardown),
        cmocka_unit_test_teardown(test_malformed_files, arena_teardown),
        cmocka_unit_test_teardown(test_save_errors_keep_old_file, arena_teardown),
        cmocka_unit_test_teardown(test_save_f16_matches_numpy, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, setup_dir, remove_dir);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
