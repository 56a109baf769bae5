/* Inputs the fuzzers (make fuzz, tests/fuzz/) found troublesome, kept in tests/fixtures/fuzz/<reader>/: each
 * must be read or refused with a message, quickly (the first pt finding was a 100000-deep list whose APPENDs made
 * the mark search quadratic: a timeout). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "data/dataset.h"
#include "data/image_io.h"
#include "tensor/pt_reader.h"
#include "tensor/safetensors.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs fn on every file of tests/fixtures/fuzz/<sub>; returns how many there were. */
static int each(const char *sub, void (*fn)(const char *path)) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fixtures/fuzz/%s", sub);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        double t0 = now();
        fn(path);
        if (now() - t0 > 5.0) fail_msg("%s took %.1f s", path, now() - t0);
        n++;
    }
    closedir(d);
    return n;
}

static void pt_one(const char *path) {
    PtFile *f = pt_open(path);
    if (!f) return;
    for (int i = 0; i < pt_count(f); i++) {
        const PtEntry *e = pt_entry(f, i);
        int64_t n = 1;
        for (int k = 0; k < e->ndim; k++) n *= e->shape[k];
        if (n > (1 << 20)) continue;
        float *buf = malloc(sizeof(float) * (size_t)(n ? n : 1));
        pt_read_f32(f, e, buf);
        free(buf);
    }
    pt_close(f);
}

static void st_one(const char *path) {
    StFile *f = st_open(path);
    if (f) st_close(f);
}

static void image_one(const char *path) {
    Image im = {0};
    if (image_load(path, &im) == 0) image_free(&im);
}

static void csv_one(const char *path) {
    CaptionRow *rows;
    int n;
    if (caption_csv_read(path, &rows, &n) == 0) caption_rows_free(rows, n);
}

static void test_fuzz_findings(void **state) {
    (void)state;
    int n = each("pt", pt_one) + each("safetensors", st_one) + each("png", image_one) + each("jpeg", image_one) +
            each("csv", csv_one);
    print_message("%d fuzzer findings replayed\n", n);
    assert_true(n >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fuzz_findings)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
