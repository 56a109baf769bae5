/* PNG/JPEG reading and writing: round trips, every PNG colour type, EXIF orientation, corrupt/truncated files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/image_io.h"
#include "data/image_ops.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"

static char tmpdir[64];

static int setup(void **state) {
    (void)state;
    return test_tmpdir_create(tmpdir, sizeof tmpdir, "test-io");
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static void make_test_image(Image *im, int w, int h, int c) {
    assert_int_equal(image_alloc(im, w, h, c), 0);
    for (size_t i = 0; i < (size_t)w * h * c; i++) im->px[i] = (float)((i * 37 + 11) % 256) / 255.f;
}

static float max_abs_diff(const Image *a, const Image *b) {
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->h, b->h);
    assert_int_equal(a->c, b->c);
    float m = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * a->c; i++) m = (float)worst_of(m, fabsf(a->px[i] - b->px[i]));
    return m;
}

static void test_png_roundtrip_8_and_16(void **state) {
    (void)state;
    char p8[256], p16[256];
    tmp_path(p8, sizeof p8, "rt8.png");
    tmp_path(p16, sizeof p16, "rt16.png");
    Image a, b;
    make_test_image(&a, 13, 9, 3);
    assert_int_equal(image_save(p8, &a), 0);
    assert_int_equal(image_load(p8, &b), 0);
    assert_true(max_abs_diff(&a, &b) < 1e-6f);   /* values are exact uint8 levels */
    image_free(&b);
    a.px[0] = 0.123456f;                          /* not a uint8 level: 16-bit keeps it to 1/65535 */
    assert_int_equal(png_write(p16, &a, 16), 0);
    assert_int_equal(png_read(p16, &b), 0);
    assert_true(close_enough(b.px[0], 0.123456f, 1.0 / 65535, 0));
    assert_true(max_abs_diff(&a, &b) < 1.0f / 65535.f);
    image_free(&a);
    image_free(&b);
}

static void test_png_grey_written_loads_as_rgb(void **state) {
    (void)state;
    char p[256];
    tmp_path(p, sizeof p, "grey.png");
    Image a, b;
    make_test_image(&a, 5, 4, 1);
    assert_int_equal(image_save(p, &a), 0);
    assert_int_equal(image_load(p, &b), 0);
    assert_int_equal(b.c, 3);
    for (int i = 0; i < 20; i++)
        for (int k = 0; k < 3; k++) assert_float_close(b.px[3 * i + k], a.px[i], 1e-6);
    image_free(&a);
    image_free(&b);
}

static void check_fixture(const char *name, const char *ext, float tol) {
    char img[256], exp[256];
    snprintf(img, sizeof img, "tests/fixtures/images_%s.%s", name, ext);
    snprintf(exp, sizeof exp, "tests/fixtures/images_%s.f32", name);
    FILE *f = fopen(exp, "rb");
    if (!f) fail_msg("missing fixture %s (run tests/reference/gen_images.py)", exp);
    int32_t wh[2];
    assert_int_equal(fread(wh, 4, 2, f), 2);
    Image want;
    assert_int_equal(image_alloc(&want, wh[0], wh[1], 3), 0);
    size_t n = (size_t)wh[0] * wh[1] * 3;
    assert_int_equal(fread(want.px, sizeof(float), n, f), n);
    fclose(f);
    Image got;
    if (image_load(img, &got)) fail_msg("%s", data_error());
    float d = max_abs_diff(&got, &want);
    if (d > tol) fail_msg("%s: max diff %g > %g", img, d, tol);
    image_free(&got);
    image_free(&want);
}

static void test_png_fixtures_all_colour_types(void **state) {
    (void)state;
    const char *names[] = { "rgb8", "rgba8", "gray8", "graya8", "gray16", "rgb16", "palette" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) check_fixture(names[i], "png", 1e-6f);
}

