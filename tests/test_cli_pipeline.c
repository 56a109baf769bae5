/* The documented DA-CLIP pipeline through the binary, with every default (issue 10, class 10: make-dataset's CSV
 * paths are relative to the dataset root, where the CSV is, and every command resolves them there):
 *   make-dataset -> train-clip -> train-daclip -> classify / eval-daclip / encode
 * Each step must exit 0 and leave the files the next one reads. Training is a few steps: this proves the chain,
 * test_daclip_train proves the learning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "data/image_io.h"
#include "tests/util_cli.h"
#include "tests/util_tmpdir.h"

static char dir[512];

static const char *at(const char *name) {
    static char buf[8][800];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void run_ok(const char *const *args) {
    int rc = cli_run(NULL, args);
    if (rc != 0) fail_msg("daclip %s exited %d:\n%s", args[0], rc, cli_err);
}

static void test_pipeline_with_defaults(void **state) {
    (void)state;
    /* four small clean "photos" */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/photos", dir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < 4; i++) {
        Image im;
        assert_int_equal(image_alloc(&im, 72, 64, 3), 0);
        for (int y = 0; y < im.h; y++)
            for (int x = 0; x < im.w; x++)
                for (int c = 0; c < 3; c++)
                    image_at(&im, x, y)[c] = (float)((x * (c + 1) + y * (i + 2)) % 64) / 64.0f;
        char name[64];
        snprintf(name, sizeof name, "photos/p%d.png", i);
        assert_int_equal(image_save(at(name), &im), 0);
        image_free(&im);
    }
    run_ok((const char *[]){"make-dataset", "--src", at("photos"), "--out", at("ds"), "--val-frac", "0.25",
                            "--types", "noisy,hazy,low-light", NULL});
    assert_int_equal(access(at("ds/daclip_train.csv"), R_OK), 0);
    run_ok((const char *[]){"train-clip", "--train", at("ds/daclip_train.csv"), "--val", at("ds/daclip_val.csv"),
                            "--out", at("clip"), "--steps", "2", "--batch", "4", "--warmup", "1", NULL});
    run_ok((const char *[]){"train-daclip", "--clip", at("clip/model.safetensors"), "--train", at("ds/daclip_train.csv"),
                            "--val", at("ds/daclip_val.csv"), "--out", at("daclip"), "--steps", "2", "--batch", "4",
                            "--warmup", "1", "--quiet", NULL});
    assert_non_null(strstr(cli_out, "degradation accuracy"));
    assert_int_equal(access(at("daclip/model.safetensors"), R_OK), 0);
    assert_int_equal(access(at("daclip/loss.png"), R_OK), 0);
    run_ok((const char *[]){"classify", "--model", at("daclip/model.safetensors"), at("ds/val/hazy/LQ"), "--csv",
                            at("classify.csv"), NULL});
    assert_non_null(strstr(cli_out, "0001.png"));
    run_ok((const char *[]){"eval-daclip", "--model", at("daclip/model.safetensors"), "--data", at("ds/daclip_val.csv"),
                            "--csv", at("eval.csv"), "--heatmap", at("confusion.png"), NULL});
    assert_non_null(strstr(cli_out, "overall"));
    assert_int_equal(access(at("confusion.png"), R_OK), 0);
    run_ok((const char *[]){"encode", "--model", at("daclip/model.safetensors"), "--images", at("ds/val/noisy/LQ"), NULL});
    /* a DA-CLIP row: the name and 2E values (content, then degradation); tiny CLIP: E = 128 */
    int commas = 0;
    for (const char *c = cli_out; *c && *c != '\n'; c++) commas += *c == ',';
    assert_int_equal(commas, 2 * 128);
}

static int setup(void **state) {
    if (cli_find(state)) return -1;
    return test_tmpdir_create(dir, sizeof dir, "cli-pipeline");
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pipeline_with_defaults)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
