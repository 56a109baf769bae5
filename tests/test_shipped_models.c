/* The shipped small models (models/) on the demo: the six held-out photos of data/assets/demo, degraded with
 * every type models/README.md says the IR-SDE handles ("handled-types:"), classified by the shipped DA-CLIP and
 * restored by the shipped IR-SDE through the CLI exactly as scripts/demo.sh does (make-dataset with its seed,
 * eval-ir with "demo-steps:" sampling steps; the run is deterministic, so this is the demo's own result). Fails
 * when, for any handled type, the restored images' mean PSNR
 * does not beat the degraded inputs', or when DA-CLIP's accuracy on them falls below the figure models/README.md
 * states ("demo-min-accuracy:"). Also: both files load with their configurations and are F16. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tensor/safetensors.h"
#include "tests/util_cli.h"
#include "tests/util_tmpdir.h"

#define DACLIP_FILE "models/daclip-small.safetensors"
#define IRSDE_FILE "models/irsde-small.safetensors"

/* Under the sanitizers the demo takes ~12 minutes; there the test checks the same path for memory errors on
 * one type with a few steps, and the quality claim is left to the plain `make test` run. */
#if defined(__SANITIZE_ADDRESS__)
#define REDUCED_RUN 1
#else
#define REDUCED_RUN 0
#endif

static char dir[128];

static int setup(void **state) {
    if (cli_find(state)) return -1;
    return test_tmpdir_create(dir, sizeof dir, "shipped");
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(dir);
}

/* The value after "<key>: " on a line of models/README.md, into buf. */
static void readme_value(const char *key, char *buf, size_t n) {
    FILE *f = fopen("models/README.md", "r");
    assert_non_null(f);
    char line[1024];
    size_t klen = strlen(key);
    buf[0] = '\0';
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            snprintf(buf, n, "%s", line + klen + 1 + (line[klen + 1] == ' '));
            buf[strcspn(buf, "\r\n")] = '\0';
        }
    fclose(f);
    assert_true(buf[0] != '\0');
}

static void test_files_are_f16_with_config(void **state) {
    (void)state;
    const char *files[2] = {DACLIP_FILE, IRSDE_FILE};
    const char *keys[2] = {"vision_width", "context_dim"};
    for (int i = 0; i < 2; i++) {
        StFile *f = st_open(files[i]);
        assert_non_null(f);
        char v[64];
        assert_int_equal(st_meta_get(f, keys[i], v, sizeof v), 0);
        assert_true(f->n_owned == f->n);   /* every tensor was converted from F16 */
        st_close(f);
    }
}

/* Splits a CSV line in place into at most max fields (quoted fields lose their quotes; no embedded quotes). */
static int split_csv(char *line, char **field, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        if (*p == '"') {
            field[n++] = ++p;
            p = strchr(p, '"');
            if (!p) break;
            *p++ = '\0';
        } else {
            field[n++] = p;
            p += strcspn(p, ",\n");
        }
        if (*p != ',') {
            *p = '\0';
            break;
        }
        *p++ = '\0';
    }
    return n;
}

static void test_demo_restores_every_handled_type(void **state) {
    (void)state;
    char types[512], min_acc_text[32], steps[16], data[256], train[300], out[256], csv[300];
    readme_value("handled-types", types, sizeof types);
    readme_value("demo-steps", steps, sizeof steps);
    if (REDUCED_RUN) {
        types[strcspn(types, ",")] = '\0';
        snprintf(steps, sizeof steps, "3");
    }
    readme_value("demo-min-accuracy", min_acc_text, sizeof min_acc_text);
    double min_acc = atof(min_acc_text);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(train, sizeof train, "%s/train", data);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *mk[] = {"make-dataset", "--src", "data/assets/demo", "--out", data, "--types", types,
                        "--val-frac", "0", "--seed", "7", NULL};
    assert_int_equal(cli_run("/dev/null", mk), 0);
    cli_timeout_s = 900;   /* the whole demo: about 2 minutes, several times that under the sanitizers */
    const char *ev[] = {"eval-ir", "--daclip", DACLIP_FILE, "--model", IRSDE_FILE, "--data", train, "--out", out,
                        "--steps", steps, NULL};
    int rc = cli_run(NULL, ev);
    if (rc) fprintf(stderr, "%s\n", cli_err);
    assert_int_equal(rc, 0);

    snprintf(csv, sizeof csv, "%s/metrics.csv", out);
    FILE *f = fopen(csv, "r");
    assert_non_null(f);
    char line[2048], *fld[16];
    assert_non_null(fgets(line, sizeof line, f));   /* header */
    assert_int_equal(split_csv(line, fld, 16), 14);
    assert_string_equal(fld[3], "predicted");
    assert_string_equal(fld[5], "lq_psnr");
    assert_string_equal(fld[9], "psnr");
    int images = 0, correct = 0, type_rows = 0;
    while (fgets(line, sizeof line, f)) {
        assert_int_equal(split_csv(line, fld, 16), 14);
        if (strcmp(fld[1], "mean")) {   /* one image */
            images++;
            correct += !strcmp(fld[0], fld[3]);
            continue;
        }
        if (!strcmp(fld[0], "all")) continue;
        type_rows++;
        double lq = atof(fld[5]), restored = atof(fld[9]);
        printf("  %-16s degraded %.2f dB  restored %.2f dB\n", fld[0], lq, restored);
        if (!REDUCED_RUN && !(restored > lq)) fail_msg("%s: restored %.2f dB does not beat the degraded %.2f dB", fld[0], restored, lq);
    }
    fclose(f);
    int ntypes = 1;
    for (const char *p = types; *p; p++) ntypes += *p == ',';
    assert_int_equal(type_rows, ntypes);
    assert_int_equal(images, 6 * ntypes);
    printf("  DA-CLIP: %d of %d correct (at least %.0f%% required)\n", correct, images, 100 * min_acc);
    if (!REDUCED_RUN) assert_true(correct >= min_acc * images);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_are_f16_with_config),
        cmocka_unit_test(test_demo_restores_every_handled_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