static void test_jpeg_exif_orientation6(void **state) {
    (void)state;
    FILE *f = fopen("tests/fixtures/images_orient6.jpg", "rb");
    assert_non_null(f);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(jpeg_exif_orientation(buf, n), 6);
    /* truncated header data must not be read past the end */
    for (size_t cut = 0; cut < 64 && cut < n; cut++) assert_true(jpeg_exif_orientation(buf, cut) >= 1);
    Image im;
    assert_int_equal(image_load("tests/fixtures/images_orient6.jpg", &im), 0);
    assert_int_equal(im.w, 16);   /* stored 24x16, upright 16x24 */
    assert_int_equal(im.h, 24);
    image_free(&im);
    check_fixture("orient6", "jpg", 6.f / 255.f);   /* PIL's bundled libjpeg may round the IDCT differently */
}

static void test_jpeg_roundtrip(void **state) {
    (void)state;
    char p[256];
    tmp_path(p, sizeof p, "rt.jpg");
    Image a, b;
    assert_int_equal(image_alloc(&a, 32, 24, 3), 0);
    for (int y = 0; y < 24; y++)
        for (int x = 0; x < 32; x++) {
            float *q = image_at(&a, x, y);
            q[0] = x / 31.f; q[1] = y / 23.f; q[2] = 0.5f;
        }
    assert_int_equal(image_save(p, &a), 0);
    assert_int_equal(image_load(p, &b), 0);
    assert_true(max_abs_diff(&a, &b) < 0.05f);   /* smooth image at quality 95 */
    image_free(&b);
    unsigned char *buf;
    size_t len;
    assert_int_equal(jpeg_encode_mem(&a, 10, &buf, &len), 0);
    assert_true(len > 100);
    assert_int_equal(jpeg_decode_mem(buf, len, "mem", &b), 0);
    assert_int_equal(b.w, 32);
    assert_int_equal(jpeg_exif_orientation(buf, len), 1);
    free(buf);
    image_free(&a);
    image_free(&b);
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* Saves a noisy image in `ext`, then checks that a truncated copy and a copy with 64 garbled bytes at
 * `corrupt_at` both fail with a message naming the file. (Garbled JPEG entropy data often still decodes, so
 * the JPEG case garbles the marker segments at the start.) */
static void check_damaged(const char *ext, const char *what, size_t corrupt_at) {
    char good[256], bad[256];
    snprintf(good, sizeof good, "%s/good.%s", tmpdir, ext);
    snprintf(bad, sizeof bad, "%s/bad.%s", tmpdir, ext);
    Image a, b;
    make_test_image(&a, 64, 48, 3);
    assert_int_equal(image_save(good, &a), 0);
    image_free(&a);
    size_t n;
    unsigned char *bytes = read_bytes(good, &n);
    write_bytes(bad, bytes, n / 2);
    assert_int_equal(image_load(bad, &b), -1);
    assert_null(b.px);
    if (!strstr(data_error(), bad) || !strstr(data_error(), what)) fail_msg("truncated: unexpected message '%s'", data_error());
    for (size_t i = corrupt_at; i < corrupt_at + 64 && i < n; i++) bytes[i] ^= 0x5A;
    write_bytes(bad, bytes, n);
    assert_int_equal(image_load(bad, &b), -1);
    if (!strstr(data_error(), bad) || !strstr(data_error(), what)) fail_msg("corrupt: unexpected message '%s'", data_error());
    free(bytes);
}

static void test_corrupt_and_truncated_files(void **state) {
    (void)state;
    check_damaged("png", "PNG", 200);
    check_damaged("jpg", "JPEG", 2);
    char p[256];
    tmp_path(p, sizeof p, "junk.png");
    write_bytes(p, (const unsigned char *)"hello world", 11);
    Image b;
    assert_int_equal(image_load(p, &b), -1);
    assert_non_null(strstr(data_error(), "unknown image format"));
    assert_int_equal(image_load("/nonexistent/x.png", &b), -1);
    assert_non_null(strstr(data_error(), "/nonexistent/x.png"));
}

static void test_pixel_limit(void **state) {
    (void)state;
    char p[256];
    tmp_path(p, sizeof p, "big.png");
    Image a, b;
    make_test_image(&a, 40, 30, 3);
    assert_int_equal(image_save(p, &a), 0);
    image_set_pixel_limit(1000);
    assert_int_equal(image_load(p, &b), -1);
    assert_non_null(strstr(data_error(), "pixel limit"));
    image_set_pixel_limit(0);   /* back to the default */
    assert_int_equal(image_load(p, &b), 0);
    image_free(&a);
    image_free(&b);
}

static void test_geometric_ops(void **state) {
    (void)state;
    Image a, t, r;
    assert_int_equal(image_alloc(&a, 3, 2, 1), 0);
    for (int i = 0; i < 6; i++) a.px[i] = (float)i;   /* [[0 1 2] [3 4 5]] */
    assert_int_equal(image_rot90(&a, 1, &r), 0);      /* np.rot90: [[2 5] [1 4] [0 3]] */
    float rot[6] = { 2, 5, 1, 4, 0, 3 };
    assert_int_equal(r.w, 2);
    for (int i = 0; i < 6; i++) assert_float_close(r.px[i], rot[i], 0);
    image_free(&r);
    assert_int_equal(image_transpose(&a, &t), 0);     /* [[0 3] [1 4] [2 5]] */
    float tr[6] = { 0, 3, 1, 4, 2, 5 };
    for (int i = 0; i < 6; i++) assert_float_close(t.px[i], tr[i], 0);
    image_free(&t);
    assert_int_equal(image_pad_reflect(&a, 1, 1, 2, 2, &t), 0);   /* numpy reflect */
    assert_int_equal(t.w, 7);
    float row0[7] = { 5, 4, 3, 4, 5, 4, 3 };
    for (int i = 0; i < 7; i++) assert_float_close(t.px[i], row0[i], 0);
    image_free(&t);
    image_hflip(&a);
    assert_float_close(a.px[0], 2, 0);
    image_vflip(&a);
    assert_float_close(a.px[0], 5, 0);
    assert_int_equal(image_crop(&a, 1, 0, 2, 2, &t), 0);
    assert_float_close(t.px[0], 4, 0);
    image_free(&t);
    assert_int_equal(image_crop(&a, 2, 0, 2, 2, &t), -1);
    image_free(&a);
    /* Y of pure white/black at the BT.601 studio range */
    Image c, y;
    assert_int_equal(image_alloc(&c, 2, 1, 3), 0);
    for (int k = 0; k < 3; k++) { c.px[k] = 1.f; c.px[3 + k] = 0.f; }
    assert_int_equal(image_rgb_to_y(&c, &y), 0);
    assert_float_close(y.px[0], 235.f / 255.f, 1e-5);
    assert_float_close(y.px[1], 16.f / 255.f, 1e-6);
    image_free(&y);
    Image ycc, back;
    c.px[0] = 0.2f; c.px[1] = 0.7f; c.px[2] = 0.4f;
    assert_int_equal(image_rgb_to_ycbcr(&c, &ycc), 0);
    assert_int_equal(image_ycbcr_to_rgb(&ycc, &back), 0);
    for (int i = 0; i < 6; i++) assert_float_close(back.px[i], c.px[i], 1e-4);
    image_free(&ycc); image_free(&back); image_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_roundtrip_8_and_16),
        cmocka_unit_test(test_png_grey_written_loads_as_rgb),
        cmocka_unit_test(test_png_fixtures_all_colour_types),
        cmocka_unit_test(test_jpeg_exif_orientation6),
        cmocka_unit_test(test_jpeg_roundtrip),
        cmocka_unit_test(test_corrupt_and_truncated_files),
        cmocka_unit_test(test_pixel_limit),
        cmocka_unit_test(test_geometric_ops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
