/* The daclip binary's option handling, end to end: every registered subcommand answers --help and refuses an
 * unknown option; bad numbers, missing values and stray arguments give exit status 2 and a message naming
 * the option; a write error on stdout (/dev/full) gives a non-zero exit. Runs the daclip built next to this
 * test binary (build/daclip, or build-san/daclip under `make san`). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/image.h"
#include "data/image_io.h"
#include "tests/util_cli.h"
#include "tests/util_tmpdir.h"

/* ---- every registered subcommand --------------------------------------------------------------------------- */

static const char *const command_names[] = {
#define CMD(name, fn, summary) name,
#include "train/commands.def"
#undef CMD
};

static void test_every_command_help_and_unknown_option(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof command_names / sizeof command_names[0]; c++) {
        const char *name = command_names[c];
        print_message("daclip %s --help\n", name);
        assert_int_equal(cli_run(NULL, (const char *[]){name, "--help", NULL}), 0);
        char head[128];
        snprintf(head, sizeof head, "usage: daclip %s", name);
        assert_int_equal(strncmp(cli_out, head, strlen(head)), 0);
        assert_non_null(strstr(cli_out, "-h, --help"));   /* the option list generated from the table */
        assert_string_equal(cli_err, "");
        assert_int_equal(cli_run(NULL, (const char *[]){name, "--no-such-option", NULL}), 2);
        assert_non_null(strstr(cli_err, "--no-such-option"));
        assert_string_equal(cli_out, "");
    }
}

/* ---- bad command lines ------------------------------------------------------------------------------------- */

typedef struct {
    const char *args[12];
    const char *err;   /* stderr must contain this (it names the command and the option) */
} Bad;

#define TC "train-clip", "--train", "t.csv", "--out", "o"
#define MD "make-dataset", "--src", "s", "--out", "o"
#define TT "tokenizer", "train", "--corpus", "c.txt", "--out", "v.txt.gz"

