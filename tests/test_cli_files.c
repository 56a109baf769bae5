/* Issue 10 end to end: the daclip binary on bad files. Every subcommand that reads a file is given a truncated
 * PNG, a corrupt JPEG, crafted model metadata, a crafted checkpoint, an empty folder, a FIFO or /dev/zero; it must
 * exit non-zero (never crash or hang) with a message naming the file. Also: metrics pairs by name and reports
 * unmatched ones, NaN weights are errors, degrade never overwrites its inputs, outputs on a full file system keep
 * the previous file, a model re-saved with ordinary JSON spacing loads, and train-clip resumed at its end writes
 * the model and cuts its log back to the checkpoint. Runs build/daclip (build-san/daclip under make san). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "data/image_io.h"
#include "nn/module.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"
#include "tests/util_cli.h"
#include "tests/util_tmpdir.h"
#include "train/clip_io.h"

static char dir[96];

static const char *in_dir(const char *name) {
    static char bufs[64][400];
    static int k;
    char *b = bufs[k++ % 64];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static void write_png(const char *path, int w, int h, float v) {
    Image im;
    assert_int_equal(image_alloc(&im, w, h, 3), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) im.px[i] = v + 0.02f * (float)(i % 11);
    assert_int_equal(image_save(path, &im), 0);
    image_free(&im);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}


/* Runs the command, which must fail with exit status `want` (0: any non-zero) and name `name` on stderr. */
static void expect_failure(const char *const *args, int want, const char *name, const char *why) {
    int rc = cli_run(NULL, args);
    print_message("daclip %s %s: exit %d: %s%s", args[0], args[1] ? args[1] : "", rc, cli_err, cli_out);
    if (want) assert_int_equal(rc, want);
    else assert_true(rc != 0);
    assert_true(rc < 128);   /* not killed by a signal or the hang alarm */
    assert_null(strstr(cli_err, "AddressSanitizer"));
    if (name && !strstr(cli_err, name)) fail_msg("stderr does not name %s", name);
    if (why && !strstr(cli_err, why)) fail_msg("stderr does not say '%s'", why);
}

/* ---- a micro CLIP model file (the shipped vocabulary, width 8) ---- */

static ClipConfig micro_config(void) {
    char err[256];
    Tokenizer *tok = tokenizer_load(clip_vocab_path(NULL), err, sizeof err);
    assert_non_null(tok);
    ClipConfig c = {.name = "micro", .vision = {16, 8, 8, 1, 2, 8}, .context_length = 8,
                    .vocab_size = tokenizer_vocab_size(tok), .text_width = 8, .text_heads = 2, .text_layers = 1};
    tokenizer_free(tok);
    return c;
}

/* Saves a micro model with metadata `meta` edited by (key, value) when key is given, and one weight set to NaN
 * when `nan` is set. */
static void write_model(const char *path, const char *key, const char *value, bool nan) {
    ClipConfig cfg = micro_config();
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    Clip m;
    assert_int_equal(clip_init(&m, &ps, "", &cfg, &rng), 0);
    if (nan) params_find(&ps, "visual.proj")->t->data[3] = NAN;
    char meta[8192];
    assert_int_equal(clip_model_meta(&cfg, clip_vocab_path(NULL), meta, sizeof meta), 0);
    JsonObject o = {0};
    assert_int_equal(json_object_parse(&o, meta, strlen(meta)), 0);
    if (key) assert_int_equal(json_object_set(&o, key, value), 0);
    char *text = json_object_write(&o);
    assert_int_equal(params_save_file(&ps, path, text), 0);
    free(text);
    json_object_free(&o);
    clip_free(&m);
    params_free(&ps);
}

