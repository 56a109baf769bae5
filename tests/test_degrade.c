/* The ten DA-CLIP degradations (data/degrade.h) and their RNG (data/rng_pcg.h): determinism, the expected
 * effect of each one on synthetic images, parameter handling, odd image shapes. */
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
#include "data/degrade.h"
#include "data/image_io.h"
#include "data/rng_pcg.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"

/* ---- synthetic test images -------------------------------------------------------------------------------- */

typedef enum { IMG_GRADIENT, IMG_CHECKER, IMG_TEXTURE, IMG_FLAT } Pattern;

/* gradient: smooth ramps; checker: 8-px squares 0.2/0.8; texture: smooth random-phase sines (a natural-ish
 * spectrum, values about 0.15..0.85); flat: constant v. */
static Image make_image(int w, int h, int c, Pattern pat, float v) {
    Image im;
    assert_int_equal(image_alloc(&im, w, h, c), 0);
    Pcg32 rng;
    pcg_seed(&rng, 1234, 0);
    float fx[6], fy[6], ph[6][4];
    for (int k = 0; k < 6; k++) {
        fx[k] = pcg_range(&rng, -0.4f, 0.4f);
        fy[k] = pcg_range(&rng, -0.4f, 0.4f);
        for (int ch = 0; ch < 4; ch++) ph[k][ch] = pcg_range(&rng, 0.0f, 6.28f);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                float val = v;
                if (pat == IMG_GRADIENT) val = 0.15f + 0.6f * (float)x / (float)w + 0.1f * (float)y / (float)h + 0.05f * (float)ch;
                else if (pat == IMG_CHECKER) val = ((x / 8 + y / 8) & 1) ? 0.8f : 0.2f;
                else if (pat == IMG_TEXTURE) {
                    val = 0.5f;
                    for (int k = 0; k < 6; k++)
                        val += 0.055f / (float)(1 + k / 2) * sinf(fx[k] * (float)x * (k + 1) + fy[k] * (float)y * (k + 1) + ph[k][ch]);
                }
                image_at(&im, x, y)[ch] = ch == 3 ? 0.6f : val;   /* a 4th channel is alpha */
            }
    return im;
}

static double mean_of(const Image *im, int ch) {
    double s = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) s += image_at(im, x, y)[ch];
    return s / ((double)im->w * im->h);
}

static double std_of(const Image *im, int ch) {
    double m = mean_of(im, ch), s = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            double d = image_at(im, x, y)[ch] - m;
            s += d * d;
        }
    return sqrt(s / ((double)im->w * im->h));
}

static double luma_at(const Image *im, int x, int y) {
    const float *p = image_at(im, x, y);
    return im->c >= 3 ? 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] : p[0];
}

static size_t n_floats(const Image *im) { return (size_t)im->w * im->h * im->c; }

static int images_equal(const Image *a, const Image *b) {
    return a->w == b->w && a->h == b->h && a->c == b->c && !memcmp(a->px, b->px, n_floats(a) * sizeof(float));
}

static void apply_ok(const Image *clean, int type, const DegradeParams *p, uint64_t seed, Image *out) {
    if (degrade_apply(clean, type, p, seed, out)) fail_msg("%s: %s", degrade_name(type), data_error());
    assert_int_equal(out->w, clean->w);
    assert_int_equal(out->h, clean->h);
    assert_int_equal(out->c, clean->c);
    for (size_t i = 0; i < n_floats(out); i++)
        if (!(out->px[i] >= 0.0f && out->px[i] <= 1.0f)) fail_msg("%s: value %g outside [0,1]", degrade_name(type), out->px[i]);
}

static int setup(void **state) {
    (void)state;
    degrade_set_mask_dir("");   /* synthetic masks unless a test asks for the official ones */
    return 0;
}

/* ---- names, parameters, RNG ------------------------------------------------------------------------------- */

static void test_names_official_order(void **state) {
    (void)state;
    static const char *want[DEGRADE_N] = {"motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy",
                                          "raindrop", "rainy", "shadowed", "snowy", "uncompleted"};
    for (int t = 0; t < DEGRADE_N; t++) {
        assert_string_equal(degrade_name(t), want[t]);
        assert_int_equal(degrade_type_from_name(want[t]), t);
    }
    assert_null(degrade_name(-1));
    assert_null(degrade_name(DEGRADE_N));
    assert_int_equal(degrade_type_from_name("blurry"), -1);
    assert_int_equal(degrade_type_from_name("Hazy"), -1);
    assert_int_equal(degrade_type_from_name(NULL), -1);
}

