/* Issue 10, data side. Class 2: image and CSV outputs are atomic (a full file system keeps the previous file and
 * leaves no temporary; /dev/full is an error). Class 5: a FIFO, /dev/zero or a huge file given as input is refused
 * at once, and a 1x100000 image costs nothing in CLIP preprocessing. Class 6: a corrupt JPEG scan is an error.
 * Class 7: palette PNGs with transparency load. Class 8: an empty folder lists as n = 0 without UB. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "data/clip_preprocess.h"
#include "data/dataset.h"
#include "data/file_io.h"
#include "data/image_io.h"
#include "tests/util_tmpdir.h"

static char dir[96];

static int setup(void **state) {
    (void)state;
    return test_tmpdir_create(dir, sizeof dir, "file-io");
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(dir);
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

/* Deterministic noise (incompressible, so a PNG of it is about 3 bytes per pixel). */
static void noise_image(Image *im, int w, int h, uint64_t seed) {
    assert_int_equal(image_alloc(im, w, h, 3), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        seed = data_hash64(seed + i);
        im->px[i] = (float)(seed & 0xFF) / 255.f;
    }
}

static size_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}


/* ---- class 2: atomic outputs ---- */

static void test_full_file_system_keeps_previous_file(void **state) {
    (void)state;
    char mnt[200], png[300], jpg[300], csv[300], fill[300];
    path_in(mnt, sizeof mnt, "tmpfs");
    assert_int_equal(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        print_message("cannot mount a tmpfs here (%s): skipped\n", strerror(errno));
        rmdir(mnt);
        skip();
    }
    snprintf(png, sizeof png, "%s/out.png", mnt);
    snprintf(jpg, sizeof jpg, "%s/out.jpg", mnt);
    snprintf(csv, sizeof csv, "%s/rows.csv", mnt);
    Image small, big;
    noise_image(&small, 8, 8, 1);
    noise_image(&big, 256, 256, 2);   /* ~200 KB as PNG or JPEG q95: cannot fit in 64 KB */
    assert_int_equal(image_save(png, &small), 0);
    assert_int_equal(image_save(jpg, &small), 0);
    CaptionRow row = {"a.png", "a photo", "hazy"};
    assert_int_equal(caption_csv_write(csv, &row, 1), 0);
    size_t png_size = file_size(png), jpg_size = file_size(jpg), csv_size = file_size(csv);
    assert_true(png_size > 0 && jpg_size > 0 && csv_size > 0);

    assert_int_equal(image_save(png, &big), -1);
    assert_non_null(strstr(data_error(), png));
    assert_int_equal(image_save(jpg, &big), -1);
    assert_non_null(strstr(data_error(), jpg));
    /* fill the rest, so that even a small CSV cannot be written */
    snprintf(fill, sizeof fill, "%s/fill", mnt);
    FILE *f = fopen(fill, "wb");
    assert_non_null(f);
    char block[4096] = {0};
    while (fwrite(block, 1, sizeof block, f) == sizeof block && fflush(f) == 0) {}
    fclose(f);
    CaptionRow rows[64];
    for (int i = 0; i < 64; i++) rows[i] = row;
    assert_int_equal(caption_csv_write(csv, rows, 64), -1);
    assert_non_null(strstr(data_error(), csv));

    /* the previous files are intact and the only entries are ours */
    Image back;
    assert_int_equal(file_size(png), png_size);
    assert_int_equal(image_load(png, &back), 0);
    image_free(&back);
    assert_int_equal(file_size(jpg), jpg_size);
    assert_int_equal(file_size(csv), csv_size);
    assert_int_equal(test_dir_count(mnt), 4);   /* out.png out.jpg rows.csv fill: no temporary left */
    image_free(&small);
    image_free(&big);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
    rmdir(mnt);
}