/* Rewrites a safetensors file's header with ordinary JSON spacing (what a re-save by another tool gives). */
static void respace_header(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)n);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    char *spaced = malloc(hlen * 3 + 16);
    size_t k = 0;
    spaced[k++] = '{', spaced[k++] = '\n', spaced[k++] = ' ', spaced[k++] = ' ';
    bool in_string = false;
    for (uint64_t i = 1; i < hlen; i++) {
        char c = (char)b[8 + i];
        if (c == '"' && b[8 + i - 1] != '\\') in_string = !in_string;
        spaced[k++] = c;
        if (!in_string && (c == ':' || c == ',')) spaced[k++] = ' ';
        if (!in_string && c == ',' && b[8 + i - 1] == '}') spaced[k++] = '\n';
    }
    while (k && spaced[k - 1] == ' ') k--;   /* the old padding */
    spaced[k++] = '\n';
    f = fopen(path, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)k >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(spaced, 1, k, f);
    fwrite(b + 8 + hlen, 1, (size_t)n - 8 - hlen, f);
    assert_int_equal(fclose(f), 0);
    free(spaced);
    free(b);
}

static int setup(void **state) {
    if (cli_find(state) || test_tmpdir_create(dir, sizeof dir, "cli-files")) return -1;
    if (mkdir(in_dir("imgs"), 0755) || mkdir(in_dir("empty"), 0755)) return -1;
    write_png(in_dir("imgs/a.png"), 24, 24, 0.2f);
    write_png(in_dir("imgs/b.png"), 24, 24, 0.5f);
    write_png(in_dir("good.png"), 24, 24, 0.3f);
    write_model(in_dir("model.safetensors"), NULL, NULL, false);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_remove(dir);
}

/* ---- bad images ---- */