static void test_params_ranges(void **state) {
    (void)state;
    DegradeParams p;
    degrade_default_params(DEG_NOISY, &p);
    assert_float_close(p.noise_sigma, 50.0f / 255.0f, 1e-7);
    assert_int_equal(p.jpeg_quality, 10);
    for (int t = 0; t < DEGRADE_N; t++) {
        degrade_default_params(t, &p);
        assert_int_equal(degrade_params_check(t, &p), 0);
        for (uint64_t s = 0; s < 50; s++) {
            degrade_random_params(t, s, &p);
            if (degrade_params_check(t, &p)) fail_msg("random params of %s, seed %llu: %s", degrade_name(t),
                                                      (unsigned long long)s, data_error());
            assert_true(p.blur_size % 2 == 1);
        }
        degrade_severity_params(t, 0.0f, &p);
        assert_int_equal(degrade_params_check(t, &p), 0);
        degrade_severity_params(t, 1.0f, &p);
        assert_int_equal(degrade_params_check(t, &p), 0);
    }
    DegradeParams lo, hi;
    degrade_severity_params(DEG_JPEG, 0.0f, &lo);
    degrade_severity_params(DEG_JPEG, 1.0f, &hi);
    assert_true(lo.jpeg_quality > hi.jpeg_quality);   /* harsher = lower quality */
    degrade_severity_params(DEG_NOISY, 0.0f, &lo);
    degrade_severity_params(DEG_NOISY, 1.0f, &hi);
    assert_true(lo.noise_sigma < hi.noise_sigma);

    assert_int_equal(degrade_param_set(&p, "jpeg_quality", 20), 0);
    assert_int_equal(p.jpeg_quality, 20);
    assert_int_equal(degrade_param_set(&p, "jpeg_quality", 200), -1);
    assert_non_null(strstr(data_error(), "jpeg_quality"));
    assert_int_equal(degrade_param_set(&p, "no_such_key", 1), -1);
    assert_non_null(strstr(data_error(), "no_such_key"));
    int n;
    const DegradeParamInfo *tab = degrade_param_table(&n);
    assert_true(n >= DEGRADE_N);
    for (int i = 0; i < n; i++) assert_true(tab[i].min <= tab[i].def && tab[i].def <= tab[i].max);
}

static void test_apply_rejects_bad_input(void **state) {
    (void)state;
    Image clean = make_image(16, 16, 3, IMG_GRADIENT, 0), out;
    DegradeParams p;
    degrade_default_params(DEG_NOISY, &p);
    p.noise_sigma = 2.0f;
    assert_int_equal(degrade_apply(&clean, DEG_NOISY, &p, 1, &out), -1);
    assert_non_null(strstr(data_error(), "noise_sigma"));
    assert_null(out.px);
    p.noise_sigma = NAN;
    assert_int_equal(degrade_apply(&clean, DEG_NOISY, &p, 1, &out), -1);
    assert_int_equal(degrade_apply(&clean, DEGRADE_N, NULL, 1, &out), -1);
    assert_int_equal(degrade_apply(&clean, -1, NULL, 1, &out), -1);
    Image empty = {0};
    assert_int_equal(degrade_apply(&empty, DEG_HAZY, NULL, 1, &out), -1);
    image_free(&clean);
}

static void test_rng(void **state) {
    (void)state;
    Pcg32 a, b;
    pcg_seed(&a, 42, 7);
    pcg_seed(&b, 42, 7);
    for (int i = 0; i < 100; i++) assert_int_equal(pcg_u32(&a), pcg_u32(&b));
    pcg_seed(&b, 42, 8);
    int same = 0;
    for (int i = 0; i < 100; i++) same += pcg_u32(&a) == pcg_u32(&b);
    assert_true(same < 3);
    double s = 0, s2 = 0, u = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        float z = pcg_normal(&a);
        s += z;
        s2 += (double)z * z;
        float v = pcg_uniform(&a);
        assert_true(v >= 0.0f && v < 1.0f);
        u += v;
        assert_true(pcg_below(&a, 7) < 7);
    }
    assert_float_close(s / n, 0.0, 0.01);
    assert_float_close(sqrt(s2 / n), 1.0, 0.01);
    assert_float_close(u / n, 0.5, 0.005);
}