static void test_dev_full_and_folders(void **state) {
    (void)state;
    Image im;
    noise_image(&im, 8, 8, 3);
    if (access("/dev/full", W_OK) == 0) {
        /* written directly (a device is not replaced by a file), and the failure is reported */
        assert_int_equal(png_write("/dev/full", &im, 8), -1);
        assert_non_null(strstr(data_error(), "/dev/full"));
        DataOutFile o;
        assert_int_equal(data_out_open(&o, "/dev/full"), 0);
        fputs("x\n", o.fp);
        assert_int_equal(data_out_commit(&o), -1);
        assert_non_null(strstr(data_error(), "No space left"));
    }
    assert_int_equal(image_save(dir, &im), -1);   /* no extension */
    char sub[300];
    path_in(sub, sizeof sub, "folder.png");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(image_save(sub, &im), -1);
    assert_non_null(strstr(data_error(), "is a folder"));
    rmdir(sub);
    /* through a symlink: the file it points to is replaced, the link stays */
    char target[300], link[300];
    path_in(target, sizeof target, "target.png");
    path_in(link, sizeof link, "link.png");
    assert_int_equal(image_save(target, &im), 0);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(image_save(link, &im), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    unlink(link);
    unlink(target);
    image_free(&im);
}

/* ---- class 5: inputs that never end or cost gigabytes ---- */

static void test_special_and_huge_inputs(void **state) {
    (void)state;
    char fifo[300];
    path_in(fifo, sizeof fifo, "pipe.png");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    alarm(20);   /* a hang is a failure */
    Image im;
    assert_int_equal(image_load(fifo, &im), -1);
    assert_non_null(strstr(data_error(), fifo));
    assert_non_null(strstr(data_error(), "not a regular file"));
    assert_int_equal(png_read(fifo, &im), -1);
    assert_int_equal(jpeg_read(fifo, &im), -1);
    CaptionRow *rows;
    int n;
    assert_int_equal(caption_csv_read(fifo, &rows, &n), -1);
    assert_non_null(strstr(data_error(), "FIFO"));
    assert_int_equal(caption_csv_read("/dev/zero", &rows, &n), -1);
    assert_non_null(strstr(data_error(), "/dev/zero: not a regular file"));
    assert_int_equal(image_load("/dev/zero", &im), -1);
    assert_int_equal(image_load(dir, &im), -1);
    assert_non_null(strstr(data_error(), "a folder"));
    alarm(0);
    unlink(fifo);
    /* a sparse file larger than the text cap: refused from its size, never read */
    char big[300];
    path_in(big, sizeof big, "huge.csv");
    int fd = open(big, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DATA_MAX_TEXT_BYTES + 1), 0);
    close(fd);
    assert_int_equal(caption_csv_read(big, &rows, &n), -1);
    assert_non_null(strstr(data_error(), "limit"));
    unlink(big);
}

static void test_clip_preprocess_aspect_bomb(void **state) {
    (void)state;
    Image line;
    assert_int_equal(image_alloc(&line, 1, 100000, 3), 0);   /* the 470-byte PNG of the issue, decoded */
    memset(line.px, 0, sizeof(float) * 300000);
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    assert_int_equal(clip_preprocess(&line, 224, out), -1);   /* was 1.7 GB of intermediate image */
    assert_non_null(strstr(data_error(), "aspect ratio"));
    image_free(&line);
    Image wide;   /* a wide panorama within the limit still works */
    assert_int_equal(image_alloc(&wide, 2000, 40, 3), 0);
    for (size_t i = 0; i < (size_t)2000 * 40 * 3; i++) wide.px[i] = 0.5f;
    assert_int_equal(clip_preprocess(&wide, 224, out), 0);
    image_free(&wide);
    free(out);
}

/* ---- class 6: corrupt JPEG data ---- */