static void test_truncated_png_and_corrupt_jpeg(void **state) {
    (void)state;
    /* a PNG cut in its image data */
    const char *cut = in_dir("cut.png");
    write_png(cut, 64, 64, 0.1f);
    assert_int_equal(truncate(cut, file_size(cut) / 2), 0);
    /* a JPEG whose scan has a run of zeroed bytes */
    const char *bad_jpg = in_dir("corrupt.jpg"), *good = in_dir("good.png");
    Image im;
    assert_int_equal(image_alloc(&im, 64, 48, 3), 0);
    for (size_t i = 0; i < (size_t)64 * 48 * 3; i++) im.px[i] = (float)(data_hash64(i) & 0xFF) / 255.f;
    unsigned char *buf;
    size_t len;
    assert_int_equal(jpeg_encode_mem(&im, 90, &buf, &len), 0);
    image_free(&im);
    memset(buf + len / 2, 0, 64);
    FILE *f = fopen(bad_jpg, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    free(buf);
    const char *model = in_dir("model.safetensors"), *out = in_dir("never.png");
    for (int k = 0; k < 2; k++) {
        const char *bad = k ? bad_jpg : cut;
        expect_failure((const char *[]){"metrics", "--gt", bad, "--pred", good, NULL}, 1, bad, NULL);
        expect_failure((const char *[]){"metrics", "--gt", good, "--pred", bad, NULL}, 1, bad, NULL);
        expect_failure((const char *[]){"degrade", "--type", "hazy", "--quiet", bad, out, NULL}, 1, bad, "corrupt");
        assert_int_equal(access(out, F_OK), -1);
        expect_failure((const char *[]){"degrade", "--sheet", bad, out, NULL}, 1, bad, NULL);
        expect_failure((const char *[]){"clip-classify", "--model", model, "--image", bad, "--labels", "a,b", NULL}, 1,
                       bad, NULL);
    }
    /* a 1x100000 PNG (a few hundred bytes): refused by the CLIP preprocessing, named, in no time */
    const char *line = in_dir("line.png");
    write_png(line, 1, 100000, 0.5f);
    expect_failure((const char *[]){"clip-classify", "--model", model, "--image", line, "--labels", "a", NULL}, 1, line,
                   "aspect ratio");
    unlink(line);
}

/* ---- model metadata and weights ---- */

static void test_bad_model_files(void **state) {
    (void)state;
    const char *img = in_dir("good.png"), *bad = in_dir("bad_model.safetensors");
    static const struct {
        const char *key, *value, *why;
    } cases[] = {
        {"vision_heads", "0", "vision_heads"},                        /* divided by zero */
        {"text_heads", "3", "not divisible by text_heads 3"},
        {"patch_size", "5", "does not divide image_size"},
        {"vision_width", "100000000", "vision_width"},
        {"vision_width", "16384", "parameters but the file holds only"},   /* would allocate gigabytes */
        {"vocab_size", "abc", "'vocab_size' = 'abc' is not an integer"},
        {"model", NULL, NULL},
    };
    for (size_t i = 0; cases[i].value; i++) {
        write_model(bad, cases[i].key, cases[i].value, false);
        expect_failure((const char *[]){"clip-classify", "--model", bad, "--image", img, "--labels", "a,b", NULL}, 1,
                       bad, cases[i].why);
        expect_failure((const char *[]){"encode", "--model", bad, "--text", "a photo", NULL}, 1, bad, cases[i].why);
    }
    /* not a safetensors file at all */
    write_text(bad, "not a model");
    expect_failure((const char *[]){"encode", "--model", bad, "--text", "x", NULL}, 1, bad, NULL);
    /* NaN weights: non-finite output is an error, not probabilities of 0 */
    write_model(bad, NULL, NULL, true);
    expect_failure((const char *[]){"clip-classify", "--model", bad, "--image", img, "--labels", "a,b", NULL}, 1, bad,
                   "non-finite");
    const char *csv = in_dir("emb.csv");
    write_text(csv, "previous\n");
    expect_failure((const char *[]){"encode", "--model", bad, "--images", in_dir("imgs"), "--out", csv, NULL}, 1,
                   "a.png", "non-finite");
    assert_int_equal(file_size(csv), 9);   /* not replaced by a failed run */
    unlink(bad);
    unlink(csv);
}

static void test_model_with_spaced_metadata_loads(void **state) {
    (void)state;
    const char *m = in_dir("spaced.safetensors");
    write_model(m, NULL, NULL, false);
    respace_header(m);
    StFile *f = st_open(m);
    assert_non_null(f);
    assert_non_null(strstr(f->metadata_json, "\"model\": \"micro\", "));   /* really spaced */
    st_close(f);
    int rc = cli_run(NULL, (const char *[]){"clip-classify", "--model", m, "--image", in_dir("good.png"), "--labels",
                                            "a cat,a dog", NULL});
    print_message("%s", cli_err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(cli_out, "label,probability\n"));
    unlink(m);
}

/* ---- checkpoints ---- */

static void write_dataset(void) {
    write_text(in_dir("train.csv"), "filepath\ttitle\nimgs/a.png\ta dark photo: hazy\nimgs/b.png\ta light photo: noisy\n");
}

static void test_crafted_checkpoint(void **state) {
    (void)state;
    write_dataset();
    const char *ck = in_dir("crafted.safetensors");
    static const char *const steps[] = {"-1", "9223372036854775807", "1e3"};
    for (int i = 0; i < 3; i++) {
        char meta[200];
        snprintf(meta, sizeof meta, "{\"format\":\"daclip-train-state\",\"version\":\"1\",\"step\":\"%s\"}", steps[i]);
        size_t mark = t_arena_mark();
        Tensor *t = t_new(T_SHAPE(2));
        t->data[0] = t->data[1] = 0;
        assert_int_equal(st_save(ck, 1, (const char *[]){"w"}, &t, meta), 0);
        t_arena_release(mark);
        expect_failure((const char *[]){"train-clip", "--train", in_dir("train.csv"), "--out", in_dir("run_bad"),
                                        "--steps", "2", "--batch", "2", "--resume", ck, NULL},
                       1, ck, "'step'");
    }
    write_text(ck, "\x10\0\0\0\0\0\0\0{\"a\":");   /* truncated header */
    expect_failure((const char *[]){"train-clip", "--train", in_dir("train.csv"), "--out", in_dir("run_bad"), "--steps",
                                    "2", "--resume", ck, NULL},
                   1, ck, NULL);
    unlink(ck);
}

static int count_rows(const char *path, int64_t *last) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int n = -1;   /* the header */
    while (fgets(line, sizeof line, f)) n++, *last = strtoll(line, NULL, 10);
    fclose(f);
    return n;
}