/* ---- every type: determinism, shapes ---------------------------------------------------------------------- */

static void test_deterministic_per_seed(void **state) {
    (void)state;
    Image clean = make_image(96, 80, 3, IMG_TEXTURE, 0);
    for (int t = 0; t < DEGRADE_N; t++) {
        Image a, b, c;
        apply_ok(&clean, t, NULL, 11, &a);
        apply_ok(&clean, t, NULL, 11, &b);
        apply_ok(&clean, t, NULL, 12, &c);
        if (!images_equal(&a, &b)) fail_msg("%s: same seed, different output", degrade_name(t));
        if (images_equal(&a, &c)) fail_msg("%s: different seeds, same output", degrade_name(t));
        if (images_equal(&a, &clean)) fail_msg("%s: output equals input", degrade_name(t));
        image_free(&a);
        image_free(&b);
        image_free(&c);
    }
    image_free(&clean);
}

static void test_grey_rgba_and_tiny_images(void **state) {
    (void)state;
    static const int sizes[][3] = {{40, 30, 1}, {37, 23, 4}, {1, 1, 3}, {3, 2, 3}, {2, 9, 1}, {300, 7, 3}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        Image clean = make_image(sizes[k][0], sizes[k][1], sizes[k][2], IMG_GRADIENT, 0);
        for (int t = 0; t < DEGRADE_N; t++) {
            Image out;
            apply_ok(&clean, t, NULL, 5, &out);
            if (clean.c == 4)
                for (size_t i = 0; i < (size_t)clean.w * clean.h; i++)
                    if (out.px[i * 4 + 3] != clean.px[i * 4 + 3]) fail_msg("%s changed alpha", degrade_name(t));
            image_free(&out);
        }
        image_free(&clean);
    }
}

static void test_mixed(void **state) {
    (void)state;
    Image clean = make_image(64, 64, 3, IMG_TEXTURE, 0);
    int seen[4] = {0};
    for (uint64_t s = 0; s < 30; s++) {
        Image a, b;
        int ta[3], tb[3], na = 0, nb = 0;
        assert_int_equal(degrade_mixed(&clean, s, &a, ta, &na), 0);
        assert_int_equal(degrade_mixed(&clean, s, &b, tb, &nb), 0);
        assert_true(na == 2 || na == 3);
        seen[na]++;
        assert_int_equal(na, nb);
        assert_memory_equal(ta, tb, (size_t)na * sizeof(int));
        assert_true(images_equal(&a, &b));
        assert_false(images_equal(&a, &clean));
        for (int i = 0; i < na; i++) {
            assert_true(ta[i] >= 0 && ta[i] < DEGRADE_N);
            for (int j = 0; j < i; j++) assert_int_not_equal(ta[i], ta[j]);
        }
        /* holes are drawn last, JPEG after noise */
        for (int i = 0; i + 1 < na; i++) assert_int_not_equal(ta[i], DEG_UNCOMPLETED);
        for (int i = 0; i < na; i++)
            for (int j = i + 1; j < na; j++) assert_false(ta[i] == DEG_JPEG && ta[j] == DEG_NOISY);
        image_free(&a);
        image_free(&b);
    }
    assert_true(seen[2] > 0 && seen[3] > 0);
    image_free(&clean);
}

/* ---- each degradation does what it should ----------------------------------------------------------------- */

static void test_noisy_sigma(void **state) {
    (void)state;
    Image clean = make_image(256, 256, 3, IMG_FLAT, 0.5f), out;
    DegradeParams p;
    degrade_default_params(DEG_NOISY, &p);
    p.noise_sigma = 25.0f / 255.0f;   /* 0.5 ± 5σ: no clipping, the residual is exactly N(0, σ²) */
    apply_ok(&clean, DEG_NOISY, &p, 3, &out);
    for (int ch = 0; ch < 3; ch++) {
        assert_float_close(mean_of(&out, ch), 0.5, 0.003);
        assert_float_close(std_of(&out, ch) / p.noise_sigma, 1.0, 0.03);
    }
    image_free(&out);
    /* the official σ = 50/255 on a 0.5 image clips beyond ±2.55σ, which lowers the std by ~4% */
    degrade_default_params(DEG_NOISY, &p);
    apply_ok(&clean, DEG_NOISY, &p, 3, &out);
    double r = std_of(&out, 1) / p.noise_sigma;
    assert_true(r > 0.93 && r < 0.99);
    size_t n = (size_t)out.w * out.h * 3, rounded = 0;
    for (size_t i = 0; i < n; i++) {
        float q = out.px[i] * 255.0f;
        rounded += q > 0.0f && q < 255.0f && fabsf(q - roundf(q)) < 1e-4f;
    }
    assert_true(rounded < n / 100);   /* no rounding to 8-bit levels */
    image_free(&out);
    image_free(&clean);
}