static void test_corrupt_jpeg_scan(void **state) {
    (void)state;
    Image im, back;
    noise_image(&im, 64, 48, 4);
    unsigned char *buf;
    size_t len;
    assert_int_equal(jpeg_encode_mem(&im, 90, &buf, &len), 0);
    assert_int_equal(jpeg_decode_mem(buf, len, "good.jpg", &back), 0);
    image_free(&back);
    size_t sos = 0;
    for (size_t i = 2; i + 1 < len && !sos; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xDA) sos = i;
    assert_true(sos > 0);
    size_t scan = sos + 2 + ((size_t)buf[sos + 2] << 8 | buf[sos + 3]);
    /* zeroed bytes inside the entropy-coded data: libjpeg finishes early and only warns ("extraneous bytes") */
    unsigned char *bad = malloc(len);
    memcpy(bad, buf, len);
    memset(bad + scan + (len - scan) / 3, 0, 64);
    assert_int_equal(jpeg_decode_mem(bad, len, "bad.jpg", &back), -1);
    assert_non_null(strstr(data_error(), "bad.jpg: corrupt or truncated JPEG (Corrupt JPEG data"));
    assert_null(back.px);
    /* truncated: premature end of file */
    assert_int_equal(jpeg_decode_mem(buf, scan + (len - scan) / 2, "cut.jpg", &back), -1);
    assert_non_null(strstr(data_error(), "cut.jpg"));
    free(bad);
    free(buf);
    image_free(&im);
}

/* ---- class 7: palette PNGs with transparency ---- */

static void write_palette_png(const char *path, bool with_trns) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, 4, 2, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    png_set_PLTE(png, info, pal, 3);
    png_byte alpha[2] = {0, 128};   /* index 0 fully transparent, index 1 half */
    if (with_trns) png_set_tRNS(png, info, alpha, 2, NULL);
    png_write_info(png, info);
    png_byte r0[4] = {0, 1, 2, 0}, r1[4] = {2, 2, 1, 0};
    png_bytep rows[2] = {r0, r1};
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(f), 0);
}

static void test_palette_png_with_transparency(void **state) {
    (void)state;
    char p[300];
    path_in(p, sizeof p, "palette.png");
    for (int trns = 0; trns < 2; trns++) {
        write_palette_png(p, trns);
        Image im;
        if (image_load(p, &im)) fail_msg("palette PNG (tRNS %d) refused: %s", trns, data_error());
        assert_int_equal(im.c, 3);
        assert_int_equal(im.w, 4);
        /* the palette colours, alpha dropped: (0,0) red, (1,0) green, (2,0) blue, (0,1) blue */
        assert_true(image_at(&im, 0, 0)[0] == 1.f && image_at(&im, 0, 0)[1] == 0.f);
        assert_true(image_at(&im, 1, 0)[1] == 1.f && image_at(&im, 2, 0)[2] == 1.f);
        assert_true(image_at(&im, 0, 1)[2] == 1.f && image_at(&im, 0, 1)[0] == 0.f);
        image_free(&im);
    }
    unlink(p);
}

/* ---- class 8: empty folders ---- */

static void test_empty_folder(void **state) {
    (void)state;
    char empty[300];
    path_in(empty, sizeof empty, "empty");
    assert_int_equal(mkdir(empty, 0755), 0);
    char **paths = (char **)1;
    int n = -1;
    assert_int_equal(dataset_list_images(empty, &paths, &n), 0);   /* no qsort(NULL, 0): UBSan would stop here */
    assert_int_equal(n, 0);
    dataset_free_list(paths, n);
    dataset_free_list(NULL, 3);   /* harmless */
    Dataset ds;
    assert_int_equal(dataset_open_clean(empty, &ds), -1);
    assert_non_null(strstr(data_error(), empty));
    assert_int_equal(dataset_open(empty, "train", &ds), -1);
    assert_non_null(strstr(data_error(), "no <degradation>/LQ,GT image pairs"));
    rmdir(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file_system_keeps_previous_file),
        cmocka_unit_test(test_dev_full_and_folders),
        cmocka_unit_test(test_special_and_huge_inputs),
        cmocka_unit_test(test_clip_preprocess_aspect_bomb),
        cmocka_unit_test(test_corrupt_jpeg_scan),
        cmocka_unit_test(test_palette_png_with_transparency),
        cmocka_unit_test(test_empty_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