static void test_resume_at_end_and_log(void **state) {
    (void)state;
    write_dataset();
    const char *out = in_dir("run"), *train = in_dir("train.csv");
    char ck[500], model[500], log[500], stale[600];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", out);
    snprintf(model, sizeof model, "%s/model.safetensors", out);
    snprintf(log, sizeof log, "%s/log.csv", out);
    const char *const first[] = {"train-clip", "--train", train, "--out", out, "--steps", "1", "--batch", "2", NULL};
    int rc = cli_run(NULL, first);
    print_message("%s", cli_err);
    assert_int_equal(rc, 0);
    int64_t last = -1;
    assert_int_equal(count_rows(log, &last), 1);
    /* an interrupted later run logged steps 2 and 3 and left a temporary of a killed save */
    FILE *f = fopen(log, "a");
    fputs("2,0.1,1.0,1.0,nan,nan,1.0\n3,0.1,1.0,1.0,nan,nan,1.0\n", f);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    snprintf(stale, sizeof stale, "%s.tmp.%ld.Abc123", ck, (long)pid);
    write_text(stale, "half");
    assert_int_equal(unlink(model), 0);
    const char *const again[] = {"train-clip", "--train", train, "--out", out, "--steps", "1", "--batch", "2",
                                 "--resume", ck, NULL};
    rc = cli_run(NULL, again);
    print_message("%s", cli_err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(cli_err, "already at step 1 of 1: wrote the model"));
    assert_int_equal(access(model, R_OK), 0);   /* "wrote model" is true */
    assert_int_equal(count_rows(log, &last), 1);   /* rows 2 and 3 cut */
    assert_int_equal(last, 1);
    assert_int_equal(access(stale, F_OK), -1);
}

/* ---- empty folders, FIFOs, endless files ---- */

static void test_empty_folder_fifo_dev_zero(void **state) {
    (void)state;
    const char *empty = in_dir("empty"), *model = in_dir("model.safetensors"), *imgs = in_dir("imgs");
    expect_failure((const char *[]){"encode", "--model", model, "--images", empty, NULL}, 1, empty, "no .png");
    assert_string_equal(cli_out, "");
    expect_failure((const char *[]){"metrics", "--gt", empty, "--pred", imgs, NULL}, 1, empty, NULL);
    expect_failure((const char *[]){"metrics", "--gt", imgs, "--pred", empty, NULL}, 1, empty, NULL);
    expect_failure((const char *[]){"degrade", "--type", "hazy", empty, in_dir("deg_out"), NULL}, 1, empty, NULL);
    expect_failure((const char *[]){"make-dataset", "--src", empty, "--out", in_dir("ds"), "--types", "hazy", NULL}, 1,
                   empty, NULL);

    const char *fifo = in_dir("fifo.png"), *fifo_csv = in_dir("fifo.csv");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(mkfifo(fifo_csv, 0644), 0);
    expect_failure((const char *[]){"metrics", "--gt", fifo, "--pred", in_dir("good.png"), NULL}, 1, fifo,
                   "not a regular file");
    expect_failure((const char *[]){"clip-classify", "--model", model, "--image", fifo, "--labels", "a", NULL}, 1, fifo,
                   "not a regular file");
    expect_failure((const char *[]){"degrade", "--type", "noisy", fifo, in_dir("x.png"), NULL}, 1, fifo, NULL);
    expect_failure((const char *[]){"train-clip", "--train", fifo_csv, "--out", in_dir("run_fifo"), NULL}, 1, fifo_csv,
                   "not a regular file");
    expect_failure((const char *[]){"make-dataset", "--src", imgs, "--out", in_dir("ds"), "--types", "hazy",
                                    "--captions", fifo_csv, NULL},
                   1, fifo_csv, NULL);
    expect_failure((const char *[]){"train-clip", "--train", "/dev/zero", "--out", in_dir("run_zero"), NULL}, 1,
                   "/dev/zero", "not a regular file");
    expect_failure((const char *[]){"make-dataset", "--src", imgs, "--out", in_dir("ds"), "--types", "hazy",
                                    "--captions", "/dev/zero", NULL},
                   1, "/dev/zero", NULL);
    unlink(fifo);
    unlink(fifo_csv);
}

/* ---- metrics pairing, degrade's outputs ---- */