/* Mean absolute horizontal+vertical difference across 8x8 block borders divided by the same inside blocks. */
static double blockiness(const Image *im) {
    double edge = 0, inner = 0;
    size_t ne = 0, ni = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 1; x < im->w; x++) {
            double d = fabs(luma_at(im, x, y) - luma_at(im, x - 1, y));
            if (x % 8 == 0) { edge += d; ne++; } else { inner += d; ni++; }
        }
    for (int y = 1; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            double d = fabs(luma_at(im, x, y) - luma_at(im, x, y - 1));
            if (y % 8 == 0) { edge += d; ne++; } else { inner += d; ni++; }
        }
    return (edge / (double)ne) / (inner / (double)ni + 1e-12);
}

static void test_jpeg_blocks(void **state) {
    (void)state;
    Image clean = make_image(128, 128, 3, IMG_TEXTURE, 0), q10, q50;
    DegradeParams p;
    degrade_default_params(DEG_JPEG, &p);
    apply_ok(&clean, DEG_JPEG, &p, 1, &q10);
    p.jpeg_quality = 50;
    apply_ok(&clean, DEG_JPEG, &p, 1, &q50);
    assert_false(images_equal(&q10, &clean));
    /* decoded values are 8-bit levels */
    for (size_t i = 0; i < n_floats(&q10); i += 7) assert_float_close(q10.px[i] * 255.0f, roundf(q10.px[i] * 255.0f), 1e-3);
    double b0 = blockiness(&clean), b10 = blockiness(&q10), b50 = blockiness(&q50);
    assert_true(b0 < 1.1);
    assert_true(b10 > 1.5);
    assert_true(b10 > b50);
    /* re-encoding: the q=10 result already sits on coarse levels, so it compresses much better than the clean */
    unsigned char *buf = NULL;
    size_t len_clean = 0, len_q10 = 0;
    assert_int_equal(jpeg_encode_mem(&clean, 90, &buf, &len_clean), 0);
    free(buf);
    assert_int_equal(jpeg_encode_mem(&q10, 90, &buf, &len_q10), 0);
    free(buf);
    assert_true(len_q10 < len_clean);
    image_free(&q10);
    image_free(&q50);
    image_free(&clean);
}

static void check_holes(const Image *clean, const Image *out, double min_frac, double max_frac) {
    size_t holes = 0, n = (size_t)clean->w * clean->h;
    for (size_t i = 0; i < n; i++) {
        const float *a = clean->px + i * clean->c, *b = out->px + i * out->c;
        int is_hole = b[0] == 1.0f;
        for (int ch = 0; ch < clean->c; ch++) {
            if (is_hole) assert_true(b[ch] == 1.0f);   /* holes are exactly white in every channel */
            else assert_true(b[ch] == a[ch]);           /* everything else is untouched */
        }
        holes += (size_t)is_hole;
    }
    double frac = (double)holes / (double)n;
    if (frac < min_frac || frac > max_frac) fail_msg("hole fraction %.3f not in [%.2f, %.2f]", frac, min_frac, max_frac);
}

static void test_uncompleted_synthetic(void **state) {
    (void)state;
    Image clean = make_image(256, 192, 3, IMG_TEXTURE, 0), out;   /* values < 0.9: no pixel is white */
    DegradeParams p;
    degrade_default_params(DEG_UNCOMPLETED, &p);
    for (uint64_t s = 0; s < 4; s++) {
        apply_ok(&clean, DEG_UNCOMPLETED, &p, s, &out);
        check_holes(&clean, &out, p.mask_coverage - 0.05, p.mask_coverage + 0.1);
        image_free(&out);
    }
    p.mask_coverage = 0.1f;
    apply_ok(&clean, DEG_UNCOMPLETED, &p, 9, &out);
    check_holes(&clean, &out, 0.08, 0.2);
    image_free(&out);
    image_free(&clean);
}

