/* Resizing and CLIP preprocessing against PIL (fixtures from tests/reference/gen_resize.py); the training views. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/clip_augment.h"
#include "data/clip_preprocess.h"
#include "data/image_ops.h"
#include "data/resize.h"
#include "tests/util_check.h"

/* Same pattern as gen_resize.py:pattern(). */
static uint8_t pattern_at(int x, int y, int k, int seed) {
    uint32_t v = (uint32_t)seed * 0x9E3779B1u + (uint32_t)x * 0x85EBCA77u + (uint32_t)y * 0xC2B2AE3Du +
                 (uint32_t)k * 0x27D4EB2Fu;
    v ^= v >> 15; v *= 0x2C1B3C6Du; v ^= v >> 12; v *= 0x297A2D39u; v ^= v >> 15;
    return (uint8_t)(((x / 4 + y / 3) * 17 + k * 50 + (int)(v & 31)) & 255);
}

static uint8_t *pattern(int w, int h, int c, int seed) {
    uint8_t *p = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) p[((size_t)y * w + x) * c + k] = pattern_at(x, y, k, seed);
    return p;
}

static FILE *open_fixture(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("missing fixture %s (run tests/reference/gen_resize.py)", path);
    return f;
}

static void read_exact(FILE *f, void *buf, size_t n) { assert_int_equal(fread(buf, 1, n, f), n); }

static void test_bicubic_u8_matches_pil(void **state) {
    (void)state;
    FILE *f = open_fixture("resize_u8.bin");
    int32_t ncase;
    read_exact(f, &ncase, 4);
    assert_true(ncase >= 5);
    for (int t = 0; t < ncase; t++) {
        int32_t hd[6];
        read_exact(f, hd, sizeof hd);
        int w = hd[0], h = hd[1], c = hd[2], ow = hd[3], oh = hd[4], seed = hd[5];
        size_t n = (size_t)ow * oh * c;
        uint8_t *want = malloc(n), *got = malloc(n), *src = pattern(w, h, c, seed);
        read_exact(f, want, n);
        assert_int_equal(resize_bicubic_u8(src, w, h, c, got, ow, oh), 0);
        size_t bad = 0;
        int maxd = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)got[i] - (int)want[i]);
            if (d) bad++;
            if (d > maxd) maxd = d;
        }
        if (maxd > 1 || bad > n / 1000)
            fail_msg("case %dx%dx%d -> %dx%d: %zu of %zu differ, max %d", w, h, c, ow, oh, bad, n, maxd);
        free(want); free(got); free(src);
    }
    fclose(f);
}

static void test_bicubic_float_matches_pil_F(void **state) {
    (void)state;
    FILE *f = open_fixture("resize_float.bin");
    int32_t ncase;
    read_exact(f, &ncase, 4);
    for (int t = 0; t < ncase; t++) {
        int32_t hd[5];
        read_exact(f, hd, sizeof hd);
        int w = hd[0], h = hd[1], seed = hd[2], ow = hd[3], oh = hd[4];
        float *want = malloc(sizeof(float) * ow * oh);
        read_exact(f, want, sizeof(float) * ow * oh);
        uint8_t *p = pattern(w, h, 1, seed);
        Image src, dst;
        assert_int_equal(image_alloc(&src, w, h, 1), 0);
        for (int i = 0; i < w * h; i++) src.px[i] = p[i];
        assert_int_equal(image_resize(&src, &dst, ow, oh, RESIZE_BICUBIC), 0);
        for (int i = 0; i < ow * oh; i++)
            if (!close_enough(dst.px[i], want[i], 1e-3, 0)) fail_msg("float case %d px %d: %g vs %g", t, i, dst.px[i], want[i]);
        image_free(&src); image_free(&dst); free(p); free(want);
    }
    fclose(f);
}

static void test_clip_preprocess_matches_reference(void **state) {
    (void)state;
    FILE *f = open_fixture("resize_clip.bin");
    int32_t ncase;
    read_exact(f, &ncase, 4);
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    int sub = (224 + 6) / 7;
    float *want = malloc(sizeof(float) * 3 * sub * sub);
    for (int t = 0; t < ncase; t++) {
        int32_t hd[3];
        read_exact(f, hd, sizeof hd);
        int w = hd[0], h = hd[1], seed = hd[2];
        read_exact(f, want, sizeof(float) * 3 * sub * sub);
        uint8_t *p = pattern(w, h, 3, seed);
        Image im;
        assert_int_equal(image_alloc(&im, w, h, 3), 0);
        for (size_t i = 0; i < (size_t)w * h * 3; i++) im.px[i] = (float)p[i] / 255.f + 0.7f / 255.f;
        assert_int_equal(clip_preprocess(&im, 224, out), 0);
        float maxd = 0;
        for (int k = 0; k < 3; k++)
            for (int y = 0; y < sub; y++)
                for (int x = 0; x < sub; x++) {
                    float d = fabsf(out[(size_t)k * 224 * 224 + (size_t)(7 * y) * 224 + 7 * x] -
                                    want[((size_t)k * sub + y) * sub + x]);
                    maxd = (float)worst_of(maxd, d);
                }
        /* 1/255 of a level divided by the smallest std */
        if (!(maxd <= 1.0f / 255.f / 0.26f + 1e-5f)) fail_msg("clip case %dx%d: max diff %g", w, h, maxd);
        image_free(&im);
        free(p);
    }
    free(out); free(want);
    fclose(f);
}