static const Bad bad[] = {
    /* the examples of issue 10 */
    {{TC, "--steps", "1e3"}, "daclip train-clip: --steps: '1e3' is not an integer"},
    {{TC, "--steps", "2x"}, "daclip train-clip: --steps: '2x' is not an integer"},
    {{TC, "--batch", "4294967298"}, "daclip train-clip: --batch: 4294967298 is out of range"},
    {{TC, "--seed", "abc"}, "daclip train-clip: --seed: 'abc' is not an integer"},
    {{TC, "--steps", ""}, "daclip train-clip: --steps: empty value"},
    {{TC, "--lr", "nan"}, "daclip train-clip: --lr: 'nan' is not a finite number"},
    {{"encode", "--model", "m.safetensors", "--text", "a", "--out"}, "daclip encode: --out: missing value"},
    {{"encode", "--model", "m.safetensors", "--text", "--out", "f.csv"}, "daclip encode: --text: no texts given"},
    {{TC, "--bogus"}, "daclip train-clip: --bogus: unknown option"},
    /* train-clip */
    {{TC, "--lr", "0"}, "daclip train-clip: --lr: must be positive"},
    {{TC, "--wd", "inf"}, "daclip train-clip: --wd: 'inf' is not a finite number"},
    {{TC, "--warmup", "-1"}, "daclip train-clip: --warmup: -1 is out of range"},
    {{TC, "--batch", "1"}, "daclip train-clip: --batch: 1 is out of range"},
    {{TC, "--val-every", "ten"}, "daclip train-clip: --val-every: 'ten' is not an integer"},
    {{TC, "--model", "huge"}, "daclip train-clip: --model: unknown model 'huge'"},
    {{"train-clip", "--train", "t.csv", "--out"}, "daclip train-clip: --out: missing value"},
    {{"train-clip", "--out", "o"}, "daclip train-clip: --train: required"},
    {{TC, "stray"}, "daclip train-clip: stray: unexpected argument"},
    /* encode, clip-classify */
    {{"encode", "--model"}, "daclip encode: --model: missing value"},
    {{"encode", "--images", "d"}, "daclip encode: --model: required"},
    {{"encode", "--model", "m", "--images", "d", "stray"}, "daclip encode: stray: unexpected argument"},
    {{"encode", "--model", "m", "--images", "d", "--normalize=yes"}, "daclip encode: --normalize: takes no value"},
    {{"clip-classify", "--model", "m", "--image", "i.png"}, "daclip clip-classify: --labels: required"},
    {{"clip-classify", "--model", "m", "--image", "i.png", "--labels", " , "}, "daclip clip-classify: --labels: no labels"},
    {{"clip-classify", "--model", "m", "--image", "--labels", "a"}, "daclip clip-classify: --image: missing value"},
    /* degrade */
    {{"degrade", "--type", "hazy", "--seed", "abc", "a.png", "b.png"}, "daclip degrade: --seed: 'abc' is not an integer"},
    {{"degrade", "--type", "hazy", "--seed", "-1", "a.png", "b.png"}, "daclip degrade: --seed: -1 is out of range"},
    {{"degrade", "--type", "hazy", "--severity", "nan", "a.png", "b.png"}, "daclip degrade: --severity: 'nan'"},
    {{"degrade", "--type", "hazy", "--severity", "1.5", "a.png", "b.png"}, "daclip degrade: --severity: 1.5 is out of range"},
    {{"degrade", "--sheet", "--size", "2x", "a.png", "b.png"}, "daclip degrade: --size: '2x' is not an integer"},
    {{"degrade", "--sheet", "--size", "4096", "a.png", "b.png"}, "daclip degrade: --size: 4096 is out of range"},
    {{"degrade", "--type", "noisy", "--param", "noise_sigma=abc", "a.png", "b.png"}, "daclip degrade: --param: 'abc'"},
    {{"degrade", "--type", "noisy", "--param", "noise_sigma=", "a.png", "b.png"}, "daclip degrade: --param: empty value"},
    {{"degrade", "--type", "noisy", "--param", "noise_sigma", "a.png", "b.png"}, "daclip degrade: --param: expects KEY="},
    {{"degrade", "--type", "noisy", "--param", "nosie=1", "a.png", "b.png"}, "daclip degrade: --param: unknown parameter"},
    {{"degrade", "--type", "fuzzy", "a.png", "b.png"}, "daclip degrade: --type: unknown type 'fuzzy'"},
    {{"degrade", "a.png", "b.png"}, "daclip degrade: --type: required"},
    {{"degrade", "--type", "hazy", "a.png"}, "daclip degrade: expected IN and OUT, got 1 argument"},
    {{"degrade", "--type", "hazy", "--mask-dir"}, "daclip degrade: --mask-dir: missing value"},
    /* make-dataset */
    {{MD, "--val-frac", "nan"}, "daclip make-dataset: --val-frac: 'nan' is not a finite number"},
    {{MD, "--val-frac", "1"}, "daclip make-dataset: --val-frac: must be below 1"},
    {{MD, "--seed", "1e3"}, "daclip make-dataset: --seed: '1e3' is not an integer"},
    {{MD, "--types", "hazy,bogus"}, "daclip make-dataset: --types: unknown degradation 'bogus'"},
    {{MD, "--types", ","}, "daclip make-dataset: --types: no degradation named"},
    {{"make-dataset", "--src", "--out", "o"}, "daclip make-dataset: --src: missing value: the next argument, '--out'"},
    /* metrics */
    {{"metrics", "--gt", "a", "--pred", "b", "--crop-border", "4294967300"}, "daclip metrics: --crop-border: 4294967300 is out"},
    {{"metrics", "--gt", "a", "--pred", "b", "--crop-border", "4.5"}, "daclip metrics: --crop-border: '4.5' is not an integer"},
    {{"metrics", "--gt", "a", "--pred", "b", "--crop-border="}, "daclip metrics: --crop-border: empty value"},
    {{"metrics", "--gt", "a", "--pred"}, "daclip metrics: --pred: missing value"},
    /* tokenize, tokenizer */
    {{"tokenize", "--context", "0", "x"}, "daclip tokenize: --context: 0 is out of range"},
    {{"tokenize", "--context", "77x", "x"}, "daclip tokenize: --context: '77x' is not an integer"},
    {{"tokenize", "--vocab"}, "daclip tokenize: --vocab: missing value"},
    {{"tokenize", "-x"}, "daclip tokenize: -x: unknown option"},
    {{"tokenize", "--context", "8"}, "daclip tokenize: no TEXT given"},
    {{TT, "--merges", "1e3"}, "daclip tokenizer train: --merges: '1e3' is not an integer"},
    {{TT, "--merges", "-1"}, "daclip tokenizer train: --merges: -1 is out of range"},
    {{TT}, "daclip tokenizer train: --merges: required"},
    {{"tokenizer", "fit"}, "daclip tokenizer: fit: unknown action"},
    {{"tokenizer"}, "daclip tokenizer: missing action"},
    /* version */
    {{"version", "--verbose"}, "daclip version: --verbose: unknown option"},
    {{"version", "extra"}, "daclip version: extra: unexpected argument"},
};

