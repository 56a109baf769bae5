/* The shipped assets (data/assets/) and how the defaults find them: $DACLIP_ASSETS, else next to the binary,
 * whatever the working directory; the vocabulary default of the CLI (train/clip_io.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "data/assets.h"
#include "data/image_io.h"
#include "tests/util_tmpdir.h"
#include "train/clip_io.h"

#define VOCAB_BYTES 1356917   /* bpe_simple_vocab_16e6.txt.gz, SHA-256 924691ac… (data/assets/SHA256SUMS) */

/* Canonical path of a file given relative to the repository root (tests start there). */
static char *repo_file(const char *rel) {
    char *p = realpath(rel, NULL);
    if (!p) fail_msg("%s is missing from the checkout", rel);
    return p;
}

static void test_shipped_files_present(void **state) {
    (void)state;
    struct stat st;
    assert_int_equal(stat("data/assets/clip/bpe_simple_vocab_16e6.txt.gz", &st), 0);
    assert_int_equal(st.st_size, VOCAB_BYTES);
    assert_int_equal(access("data/assets/LICENSES.md", R_OK), 0);
    for (int i = 0; i < 100; i++) {
        char path[128];
        Image m;
        snprintf(path, sizeof path, "data/assets/inpainting_masks/%06d.png", i);
        if (image_load(path, &m)) fail_msg("%s", data_error());
        assert_int_equal(m.w, 256);
        assert_int_equal(m.h, 256);
        image_free(&m);
    }
}

/* Found next to the binary (build/tests/<test> -> build/tests/../../data/assets), from any working directory,
 * as a canonical path. */
static void test_found_from_any_directory(void **state) {
    (void)state;
    unsetenv("DACLIP_ASSETS");
    char *want = repo_file("data/assets/clip/bpe_simple_vocab_16e6.txt.gz");
    char *want_dir = repo_file("data/assets/inpainting_masks");
    char cwd[4096], tmp[512], buf[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(test_tmpdir_create(tmp, sizeof tmp, "assets"), 0);
    for (int round = 0; round < 2; round++) {
        if (round == 1) assert_int_equal(chdir(tmp), 0);
        assert_ptr_equal(daclip_asset_path("clip/bpe_simple_vocab_16e6.txt.gz", buf, sizeof buf), buf);
        assert_string_equal(buf, want);
        assert_ptr_equal(daclip_asset_path("inpainting_masks", buf, sizeof buf), buf);
        assert_string_equal(buf, want_dir);
        /* the CLI's vocabulary default is the same file */
        assert_string_equal(clip_default_vocab(), want);
        unsetenv("DACLIP_VOCAB");
        assert_string_equal(clip_vocab_path(NULL), want);
        assert_string_equal(clip_vocab_path("given.txt.gz"), "given.txt.gz");
    }
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(test_tmpdir_remove(tmp), 0);
    free(want);
    free(want_dir);
}

/* $DACLIP_ASSETS is the only place looked at when set; a miss returns NULL and names the place. */
static void test_env_override(void **state) {
    (void)state;
    char tmp[512], path[700], buf[4096];
    assert_int_equal(test_tmpdir_create(tmp, sizeof tmp, "assets-env"), 0);
    snprintf(path, sizeof path, "%s/clip", tmp);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    setenv("DACLIP_ASSETS", tmp, 1);
    assert_ptr_equal(daclip_asset_path("clip/bpe_simple_vocab_16e6.txt.gz", buf, sizeof buf), buf);
    char *want = realpath(path, NULL);
    assert_non_null(want);
    assert_string_equal(buf, want);
    free(want);
    /* the masks are not in this folder: not found, although the project has them */
    assert_null(daclip_asset_path("inpainting_masks", buf, sizeof buf));
    snprintf(path, sizeof path, "%s/inpainting_masks", tmp);
    assert_string_equal(buf, path);
    unsetenv("DACLIP_ASSETS");
    assert_int_equal(test_tmpdir_remove(tmp), 0);
}

static void test_bad_arguments(void **state) {
    (void)state;
    char small[8], buf[4096];
    assert_null(daclip_asset_path("clip/bpe_simple_vocab_16e6.txt.gz", small, sizeof small));  /* does not fit */
    assert_true(strlen(small) < sizeof small);
    assert_null(daclip_asset_path("no/such/asset", buf, sizeof buf));
    assert_non_null(strstr(buf, "data/assets/no/such/asset"));
    assert_null(daclip_asset_path(NULL, buf, sizeof buf));
    assert_null(daclip_asset_path("clip", NULL, 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_files_present),
        cmocka_unit_test(test_found_from_any_directory),
        cmocka_unit_test(test_env_override),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