static void test_area_and_bilinear_basics(void **state) {
    (void)state;
    Image a, b;
    assert_int_equal(image_alloc(&a, 4, 2, 1), 0);
    float v[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    memcpy(a.px, v, sizeof v);
    /* area 2x shrink = mean of 2x2 blocks */
    assert_int_equal(image_resize(&a, &b, 2, 1, RESIZE_AREA), 0);
    assert_float_close(b.px[0], (0 + 1 + 4 + 5) / 4.f, 1e-6);
    assert_float_close(b.px[1], (2 + 3 + 6 + 7) / 4.f, 1e-6);
    image_free(&b);
    /* area 4 -> 3 along x: output 0 covers [0, 4/3): 1·v0 + 1/3·v1, normalised by 4/3 */
    assert_int_equal(image_resize(&a, &b, 3, 2, RESIZE_AREA), 0);
    assert_float_close(b.px[0], (0 * 1 + 1 * (1 / 3.f)) / (4 / 3.f), 1e-5);
    image_free(&b);
    /* bilinear 2x enlarge: half-pixel centres; x' = 1 maps to 0.25 */
    assert_int_equal(image_resize(&a, &b, 8, 2, RESIZE_BILINEAR), 0);
    assert_float_close(b.px[0], 0.f, 1e-6);
    assert_float_close(b.px[1], 0.25f, 1e-6);
    assert_float_close(b.px[7], 3.f, 1e-6);
    image_free(&b);
    assert_int_not_equal(image_resize(&a, &b, 0, 3, RESIZE_BICUBIC), 0);
    image_free(&a);
}

static Image pattern_image(int w, int h, int seed) {
    Image im;
    assert_int_equal(image_alloc(&im, w, h, 3), 0);
    uint8_t *p = pattern(w, h, 3, seed);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) im.px[i] = (float)p[i] / 255.f;
    free(p);
    return im;
}

/* RandomResizedCrop: a whole-area draw on a square image can only fall back to the whole image, which is the
 * evaluation view; smaller areas give a crop fixed by the seed alone. */
static void test_training_view_crops(void **state) {
    (void)state;
    enum { S = 32 };
    Image im = pattern_image(48, 48, 3);
    float *a = malloc(sizeof(float) * 3 * S * S), *b = malloc(sizeof(float) * 3 * S * S);
    assert_int_equal(clip_preprocess(&im, S, a), 0);
    assert_int_equal(clip_preprocess_train(&im, S, 1.0, 12345, b), 0);
    assert_memory_equal(a, b, sizeof(float) * 3 * S * S);
    assert_int_equal(clip_preprocess_train(&im, S, 0.3, 7, a), 0);
    assert_int_equal(clip_preprocess_train(&im, S, 0.3, 7, b), 0);
    assert_memory_equal(a, b, sizeof(float) * 3 * S * S);
    int differ = 0;
    for (uint64_t seed = 8; seed < 12 && !differ; seed++) {
        assert_int_equal(clip_preprocess_train(&im, S, 0.3, seed, b), 0);
        differ = memcmp(a, b, sizeof(float) * 3 * S * S) != 0;
    }
    assert_true(differ);
    assert_int_not_equal(clip_preprocess_train(&im, S, 0.0, 7, b), 0);   /* scale must be in (0, 1] */
    image_free(&im);
    free(a), free(b);
}

/* The mirror option: column x of the mirrored view is column S-1-x of the view, twice is the identity, and the
 * coin is fair. */
static void test_training_view_mirror(void **state) {
    (void)state;
    enum { S = 7 };
    float v[3 * S * S], m[3 * S * S];
    for (int i = 0; i < 3 * S * S; i++) v[i] = (float)i;
    memcpy(m, v, sizeof v);
    clip_view_mirror(m, S);
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) assert_true(m[(k * S + y) * S + x] == v[(k * S + y) * S + (S - 1 - x)]);
    clip_view_mirror(m, S);
    assert_memory_equal(m, v, sizeof v);
    int heads = 0, n = 4000;
    for (int i = 0; i < n; i++) heads += clip_view_mirror_coin((uint64_t)i * 0x9E3779B97F4A7C15ull);
    if (heads < n / 2 - 150 || heads > n / 2 + 150) fail_msg("mirror coin: %d heads in %d", heads, n);
    /* mirroring the view of an image is the view of the mirrored image (the bicubic resize is symmetric) */
    enum { W = 40, H = 30, V = 24 };
    Image im = pattern_image(W, H, 5), flipped;
    assert_int_equal(image_alloc(&flipped, W, H, 3), 0);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 3; k++) flipped.px[((size_t)y * W + x) * 3 + k] = im.px[((size_t)y * W + (W - 1 - x)) * 3 + k];
    float *a = malloc(sizeof(float) * 3 * V * V), *b = malloc(sizeof(float) * 3 * V * V);
    assert_int_equal(clip_preprocess(&im, V, a), 0);
    assert_int_equal(clip_preprocess(&flipped, V, b), 0);
    clip_view_mirror(a, V);
    for (int i = 0; i < 3 * V * V; i++)   /* one uint8 level over the smallest std */
        if (fabsf(a[i] - b[i]) > 1.0f / 255.f / 0.26f + 1e-5f) fail_msg("mirror: element %d: %g vs %g", i, a[i], b[i]);
    image_free(&im), image_free(&flipped);
    free(a), free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bicubic_u8_matches_pil),
        cmocka_unit_test(test_bicubic_float_matches_pil_F),
        cmocka_unit_test(test_clip_preprocess_matches_reference),
        cmocka_unit_test(test_area_and_bilinear_basics),
        cmocka_unit_test(test_training_view_crops),
        cmocka_unit_test(test_training_view_mirror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
