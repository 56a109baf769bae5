/* The eval-ir report page: relative links between real paths, escaping, the table's up/down marks, and a
 * write failure that leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "train/eval_html.h"
#include "tests/util_tmpdir.h"

static char dir[96];

static int setup(void **state) {
    (void)state;
    return test_tmpdir_create(dir, sizeof dir, "html");
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(dir);
}

static void make(const char *rel, int is_dir) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (is_dir) {
        assert_int_equal(mkdir(p, 0755), 0);
    } else {
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
    }
}

static void check_rel(const char *from, const char *to, const char *want) {
    char a[256], b[256], got[256];
    snprintf(a, sizeof a, "%s/%s", dir, from);
    snprintf(b, sizeof b, "%s/%s", dir, to);
    assert_int_equal(path_relative(a, b, got, sizeof got), 0);
    assert_string_equal(got, want);
}

static void test_relative_paths(void **state) {
    (void)state;
    make("out", 1), make("out/noisy", 1), make("out/noisy/a.png", 0), make("data", 1), make("data/LQ", 1);
    make("data/LQ/x y.png", 0), make("o", 1), make("outer", 1), make("outer/z.png", 0);
    check_rel("out", "out/noisy/a.png", "noisy/a.png");               /* inside */
    check_rel("out", "data/LQ/x y.png", "../data/LQ/x y.png");        /* a sibling's file */
    check_rel("out/noisy", "data/LQ/x y.png", "../../data/LQ/x y.png");
    check_rel("o", "outer/z.png", "../outer/z.png");                  /* "o" is a prefix of "outer", not its folder */
    check_rel("out/./noisy/..", "outer/z.png", "../outer/z.png");     /* real paths, not spellings */
    char got[8], a[256], b[256];
    snprintf(a, sizeof a, "%s/out", dir);
    snprintf(b, sizeof b, "%s/data/LQ/x y.png", dir);
    assert_int_equal(path_relative(a, b, got, sizeof got), -1);       /* does not fit */
    snprintf(b, sizeof b, "%s/missing.png", dir);
    assert_int_equal(path_relative(a, b, got, sizeof got), -1);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static void test_page(void **state) {
    (void)state;
    make("page", 1), make("page/rainy", 1), make("page/rainy/0001.png", 0), make("set", 1);
    make("set/LQ", 1), make("set/GT", 1), make("set/LQ/a&b.png", 0), make("set/GT/a&b.png", 0);
    char lq[256], gt[256], out[256], page[256];
    snprintf(lq, sizeof lq, "%s/set/LQ/a&b.png", dir);
    snprintf(gt, sizeof gt, "%s/set/GT/a&b.png", dir);
    snprintf(out, sizeof out, "%s/page/rainy/0001.png", dir);
    snprintf(page, sizeof page, "%s/page/index.html", dir);
    EvalHtmlType types[2] = {{"rainy", 1, 20.0, 0.5, 23.5, 0.7, 1.0}, {"all", 1, 20.0, 0.5, 19.0, 0.4, -1.0}};
    EvalHtmlImage img = {"rainy", lq, out, gt, "rainy", 0.93, 20.0, 0.5, 23.5, 0.7};
    assert_int_equal(eval_html_write(page, "t<i>tle", "sub & title", types, 2, &img, 1, NULL), 0);
    char *s = slurp(page);
    assert_non_null(strstr(s, "<title>t&lt;i&gt;tle</title>"));
    assert_non_null(strstr(s, "sub &amp; title"));
    assert_non_null(strstr(s, "src=\"../set/LQ/a%26b.png\""));   /* relative and URL-encoded */
    assert_non_null(strstr(s, "src=\"rainy/0001.png\""));
    assert_non_null(strstr(s, "src=\"../set/GT/a%26b.png\""));
    assert_non_null(strstr(s, "<td class=\"up\">23.50</td>"));     /* restored beats degraded */
    assert_non_null(strstr(s, "<td class=\"down\">19.00</td>"));
    assert_non_null(strstr(s, "DA-CLIP: rainy, 93%"));
    assert_non_null(strstr(s, "<td>100%</td>"));
    assert_null(strstr(s, "grid.png"));
    free(s);
    /* a folder that does not exist: an error, and no file */
    snprintf(page, sizeof page, "%s/nowhere/index.html", dir);
    assert_int_equal(eval_html_write(page, "t", NULL, types, 2, &img, 1, NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relative_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