static void test_bad_command_lines(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        const Bad *b = &bad[c];
        int rc = cli_run(NULL, b->args);
        print_message("case %zu (%s %s ...): exit %d, stderr: %s", c, b->args[0], b->args[1] ? b->args[1] : "", rc,
                      cli_err);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(cli_err, b->err));
        assert_string_equal(strchr(cli_err, '\n'), "\n");   /* one line, nothing else */
        assert_string_equal(cli_out, "");
    }
}

/* ---- good command lines still work -------------------------------------------------------------------------- */

static void write_png(const char *path, float v) {
    Image im;
    assert_int_equal(image_alloc(&im, 16, 16, 3), 0);
    for (size_t i = 0; i < (size_t)16 * 16 * 3; i++) im.px[i] = v + 0.01f * (float)(i % 7);
    assert_int_equal(image_save(path, &im), 0);
    image_free(&im);
}

static void test_good_command_lines(void **state) {
    (void)state;
    /* texts after --, the value of --context given with '=' and after the texts */
    assert_int_equal(cli_run(NULL, (const char *[]){"tokenize", "a", "--context=6", "--", "-x", "--context", NULL}), 0);
    const char *line = cli_out;
    int lines = 0;
    for (const char *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
        int ids = 1;
        for (const char *c = line; c < nl; c++) ids += *c == ' ';
        assert_int_equal(ids, 6);
    }
    assert_int_equal(lines, 3);
    assert_int_equal(cli_run(NULL, (const char *[]){"degrade", "--list", NULL}), 0);
    assert_int_equal(strncmp(cli_out, "key,degradation,min,max,default\n", 32), 0);

    char dir[256], a[300], b[300], csv[300];
    assert_int_equal(test_tmpdir_create(dir, sizeof dir, "cli"), 0);
    snprintf(a, sizeof a, "%s/a.png", dir);
    snprintf(b, sizeof b, "%s/b.png", dir);
    snprintf(csv, sizeof csv, "%s/m.csv", dir);
    write_png(a, 0.3f);
    write_png(b, 0.5f);
    assert_int_equal(cli_run(NULL, (const char *[]){"metrics", "--gt", a, "--pred", b, "--crop-border=0", "--csv", csv, NULL}),
                     0);
    assert_non_null(strstr(cli_out, "\nmean "));
    assert_int_equal(access(csv, R_OK), 0);

    /* stdout on a full device: the lost output is an error (1), named on stderr */
    if (!access("/dev/full", W_OK)) {
        const char *const *full[] = {
            (const char *[]){"version", NULL},
            (const char *[]){"tokenize", "a photo", NULL},
            (const char *[]){"degrade", "--list", NULL},
            (const char *[]){"metrics", "--gt", a, "--pred", b, NULL},
        };
        for (size_t k = 0; k < sizeof full / sizeof full[0]; k++) {
            print_message("daclip %s > /dev/full\n", full[k][0]);
            assert_int_equal(cli_run("/dev/full", full[k]), 1);
            char want[96];
            snprintf(want, sizeof want, "daclip %s: stdout: write error", full[k][0]);
            assert_non_null(strstr(cli_err, want));
        }
    }
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command_help_and_unknown_option),
        cmocka_unit_test(test_bad_command_lines),
        cmocka_unit_test(test_good_command_lines),
    };
    return cmocka_run_group_tests(tests, cli_find, NULL);
}
