/* Dataset layout, caption CSV (pandas-style TSV) and make-dataset. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/dataset.h"
#include "data/image_io.h"
#include "tests/util_tmpdir.h"

static char tmpdir[64];

static int setup(void **state) {
    (void)state;
    return test_tmpdir_create(tmpdir, sizeof tmpdir, "test-ds");
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_csv_roundtrip_with_quoting(void **state) {
    (void)state;
    char p[256];
    snprintf(p, sizeof p, "%s/rt.csv", tmpdir);
    CaptionRow rows[3] = {
        { "a/LQ/0001.png", "a city street with tall buildings", "hazy" },
        { "b/LQ/0002.png", "a sign saying \"stop\"\tnow", "noisy" },
        { "c/LQ/0003.png", "two lines\nof text", "rainy" },
    };
    assert_int_equal(caption_csv_write(p, rows, 3), 0);
    CaptionRow *got;
    int n;
    if (caption_csv_read(p, &got, &n)) fail_msg("%s", data_error());
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(got[i].filepath, rows[i].filepath);
        assert_string_equal(got[i].caption, rows[i].caption);
        assert_string_equal(got[i].degradation, rows[i].degradation);
    }
    caption_rows_free(got, n);
    /* pandas quoting as written on disk */
    FILE *f = fopen(p, "rb");
    char buf[512];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "b/LQ/0002.png\t\"a sign saying \"\"stop\"\"\tnow: noisy\"\n"));
}

static void test_csv_errors_name_file_and_line(void **state) {
    (void)state;
    char p[256];
    snprintf(p, sizeof p, "%s/bad.csv", tmpdir);
    CaptionRow *rows;
    int n;
    write_text(p, "filepath\ttitle\nx.png\ta cat: noisy\ny.png\tno separator here\n");
    assert_int_equal(caption_csv_read(p, &rows, &n), -1);
    char want[300];
    snprintf(want, sizeof want, "%s:3:", p);
    if (!strstr(data_error(), want)) fail_msg("message '%s' lacks '%s'", data_error(), want);
    write_text(p, "filepath\ttitle\nx.png\ta cat: two: noisy\n");
    assert_int_equal(caption_csv_read(p, &rows, &n), -1);
    write_text(p, "filepath\ttitle\nx.png\t\"a cat: noisy\n");
    assert_int_equal(caption_csv_read(p, &rows, &n), -1);
    assert_non_null(strstr(data_error(), "unterminated"));
    write_text(p, "filepath\ttitle\nx.png\ta: b\textra\n");
    assert_int_equal(caption_csv_read(p, &rows, &n), -1);
    assert_non_null(strstr(data_error(), ":2:"));
    write_text(p, "path\tcaption\n");
    assert_int_equal(caption_csv_read(p, &rows, &n), -1);
    /* CRLF and column order are accepted */
    write_text(p, "title\tfilepath\r\na dog: snowy\td.png\r\n");
    assert_int_equal(caption_csv_read(p, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].filepath, "d.png");
    assert_string_equal(rows[0].degradation, "snowy");
    caption_rows_free(rows, n);
    CaptionRow bad = { "x.png", "time: noon", "hazy" };
    assert_int_equal(caption_csv_write(p, &bad, 1), -1);
    assert_non_null(strstr(data_error(), "\": \""));
}

static void make_photos(const char *dir, int n) {
    char p[1100];
    snprintf(p, sizeof p, "mkdir -p %s", dir);
    assert_int_equal(system(p), 0);
    const char *names[] = { "beach_sunset.png", "red-car.png", "0003.png" };
    for (int i = 0; i < n; i++) {
        Image im;
        assert_int_equal(image_alloc(&im, 72 + 8 * i, 64, 3), 0);
        for (int y = 0; y < im.h; y++)
            for (int x = 0; x < im.w; x++) {
                float *q = image_at(&im, x, y);
                q[0] = (float)x / im.w; q[1] = (float)y / im.h; q[2] = 0.3f + 0.2f * i;
            }
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        assert_int_equal(image_save(p, &im), 0);
        image_free(&im);
    }
}