static void test_metrics_pairs_by_name(void **state) {
    (void)state;
    const char *gt = in_dir("gt"), *pred = in_dir("pred");
    assert_int_equal(mkdir(gt, 0755), 0);
    assert_int_equal(mkdir(pred, 0755), 0);
    write_png(in_dir("gt/a.png"), 24, 24, 0.2f);
    write_png(in_dir("gt/b.png"), 24, 24, 0.4f);
    write_png(in_dir("pred/b.png"), 24, 24, 0.4f);
    write_png(in_dir("pred/c.png"), 24, 24, 0.2f);
    /* GT {a,b} against predictions {b,c}: position pairing compared a with b; now refused, naming a and c */
    expect_failure((const char *[]){"metrics", "--gt", gt, "--pred", pred, NULL}, 1, "a.png", "no prediction");
    assert_non_null(strstr(cli_err, "c.png has no ground truth"));
    /* by stem: b.png with b.png, a.png with a.jpg, whatever the sorted positions */
    unlink(in_dir("pred/c.png"));
    Image im;
    assert_int_equal(image_load(in_dir("gt/a.png"), &im), 0);
    assert_int_equal(image_save(in_dir("pred/a.jpg"), &im), 0);
    image_free(&im);
    const char *csv = in_dir("m.csv");
    assert_int_equal(cli_run(NULL, (const char *[]){"metrics", "--gt", gt, "--pred", pred, "--crop-border", "0",
                                                    "--csv", csv, NULL}),
                     0);
    const char *row_b = strstr(cli_out, "\nb.png ");
    assert_non_null(row_b);
    assert_true(strstr(row_b, " inf ") && strstr(row_b, " inf ") < strchr(row_b + 1, '\n'));   /* identical pair */
    FILE *f = fopen(csv, "r");
    char text[2048] = "";
    assert_non_null(f);
    size_t k = fread(text, 1, sizeof text - 1, f);
    text[k] = 0;
    fclose(f);
    assert_non_null(strstr(text, "gt/a.png,"));
    assert_non_null(strstr(text, "pred/a.jpg,"));
    /* two predictions with one name */
    write_png(in_dir("pred/a.png"), 24, 24, 0.2f);
    expect_failure((const char *[]){"metrics", "--gt", gt, "--pred", pred, NULL}, 1, "a.jpg", "same name");
    /* the CSV on a full device */
    if (access("/dev/full", W_OK) == 0) {
        unlink(in_dir("pred/a.png"));
        expect_failure((const char *[]){"metrics", "--gt", gt, "--pred", pred, "--csv", "/dev/full", NULL}, 1,
                       "/dev/full", NULL);
    }
}

static void test_degrade_never_overwrites_inputs(void **state) {
    (void)state;
    const char *imgs = in_dir("imgs"), *a = in_dir("imgs/a.png");
    long before = file_size(a);
    expect_failure((const char *[]){"degrade", "--type", "hazy", "--quiet", imgs, imgs, NULL}, 1, imgs, "input itself");
    expect_failure((const char *[]){"degrade", "--type", "hazy", "--quiet", a, a, NULL}, 1, a, "input itself");
    expect_failure((const char *[]){"degrade", "--type", "hazy", "--quiet", a, imgs, NULL}, 1, a, "overwrite");
    expect_failure((const char *[]){"degrade", "--sheet", a, a, NULL}, 1, a, "overwrite the photo");
    assert_int_equal(file_size(a), before);
    /* a.jpg and a.png would both become a.png */
    const char *twin = in_dir("twin");
    assert_int_equal(mkdir(twin, 0755), 0);
    write_png(in_dir("twin/a.png"), 24, 24, 0.3f);
    write_png(in_dir("twin/a.jpg"), 24, 24, 0.6f);
    const char *out = in_dir("twin_out");
    expect_failure((const char *[]){"degrade", "--type", "all", "--quiet", twin, out, NULL}, 1, "a.jpg",
                   "would both be written as a.png");
    assert_int_equal(access(out, F_OK), -1);   /* nothing written */
}

