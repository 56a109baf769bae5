/* tensor/pt_reader: files written by torch.save load to exactly the saved values (F32/F16/BF16/F64, strides,
 * shared storages with offsets, nn.Parameter, a training checkpoint with "module." names and numpy scalars in
 * the optimizer's param_groups, deflated and zip64 archives); hostile files are refused with a message naming
 * the file, never a crash (tests/reference/gen_pt.py writes them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tensor/pt_reader.h"
#include "tests/util_check.h"

#define DIR "tests/fixtures/pt/"

static const PtEntry *find(const PtFile *f, const char *name) {
    for (int i = 0; i < pt_count(f); i++)
        if (!strcmp(pt_entry(f, i)->name, name)) return pt_entry(f, i);
    return NULL;
}

static int64_t numel(const PtEntry *e) {
    int64_t n = 1;
    for (int k = 0; k < e->ndim; k++) n *= e->shape[k];
    return n;
}

/* Every expected array "<prefix>.<name>" equals the file's tensor <name>, exactly. */
static int check_all(PtFile *f, const Fixture *fx, const char *prefix) {
    int checked = 0;
    size_t pl = strlen(prefix);
    for (int i = 0; i < fx->count; i++) {
        if (strncmp(fx->names[i], prefix, pl) || fx->names[i][pl] != '.') continue;
        const char *name = fx->names[i] + pl + 1;
        const PtEntry *e = find(f, name);
        if (!e) fail_msg("%s not found in the file", name);
        int64_t n;
        const float *want = fixture_get(fx, fx->names[i], &n);
        assert_int_equal(numel(e), n);
        assert_int_equal(e->ndim, fx->ndim[i]);
        for (int k = 0; k < e->ndim; k++) assert_int_equal(e->shape[k], fx->shape[i][k]);
        float *got = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (pt_read_f32(f, e, got)) fail_msg("%s", t_errmsg());
        assert_memory_equal(got, want, sizeof(float) * (size_t)n);   /* exactly: F16/BF16 widen losslessly */
        free(got);
        checked++;
    }
    return checked;
}

static void test_dtypes_strides_shared(void **state) {
    (void)state;
    Fixture fx;
    fixture_load(&fx, "pt_expected.bin");
    const char *files[] = {DIR "dtypes.pt", DIR "deflated.pt", DIR "zip64.pt"};
    for (int k = 0; k < 3; k++) {
        PtFile *f = pt_open(files[k]);
        if (!f) fail_msg("%s", t_errmsg());
        assert_int_equal(check_all(f, &fx, "dtypes"), 9);
        const PtEntry *a = find(f, "shared_a"), *b = find(f, "shared_b"), *t = find(f, "transposed");
        assert_int_equal(a->storage, b->storage);    /* one storage, two tensors */
        assert_int_equal(b->offset, 2 * 5 + 1);
        assert_int_equal(t->stride[0], 1);
        assert_int_equal(find(f, "f16")->dtype, PT_F16);
        assert_int_equal(find(f, "bf16")->dtype, PT_BF16);
        /* an integer tensor is listed but not read as float */
        const PtEntry *c = find(f, "counts");
        assert_non_null(c);
        assert_int_equal(c->dtype, PT_I64);
        float buf[5];
        assert_int_equal(pt_read_f32(f, c, buf), -1);
        pt_close(f);
    }
    fixture_free(&fx);
}

static void test_training_checkpoint(void **state) {
    (void)state;
    Fixture fx;
    fixture_load(&fx, "pt_expected.bin");
    PtFile *f = pt_open(DIR "train_ckpt.pt");
    if (!f) fail_msg("%s", t_errmsg());
    /* the model under state_dict.module.*, the optimizer's moments under optimizer.state.N */
    char name[128];
    int n = 0;
    for (int i = 0; i < fx.count; i++) {
        if (strncmp(fx.names[i], "train.module.", 13)) continue;
        snprintf(name, sizeof name, "state_dict.%s", fx.names[i] + 6);
        const PtEntry *e = find(f, name);
        if (!e) fail_msg("%s missing", name);
        float got[8];
        assert_true(numel(e) <= 8);
        assert_int_equal(pt_read_f32(f, e, got), 0);
        assert_memory_equal(got, fixture_get(&fx, fx.names[i], NULL), sizeof(float) * (size_t)numel(e));
        n++;
    }
    assert_int_equal(n, 4);
    const PtEntry *m = find(f, "optimizer.state.0.exp_avg");
    assert_non_null(m);
    float got[8];
    assert_int_equal(pt_read_f32(f, m, got), 0);
    assert_memory_equal(got, fixture_get(&fx, "train.exp_avg.0", NULL), sizeof(float) * (size_t)numel(m));
    pt_close(f);
    fixture_free(&fx);
}

/* Each hostile file is refused at open (or at read, for the CRC) with a message naming the file and saying why. */
static void test_hostile_files(void **state) {
    (void)state;
    static const struct { const char *file, *why; } cases[] = {
        {DIR "os_system.pt", "refusing the global"},
        {DIR "bad_opcode.pt", "opcode"},
        {DIR "past_end.pt", "past the end"},
        {DIR "huge_shape.pt", "2^40"},
        {DIR "deep.pt", "nested"},
        {DIR "legacy.pt", "legacy"},
        {"tests/fixtures/clip_small.bin", "not a zip"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PtFile *f = pt_open(cases[i].file);
        if (f) fail_msg("%s was accepted", cases[i].file);
        if (!strstr(t_errmsg(), cases[i].file) || !strstr(t_errmsg(), cases[i].why))
            fail_msg("%s: message \"%s\" should name the file and say \"%s\"", cases[i].file, t_errmsg(), cases[i].why);
    }
    PtFile *f = pt_open(DIR "bad_crc.pt");
    if (!f) fail_msg("%s", t_errmsg());
    float buf[8];
    assert_int_equal(pt_read_f32(f, pt_entry(f, 0), buf), -1);
    assert_non_null(strstr(t_errmsg(), "CRC"));
    pt_close(f);
}

/* Every prefix of a good file (a truncated download) is refused cleanly. */
static void test_truncated(void **state) {
    (void)state;
    FILE *in = fopen(DIR "dtypes.pt", "rb");
    assert_non_null(in);
    unsigned char data[8192];
    size_t n = fread(data, 1, sizeof data, in);
    fclose(in);
    char path[] = "/tmp/daclip-pt-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (size_t len = 0; len < n; len += 37) {
        FILE *o = fopen(path, "wb");
        fwrite(data, 1, len, o);
        fclose(o);
        PtFile *f = pt_open(path);
        if (f) {   /* a prefix can only be complete if the zip directory is intact: never here */
            pt_close(f);
            fail_msg("a %zu-byte prefix of %zu was accepted", len, n);
        }
    }
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes_strides_shared),
        cmocka_unit_test(test_training_checkpoint),
        cmocka_unit_test(test_hostile_files),
        cmocka_unit_test(test_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