static void test_make_dataset_layout_and_csv(void **state) {
    (void)state;
    char src[256], out[256], caps[256], p[512];
    snprintf(src, sizeof src, "%s/photos", tmpdir);
    snprintf(out, sizeof out, "%s/ds", tmpdir);
    snprintf(caps, sizeof caps, "%s/captions.tsv", tmpdir);
    make_photos(src, 3);
    write_text(caps, "# filename<TAB>caption\nred-car.png\ta red car parked on a street\n");
    MakeDatasetOptions o;
    make_dataset_default_options(&o);
    o.src = src; o.out = out; o.captions = caps; o.val_frac = 0.34; o.seed = 7;
    if (make_dataset(&o)) fail_msg("%s", data_error());
    Dataset tr, va;
    if (dataset_open(out, "train", &tr)) fail_msg("%s", data_error());
    assert_int_equal(dataset_open(out, "val", &va), 0);
    assert_int_equal(tr.n, 2 * DEGRADE_N);   /* round(0.34·3) = 1 photo in val */
    assert_int_equal(va.n, DEGRADE_N);
    for (int t = 0; t < DEGRADE_N; t++) {
        assert_int_equal(dataset_type_count(&tr, t), 2);
        snprintf(p, sizeof p, "%s/train/%s/LQ/0002.png", out, degrade_name(t));
        assert_string_equal(tr.items[tr.type_start[t] + 1].lq, p);
        snprintf(p, sizeof p, "%s/train/%s/GT/0002.png", out, degrade_name(t));
        assert_string_equal(tr.items[tr.type_start[t] + 1].gt, p);
    }
    int n_cap = 0;
    for (int s = 0; s < 2; s++) {
        CaptionRow *rows;
        int n;
        snprintf(p, sizeof p, "%s/daclip_%s.csv", out, s ? "val" : "train");
        if (caption_csv_read(p, &rows, &n)) fail_msg("%s", data_error());
        assert_int_equal(n, s ? DEGRADE_N : 2 * DEGRADE_N);
        for (int i = 0; i < n; i++) {
            assert_true(degrade_type_from_name(rows[i].degradation) >= 0);
            assert_null(strstr(rows[i].caption, ": "));
            /* paths are relative to the dataset root, where the CSV is (as the official CSVs) */
            assert_true(rows[i].filepath[0] != '/');
            char full[1400];
            snprintf(full, sizeof full, "%s/%s", out, rows[i].filepath);
            assert_int_equal(access(full, R_OK), 0);
            assert_non_null(strstr(rows[i].filepath, rows[i].degradation));
            if (!strcmp(rows[i].caption, "a red car parked on a street")) n_cap++;
        }
        caption_rows_free(rows, n);
    }
    assert_int_equal(n_cap, DEGRADE_N);   /* the captions file is used for its photo, for every type */
    /* LQ differs from GT for a degradation that changes every pixel */
    Image gt, lq;
    int t = degrade_type_from_name("noisy");
    assert_int_equal(image_load(tr.items[tr.type_start[t]].gt, &gt), 0);
    assert_int_equal(image_load(tr.items[tr.type_start[t]].lq, &lq), 0);
    assert_int_equal(gt.w, lq.w);
    double d = 0;
    for (size_t i = 0; i < (size_t)gt.w * gt.h * 3; i++) d += (gt.px[i] - lq.px[i]) * (gt.px[i] - lq.px[i]);
    assert_true(d > 1.0);
    image_free(&gt); image_free(&lq);
    dataset_free(&tr);
    dataset_free(&va);
    /* a caption with ": " is rejected with file and line */
    write_text(caps, "red-car.png\ta car: red\n");
    assert_int_equal(make_dataset(&o), -1);
    assert_non_null(strstr(data_error(), "captions.tsv:1"));
}

static void test_dataset_mismatch_and_template(void **state) {
    (void)state;
    char root[256], p[512];
    snprintf(root, sizeof root, "%s/mis", tmpdir);
    snprintf(p, sizeof p, "%s/train/hazy/LQ", root);
    make_photos(p, 2);
    snprintf(p, sizeof p, "%s/train/hazy/GT", root);
    make_photos(p, 1);
    Dataset ds;
    assert_int_equal(dataset_open(root, "train", &ds), -1);
    assert_non_null(strstr(data_error(), "2 LQ images but 1 GT"));
    assert_int_equal(dataset_open(root, "val", &ds), -1);
    Image im;
    assert_int_equal(image_alloc(&im, 4, 4, 3), 0);
    for (int i = 0; i < 48; i++) im.px[i] = (i % 3 == 2) ? 0.9f : 0.1f;
    char cap[256];
    caption_template("/x/my_holiday:2020.png", &im, cap, sizeof cap);
    assert_null(strchr(cap, ':'));
    assert_non_null(strstr(cap, "my holiday"));
    assert_non_null(strstr(cap, "blue"));
    image_free(&im);
}

/* --patches: each photo gives N crops of the patch size, each a sample, the split still by photo; downscale
 * shrinks first (an 80x64 photo at 2x is 40x32: a 48-px patch is then the whole image). */