/* The project's copy of the official masks (data/assets/LICENSES.md); tests run from the repository root. */
#define PROJECT_MASKS "data/assets/inpainting_masks"

static void test_uncompleted_official_masks(void **state) {
    (void)state;
    degrade_set_mask_dir(NULL);   /* the default: the shipped masks, found next to the test binary */
    char src[4400];
    int rc = degrade_mask_source(src, sizeof src);
    if (rc) fail_msg("%s", data_error());
    assert_non_null(strstr(src, "the 100 official masks in /"));
    assert_non_null(strstr(src, PROJECT_MASKS));
    Image clean = make_image(256, 256, 3, IMG_TEXTURE, 0), out, mask;
    DegradeParams p;
    degrade_default_params(DEG_UNCOMPLETED, &p);
    p.mask_index = 1;
    rc = degrade_apply(&clean, DEG_UNCOMPLETED, &p, 0, &out);
    degrade_set_mask_dir("");
    assert_int_equal(rc, 0);
    /* at the masks' own size, area resizing is the identity: holes are exactly the black mask pixels */
    assert_int_equal(image_load(PROJECT_MASKS "/000001.png", &mask), 0);
    size_t holes = 0;
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            int black = image_at(&mask, x, y)[0] == 0.0f;
            holes += (size_t)black;
            for (int ch = 0; ch < 3; ch++)
                assert_true(image_at(&out, x, y)[ch] == (black ? 1.0f : image_at(&clean, x, y)[ch]));
        }
    assert_true(holes > 256 * 256 / 10);
    image_free(&mask);
    image_free(&out);
    image_free(&clean);
}

/* A mask folder without the official masks is an error for "uncompleted", never a silent switch to synthetic
 * masks; "" asks for synthetic masks explicitly, and the other degradations need no masks. */