static void test_degrade_list_ends_accepted(void **state) {
    (void)state;
    assert_int_equal(cli_run(NULL, (const char *[]){"degrade", "--list", NULL}), 0);
    char list[16384];
    snprintf(list, sizeof list, "%s", cli_out);
    const char *png = in_dir("good.png"), *out = in_dir("ends.png");
    int checked = 0;
    for (char *save = NULL, *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[64], type[64], lo[40], hi[40], def[40];
        if (sscanf(line, "%63[^,],%63[^,],%39[^,],%39[^,],%39s", key, type, lo, hi, def) != 5 || !strcmp(key, "key"))
            continue;
        const char *values[3] = {lo, hi, def};
        for (int v = 0; v < 3; v++) {
            char param[128];
            snprintf(param, sizeof param, "%s=%s", key, values[v]);
            int rc = cli_run(NULL, (const char *[]){"degrade", "--type", type, "--param", param, "--quiet", png, out,
                                                    "--mask-dir", "", NULL});
            if (rc) fail_msg("--param %s (from --list) refused: %s", param, cli_err);
            checked++;
        }
    }
    print_message("%d range ends and defaults accepted\n", checked);
    assert_true(checked >= 3 * 20);
}

/* ---- outputs on a full file system ---- */

static void test_outputs_on_full_file_system(void **state) {
    (void)state;
    const char *mnt = in_dir("full");
    assert_int_equal(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        print_message("cannot mount a tmpfs here (%s): skipped\n", strerror(errno));
        skip();
    }
    char png[500], csv[500], emb[500], fill[500];
    snprintf(png, sizeof png, "%s/out.png", mnt);
    snprintf(csv, sizeof csv, "%s/m.csv", mnt);
    snprintf(emb, sizeof emb, "%s/emb.csv", mnt);
    snprintf(fill, sizeof fill, "%s/fill", mnt);
    write_png(png, 4, 4, 0.5f);
    write_text(csv, "previous metrics\n");
    write_text(emb, "previous embeddings\n");
    long png_size = file_size(png);
    /* a 200x200 noisy output does not fit: the old out.png stays */
    const char *noisy = in_dir("noisy.png");
    Image im;
    assert_int_equal(image_alloc(&im, 200, 200, 3), 0);
    for (size_t i = 0; i < (size_t)200 * 200 * 3; i++) im.px[i] = (float)(data_hash64(i) & 0xFF) / 255.f;
    assert_int_equal(image_save(noisy, &im), 0);
    image_free(&im);
    expect_failure((const char *[]){"degrade", "--type", "noisy", "--quiet", noisy, png, NULL}, 1, png, NULL);
    assert_int_equal(file_size(png), png_size);
    /* fill the file system: small outputs fail too */
    FILE *f = fopen(fill, "wb");
    char block[4096] = {0};
    while (fwrite(block, 1, sizeof block, f) == sizeof block && fflush(f) == 0) {}
    fclose(f);
    expect_failure((const char *[]){"metrics", "--gt", in_dir("imgs/a.png"), "--pred", in_dir("imgs/b.png"), "--csv",
                                    csv, NULL},
                   1, csv, NULL);
    expect_failure((const char *[]){"encode", "--model", in_dir("model.safetensors"), "--images", in_dir("imgs"),
                                    "--out", emb, NULL},
                   1, emb, NULL);
    assert_int_equal(file_size(csv), 17);
    assert_int_equal(file_size(emb), 20);
    assert_int_equal(file_size(png), png_size);
    assert_int_equal(test_dir_count(mnt), 4);   /* no temporary left behind */
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_png_and_corrupt_jpeg),
        cmocka_unit_test(test_bad_model_files),
        cmocka_unit_test(test_model_with_spaced_metadata_loads),
        cmocka_unit_test(test_crafted_checkpoint),
        cmocka_unit_test(test_resume_at_end_and_log),
        cmocka_unit_test(test_empty_folder_fifo_dev_zero),
        cmocka_unit_test(test_metrics_pairs_by_name),
        cmocka_unit_test(test_degrade_never_overwrites_inputs),
        cmocka_unit_test(test_degrade_list_ends_accepted),
        cmocka_unit_test(test_outputs_on_full_file_system),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    t_arena_shutdown();
    return rc;
}