static void test_make_dataset_patches(void **state) {
    (void)state;
    char src[256], out[256], p[512];
    snprintf(src, sizeof src, "%s/photos_p", tmpdir);
    snprintf(out, sizeof out, "%s/ds_p", tmpdir);
    make_photos(src, 3);
    MakeDatasetOptions o;
    make_dataset_default_options(&o);
    o.src = src; o.out = out; o.val_frac = 0.34; o.seed = 3;
    o.patches = 4; o.patch_size = 24;
    for (int t = 0; t < DEGRADE_N; t++) o.types[t] = t == degrade_type_from_name("noisy");
    assert_int_equal(make_dataset(&o), 0);
    Dataset tr, va;
    assert_int_equal(dataset_open(out, "train", &tr), 0);
    assert_int_equal(dataset_open(out, "val", &va), 0);
    assert_int_equal(tr.n, 2 * 4);   /* 2 train photos x 4 patches */
    assert_int_equal(va.n, 1 * 4);
    Image im;
    assert_int_equal(image_load(tr.items[5].gt, &im), 0);
    assert_int_equal(im.w, 24);
    assert_int_equal(im.h, 24);
    image_free(&im);
    /* the patches of one photo come from different places (items 0 and 2; 0 and 1 happen to coincide for this
     * seed, a 1-in-2000 draw) */
    Image a, b;
    assert_int_equal(image_load(tr.items[0].gt, &a), 0);
    assert_int_equal(image_load(tr.items[2].gt, &b), 0);
    assert_true(memcmp(a.px, b.px, sizeof(float) * 24 * 24 * 3) != 0);
    image_free(&a), image_free(&b);
    dataset_free(&tr);
    dataset_free(&va);
    /* downscale: the whole (smaller) image when it is below the patch size */
    snprintf(out, sizeof out, "%s/ds_d", tmpdir);
    o.out = out; o.patches = 1; o.patch_size = 48; o.downscale = 2;
    assert_int_equal(make_dataset(&o), 0);
    snprintf(p, sizeof p, "%s/train/noisy/GT/0001.png", out);
    assert_int_equal(image_load(p, &im), 0);
    assert_true(im.w <= 48 && im.h == 32);
    image_free(&im);
    /* nonsense is refused */
    o.patch_size = 2;
    assert_int_equal(make_dataset(&o), -1);
}

/* Workers: the dataset written by 3 threads is byte for byte the one written by 1 (every output is fixed by the
 * photo's index), and a corrupt photo stops the workers with an error naming it. */
static void test_make_dataset_threads_same_output(void **state) {
    (void)state;
    char src[256], out1[256], out3[256], a[640], b[640];
    snprintf(src, sizeof src, "%s/photos_t", tmpdir);
    make_photos(src, 3);
    MakeDatasetOptions o;
    make_dataset_default_options(&o);
    o.src = src; o.val_frac = 0.34; o.seed = 11; o.patches = 3; o.patch_size = 24;
    for (int t = 0; t < DEGRADE_N; t++) o.types[t] = t % 3 == 0;   /* 4 of the ten */
    snprintf(out1, sizeof out1, "%s/ds_t1", tmpdir);
    snprintf(out3, sizeof out3, "%s/ds_t3", tmpdir);
    o.out = out1, o.threads = 1;
    if (make_dataset(&o)) fail_msg("%s", data_error());
    o.out = out3, o.threads = 3;
    if (make_dataset(&o)) fail_msg("%s", data_error());
    int compared = 0;
    for (int sp = 0; sp < 2; sp++) {
        const char *split = sp ? "val" : "train";
        snprintf(a, sizeof a, "%s/daclip_%s.csv", out1, split);
        snprintf(b, sizeof b, "%s/daclip_%s.csv", out3, split);
        assert_true(test_files_equal(a, b));
        for (int t = 0; t < DEGRADE_N; t += 3)
            for (int k = 1; k <= (sp ? 3 : 6); k++)
                for (int g = 0; g < 2; g++) {
                    snprintf(a, sizeof a, "%s/%s/%s/%s/%04d.png", out1, split, degrade_name(t), g ? "GT" : "LQ", k);
                    snprintf(b, sizeof b, "%s/%s/%s/%s/%04d.png", out3, split, degrade_name(t), g ? "GT" : "LQ", k);
                    if (!test_files_equal(a, b)) fail_msg("%s and %s differ", a, b);
                    compared++;
                }
    }
    assert_int_equal(compared, 4 * (6 + 3) * 2);
    /* a corrupt photo: the error names it, whatever worker met it */
    snprintf(a, sizeof a, "%s/zz_broken.png", src);
    write_text(a, "\x89PNG not really");
    o.out = out3;
    assert_int_equal(make_dataset(&o), -1);
    assert_non_null(strstr(data_error(), "zz_broken.png"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_roundtrip_with_quoting),
        cmocka_unit_test(test_csv_errors_name_file_and_line),
        cmocka_unit_test(test_make_dataset_layout_and_csv),
        cmocka_unit_test(test_make_dataset_patches),
        cmocka_unit_test(test_make_dataset_threads_same_output),
        cmocka_unit_test(test_dataset_mismatch_and_template),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
