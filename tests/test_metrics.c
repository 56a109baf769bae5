/* PSNR/SSIM against a numpy/scipy reimplementation of the official evaluation (tests/reference/gen_metrics.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "data/image_ops.h"
#include "data/metrics.h"
#include "tests/util_check.h"

static void test_metrics_match_reference(void **state) {
    (void)state;
    FILE *f = fopen("tests/fixtures/metrics_cases.bin", "rb");
    if (!f) fail_msg("missing tests/fixtures/metrics_cases.bin (run tests/reference/gen_metrics.py)");
    int32_t n;
    assert_int_equal(fread(&n, 4, 1, f), 1);
    assert_true(n >= 4);
    for (int t = 0; t < n; t++) {
        int32_t hd[4];
        assert_int_equal(fread(hd, 4, 4, f), 4);
        int w = hd[0], h = hd[1], c = hd[2], crop = hd[3];
        size_t np = (size_t)w * h * c;
        uint8_t *a = malloc(np), *b = malloc(np);
        assert_int_equal(fread(a, 1, np, f), np);
        assert_int_equal(fread(b, 1, np, f), np);
        double want[4];
        assert_int_equal(fread(want, 8, 4, f), 4);
        Image ga, pb;
        assert_int_equal(image_from_u8(a, w, h, c, &ga), 0);
        assert_int_equal(image_from_u8(b, w, h, c, &pb), 0);
        Metrics m;
        assert_int_equal(metrics_compute(&ga, &pb, crop, &m), 0);
        double got[4] = { m.psnr, m.ssim, m.psnr_y, m.ssim_y };
        for (int k = 0; k < 4; k++)
            if (!close_enough(got[k], want[k], 1e-4, 0)) fail_msg("case %d metric %d: %.8f vs %.8f", t, k, got[k], want[k]);
        image_free(&ga); image_free(&pb); free(a); free(b);
    }
    fclose(f);
}

static void test_identical_and_errors(void **state) {
    (void)state;
    Image a, b;
    assert_int_equal(image_alloc(&a, 20, 20, 3), 0);
    for (int i = 0; i < 1200; i++) a.px[i] = (i % 17) / 16.f;
    assert_int_equal(image_clone(&b, &a), 0);
    Metrics m;
    assert_int_equal(metrics_compute(&a, &b, 4, &m), 0);
    assert_true(isinf(m.psnr) && m.psnr > 0);
    assert_float_close(m.ssim, 1.0, 1e-12);
    /* a change below half a level vanishes in the uint8 rounding */
    b.px[5] += 0.4f / 255.f;
    assert_int_equal(metrics_compute(&a, &b, 4, &m), 0);
    assert_true(isinf(m.psnr));
    /* too small for crop + window */
    assert_int_equal(metrics_compute(&a, &b, 5, &m), -1);
    image_free(&b);
    assert_int_equal(image_alloc(&b, 21, 20, 3), 0);
    assert_int_equal(metrics_compute(&a, &b, 4, &m), -1);
    image_free(&a); image_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_match_reference),
        cmocka_unit_test(test_identical_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