static void test_uncompleted_missing_masks_fail(void **state) {
    (void)state;
    Image clean = make_image(64, 64, 3, IMG_TEXTURE, 0), out;
    char dir[512], src[4400], path[600];
    assert_int_equal(test_tmpdir_create(dir, sizeof dir, "masks"), 0);
    degrade_set_mask_dir(dir);
    assert_int_equal(degrade_mask_source(src, sizeof src), -1);
    assert_non_null(strstr(data_error(), "000000.png is missing"));
    assert_int_equal(degrade_apply(&clean, DEG_UNCOMPLETED, NULL, 1, &out), -1);
    assert_null(out.px);
    /* every mask but the last one */
    for (int i = 0; i < 99; i++) {
        char *shipped;
        snprintf(path, sizeof path, PROJECT_MASKS "/%06d.png", i);
        assert_non_null(shipped = realpath(path, NULL));
        snprintf(path, sizeof path, "%s/%06d.png", dir, i);
        assert_int_equal(symlink(shipped, path), 0);
        free(shipped);
    }
    assert_int_equal(degrade_mask_source(src, sizeof src), -1);
    assert_non_null(strstr(data_error(), "000099.png is missing"));
    DegradeParams p;
    degrade_default_params(DEG_UNCOMPLETED, &p);
    p.mask_index = 3;   /* present, but the folder as a whole is refused */
    assert_int_equal(degrade_apply(&clean, DEG_UNCOMPLETED, &p, 1, &out), -1);
    apply_ok(&clean, DEG_HAZY, NULL, 1, &out);
    image_free(&out);
    degrade_set_mask_dir("");
    assert_int_equal(degrade_mask_source(src, sizeof src), 0);
    assert_non_null(strstr(src, "synthetic"));
    apply_ok(&clean, DEG_UNCOMPLETED, NULL, 1, &out);
    image_free(&out);
    image_free(&clean);
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

static void test_hazy(void **state) {
    (void)state;
    Image clean = make_image(128, 128, 3, IMG_CHECKER, 0), out;
    for (uint64_t s = 0; s < 3; s++) {
        apply_ok(&clean, DEG_HAZY, NULL, s, &out);
        for (int ch = 0; ch < 3; ch++) {
            assert_true(std_of(&out, ch) < 0.8 * std_of(&clean, ch));   /* contrast reduced */
            assert_true(mean_of(&out, ch) > mean_of(&clean, ch) + 0.05); /* brighter, toward the airlight */
        }
        /* the top (far) is hazier than the bottom (near) */
        Image top = out, bottom = out;
        top.h = bottom.h = 32;
        bottom.px = image_at(&out, 0, 96);
        assert_true(std_of(&top, 1) < std_of(&bottom, 1));
        image_free(&out);
    }
    image_free(&clean);
}

static void test_low_light(void **state) {
    (void)state;
    Image clean = make_image(128, 128, 3, IMG_TEXTURE, 0), out;
    for (uint64_t s = 0; s < 3; s++) {
        apply_ok(&clean, DEG_LOW_LIGHT, NULL, s, &out);
        for (int ch = 0; ch < 3; ch++) assert_true(mean_of(&out, ch) < 0.6 * mean_of(&clean, ch));
        image_free(&out);
    }
    DegradeParams p;
    degrade_default_params(DEG_LOW_LIGHT, &p);
    apply_ok(&clean, DEG_LOW_LIGHT, &p, 1, &out);
    assert_true(mean_of(&out, 1) < 0.4 * mean_of(&clean, 1));
    image_free(&out);
    image_free(&clean);
}

/* Mean squared Laplacian of the luma: high-frequency energy. */
static double hf_energy(const Image *im) {
    double e = 0;
    for (int y = 1; y + 1 < im->h; y++)
        for (int x = 1; x + 1 < im->w; x++) {
            double l = 4 * luma_at(im, x, y) - luma_at(im, x - 1, y) - luma_at(im, x + 1, y) - luma_at(im, x, y - 1) -
                       luma_at(im, x, y + 1);
            e += l * l;
        }
    return e / ((double)(im->w - 2) * (im->h - 2));
}

static void test_motion_blurry(void **state) {
    (void)state;
    Image clean = make_image(128, 128, 3, IMG_CHECKER, 0), out;
    for (uint64_t s = 0; s < 4; s++) {
        apply_ok(&clean, DEG_MOTION_BLURRY, NULL, s, &out);
        assert_true(hf_energy(&out) < 0.3 * hf_energy(&clean));
        for (int ch = 0; ch < 3; ch++) assert_float_close(mean_of(&out, ch), mean_of(&clean, ch), 0.01);
        image_free(&out);
    }
    /* a bigger kernel blurs more */
    DegradeParams p;
    degrade_default_params(DEG_MOTION_BLURRY, &p);
    p.blur_size = 9;
    apply_ok(&clean, DEG_MOTION_BLURRY, &p, 2, &out);
    double e9 = hf_energy(&out);
    image_free(&out);
    p.blur_size = 31;
    apply_ok(&clean, DEG_MOTION_BLURRY, &p, 2, &out);
    assert_true(hf_energy(&out) < e9);
    image_free(&out);
    image_free(&clean);
}

/* Fractions of pixels whose luma rose by more than `up`, and fell by more than `down`. */
static void brightness_change(const Image *clean, const Image *out, double up, double down, double *f_up, double *f_down) {
    size_t nu = 0, nd = 0, n = (size_t)clean->w * clean->h;
    for (int y = 0; y < clean->h; y++)
        for (int x = 0; x < clean->w; x++) {
            double d = luma_at(out, x, y) - luma_at(clean, x, y);
            nu += d > up;
            nd += d < -down;
        }
    *f_up = (double)nu / (double)n;
    *f_down = (double)nd / (double)n;
}

static void test_rainy_streaks(void **state) {
    (void)state;
    Image clean = make_image(192, 192, 3, IMG_FLAT, 0.3f), out;
    DegradeParams p;
    degrade_default_params(DEG_RAINY, &p);
    p.rain_angle = 0.0f;   /* vertical streaks */
    apply_ok(&clean, DEG_RAINY, &p, 4, &out);
    double f_up, f_down;
    brightness_change(&clean, &out, 0.15, 0.01, &f_up, &f_down);
    assert_true(f_up > 0.03 && f_up < 0.7);
    assert_true(f_down == 0.0);
    /* streaks continue along their direction: 4 px above a bright pixel is far more often bright than chance,
     * 4 px beside it is about as often as chance */
    size_t bright = 0, both_v = 0, both_h = 0, cnt = 0;
    for (int y = 4; y < out.h; y++)
        for (int x = 4; x < out.w; x++) {
            int b = luma_at(&out, x, y) > 0.45;
            bright += (size_t)b;
            both_v += b && luma_at(&out, x, y - 4) > 0.45;
            both_h += b && luma_at(&out, x - 4, y) > 0.45;
            cnt++;
        }
    double base = (double)bright / (double)cnt, pv = (double)both_v / (double)bright, ph = (double)both_h / (double)bright;
    if (!(pv > base + 0.2 && ph < base + 0.1)) fail_msg("base %.3f, vertical %.3f, horizontal %.3f", base, pv, ph);
    image_free(&out);
    image_free(&clean);
}

static void test_snowy_particles(void **state) {
    (void)state;
    Image clean = make_image(192, 192, 3, IMG_FLAT, 0.25f), out;
    for (uint64_t s = 0; s < 3; s++) {
        apply_ok(&clean, DEG_SNOWY, NULL, s, &out);
        double f_up, f_down;
        brightness_change(&clean, &out, 0.2, 0.01, &f_up, &f_down);
        assert_true(f_up > 0.01 && f_up < 0.6);
        assert_true(f_down == 0.0);
        /* flakes are local: most pixels are much less brightened than the flakes */
        size_t faint = 0;
        for (int y = 0; y < out.h; y++)
            for (int x = 0; x < out.w; x++) faint += luma_at(&out, x, y) - luma_at(&clean, x, y) < 0.1;
        assert_true(faint > (size_t)out.w * out.h / 3);
        image_free(&out);
    }
    image_free(&clean);
}

static void test_shadowed_regions(void **state) {
    (void)state;
    Image clean = make_image(160, 128, 3, IMG_GRADIENT, 0), out;
    for (uint64_t s = 0; s < 5; s++) {
        apply_ok(&clean, DEG_SHADOWED, NULL, s, &out);
        size_t n = (size_t)clean.w * clean.h, dark = 0, same = 0;
        double ratio_in = 0;
        for (size_t i = 0; i < n; i++) {
            const float *a = clean.px + i * 3, *b = out.px + i * 3;
            if (!memcmp(a, b, 3 * sizeof(float))) same++;
            for (int ch = 0; ch < 3; ch++) assert_true(b[ch] <= a[ch]);   /* shadows never brighten */
            if (b[1] < 0.7f * a[1]) {
                dark++;
                ratio_in += (b[2] / a[2]) / (b[0] / a[0]);
            }
        }
        double f_dark = (double)dark / n, f_same = (double)same / n;
        if (f_dark < 0.04 || f_dark > 0.75) fail_msg("seed %llu: shadow fraction %.3f", (unsigned long long)s, f_dark);
        assert_true(f_same > 0.2);
        assert_true(ratio_in / (double)dark > 1.05);   /* blue loses less than red: a bluish shadow */
        image_free(&out);
    }
    image_free(&clean);
}

static void test_raindrop_local(void **state) {
    (void)state;
    Image clean = make_image(192, 160, 3, IMG_GRADIENT, 0), out;
    for (uint64_t s = 0; s < 3; s++) {
        apply_ok(&clean, DEG_RAINDROP, NULL, s, &out);
        size_t n = (size_t)clean.w * clean.h, changed = 0, calm = 0;
        for (int y = 0; y < clean.h; y++)
            for (int x = 0; x < clean.w; x++) {
                double d = fabs(luma_at(&out, x, y) - luma_at(&clean, x, y));
                changed += d > 0.03;
                calm += d < 0.005;
            }
        double fc = (double)changed / n, fq = (double)calm / n;
        if (fc < 0.01 || fc > 0.8 || fq < 0.1)
            fail_msg("seed %llu: changed %.3f, calm %.3f", (unsigned long long)s, fc, fq);
        image_free(&out);
    }
    image_free(&clean);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_official_order),
        cmocka_unit_test(test_params_ranges),
        cmocka_unit_test(test_apply_rejects_bad_input),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_deterministic_per_seed),
        cmocka_unit_test(test_grey_rgba_and_tiny_images),
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_noisy_sigma),
        cmocka_unit_test(test_jpeg_blocks),
        cmocka_unit_test(test_uncompleted_synthetic),
        cmocka_unit_test(test_uncompleted_official_masks),
        cmocka_unit_test(test_uncompleted_missing_masks_fail),
        cmocka_unit_test(test_hazy),
        cmocka_unit_test(test_low_light),
        cmocka_unit_test(test_motion_blurry),
        cmocka_unit_test(test_rainy_streaks),
        cmocka_unit_test(test_snowy_particles),
        cmocka_unit_test(test_shadowed_regions),
        cmocka_unit_test(test_raindrop_local),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
