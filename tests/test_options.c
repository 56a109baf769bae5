/* The shared option parser (train/options.h): one table of command lines, each with the parse result, the
 * values it must store (or leave alone) and the error it must print; --help generated from the table;
 * the checked stdout against /dev/full. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "train/options.h"

/* ---- the command under test -------------------------------------------------------------------------------- */

typedef struct {
    int i, batch;
    int64_t steps, big;
    uint64_t seed;
    double lr, frac;
    const char *text, *req;
    bool quiet;
    OptList params;
} Vals;

static Vals v;

static const OptSpec specs[] = {
    {"--int", OPT_INT, &v.i, 0, 0, "N", "any int"},
    {"--batch", OPT_INT, &v.batch, 2, 1024, "N", "batch size"},
    {"--steps", OPT_I64, &v.steps, 1, 1e9, "N", "optimizer steps"},
    {"--big", OPT_I64, &v.big, 0, 0, "N", "any int64"},
    {"--seed", OPT_U64, &v.seed, 0, 0, "N", "seed"},
    {"--lr", OPT_DOUBLE, &v.lr, 0, 0, "X", "learning rate"},
    {"--frac", OPT_DOUBLE, &v.frac, 0, 1, "F", "share for validation\nsecond line"},
    {"--text", OPT_STR, &v.text, 0, 0, "TEXT", "a text"},
    {"--quiet", OPT_FLAG, &v.quiet, 0, 0, NULL, "no progress"},
    {"--param", OPT_LIST, &v.params, 0, 0, "K=V", "a parameter"},
    {0}};

static const OptSpec specs_required[] = {
    {"--req", OPT_STR | OPT_REQUIRED, &v.req, 0, 0, "FILE", "needed"},
    {"--int", OPT_INT, &v.i, 0, 0, "N", "any int"},
    {0}};

/* ---- running one command line with stdout and stderr captured ---------------------------------------------- */

static char out_text[8192], err_text[8192];

static void slurp(FILE *f, char *buf, size_t n) {
    rewind(f);
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
}

typedef enum { WITH_POS, NO_POS, REQUIRED } Mode;

/* Parses "t args..." (args NULL-terminated); positionals land in pos/npos (WITH_POS). */
static char *argv_buf[160];   /* outlives run(): the positionals point into it */

static int run(Mode mode, const char *const *args, char ***pos, int *npos) {
    char **argv = argv_buf;
    int argc = 0;
    argv[argc++] = "t";
    for (int k = 0; args[k]; k++) argv[argc++] = (char *)args[k];
    argv[argc] = NULL;
    FILE *o = tmpfile(), *e = tmpfile();
    assert_non_null(o);
    assert_non_null(e);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fileno(o), 1);
    dup2(fileno(e), 2);
    int r = opts_parse("t", "usage: daclip t [options] ARG...\n\nA test command.\n",
                       mode == REQUIRED ? specs_required : specs, argc, argv,
                       mode == WITH_POS ? pos : NULL, mode == WITH_POS ? npos : NULL);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(o, out_text, sizeof out_text);
    slurp(e, err_text, sizeof err_text);
    return r;
}

/* ---- the table ----------------------------------------------------------------------------------------------- */

typedef struct {
    const char *args[8];
    int result;            /* OPTS_OK / OPTS_ERROR / OPTS_HELP */
    const char *err;       /* errors: stderr must contain this; OK: stderr must be empty */
    Vals want;             /* the stored values (every field not named stays zero) */
    const char *pos[3];    /* OK: the positionals expected, in order */
    Mode mode;
} Case;

static const Case cases[] = {
    /* values stored */
    {.args = {"--int", "42"}, .result = OPTS_OK, .want = {.i = 42}},
    {.args = {"--int=-5"}, .result = OPTS_OK, .want = {.i = -5}},
    {.args = {"--int", "-5"}, .result = OPTS_OK, .want = {.i = -5}},          /* a negative number is a value, not an option */
    {.args = {"--int", "+7"}, .result = OPTS_OK, .want = {.i = 7}},
    {.args = {"--int", "0x1f"}, .result = OPTS_OK, .want = {.i = 31}},
    {.args = {"--int", "010"}, .result = OPTS_OK, .want = {.i = 10}},         /* decimal, never octal */
    {.args = {"--int", "1", "--int", "2"}, .result = OPTS_OK, .want = {.i = 2}},   /* the last one wins */
    {.args = {"--batch", "2"}, .result = OPTS_OK, .want = {.batch = 2}},      /* range ends are inclusive */
    {.args = {"--batch", "1024"}, .result = OPTS_OK, .want = {.batch = 1024}},
    {.args = {"--steps", "1000000000"}, .result = OPTS_OK, .want = {.steps = 1000000000}},
    {.args = {"--big", "-9223372036854775808"}, .result = OPTS_OK, .want = {.big = INT64_MIN}},
    {.args = {"--seed", "18446744073709551615"}, .result = OPTS_OK, .want = {.seed = UINT64_MAX}},
    {.args = {"--seed=0x10"}, .result = OPTS_OK, .want = {.seed = 16}},
    {.args = {"--lr", "5e-4"}, .result = OPTS_OK, .want = {.lr = 5e-4}},
    {.args = {"--lr", "-0.25"}, .result = OPTS_OK, .want = {.lr = -0.25}},
    {.args = {"--frac", "1"}, .result = OPTS_OK, .want = {.frac = 1}},
    {.args = {"--text", "hello world"}, .result = OPTS_OK, .want = {.text = "hello world"}},
    {.args = {"--text", "-"}, .result = OPTS_OK, .want = {.text = "-"}},
    {.args = {"--text", "-x"}, .result = OPTS_OK, .want = {.text = "-x"}},
    {.args = {"--text="}, .result = OPTS_OK, .want = {.text = ""}},
    {.args = {"--text", ""}, .result = OPTS_OK, .want = {.text = ""}},
    {.args = {"--text=--out"}, .result = OPTS_OK, .want = {.text = "--out"}},  /* '=' is how to mean a value starting with -- */
    {.args = {"--text=a=b"}, .result = OPTS_OK, .want = {.text = "a=b"}},
    {.args = {"--quiet"}, .result = OPTS_OK, .want = {.quiet = true}},
    {.args = {"--param", "a=1", "--param=b=2"}, .result = OPTS_OK, .want = {.params = {{"a=1", "b=2"}, 2}}},
    /* positionals, "--" and "-" */
    {.args = {"a", "--int", "3", "b"}, .result = OPTS_OK, .want = {.i = 3}, .pos = {"a", "b"}},
    {.args = {"--", "--int", "x"}, .result = OPTS_OK, .pos = {"--int", "x"}},
    {.args = {"-", "--quiet"}, .result = OPTS_OK, .want = {.quiet = true}, .pos = {"-"}},
    {.args = {"x"}, .result = OPTS_ERROR, .err = "daclip t: x: unexpected argument", .mode = NO_POS},
    /* strict numbers */
    {.args = {"--steps", "1e3"}, .result = OPTS_ERROR, .err = "daclip t: --steps: '1e3' is not an integer"},
    {.args = {"--steps", "2x"}, .result = OPTS_ERROR, .err = "daclip t: --steps: '2x' is not an integer"},
    {.args = {"--steps", "0"}, .result = OPTS_ERROR, .err = "daclip t: --steps: 0 is out of range (1..1000000000)"},
    {.args = {"--steps", "1000000001"}, .result = OPTS_ERROR, .err = "daclip t: --steps: 1000000001 is out of range"},
    {.args = {"--batch", "4294967298"}, .result = OPTS_ERROR, .err = "daclip t: --batch: 4294967298 is out of range (2..1024)"},
    {.args = {"--batch", "1"}, .result = OPTS_ERROR, .err = "daclip t: --batch: 1 is out of range (2..1024)"},
    {.args = {"--int", "4294967298"}, .result = OPTS_ERROR, .err = "daclip t: --int: 4294967298 is out of range (-2147483648..2147483647)"},
    {.args = {"--big", "9223372036854775808"}, .result = OPTS_ERROR, .err = "daclip t: --big: 9223372036854775808 is out of range"},
    {.args = {"--seed", "abc"}, .result = OPTS_ERROR, .err = "daclip t: --seed: 'abc' is not an integer"},
    {.args = {"--seed", "-1"}, .result = OPTS_ERROR, .err = "daclip t: --seed: -1 is out of range (0..18446744073709551615)"},
    {.args = {"--seed", "18446744073709551616"}, .result = OPTS_ERROR, .err = "daclip t: --seed: 18446744073709551616 is out of range"},
    {.args = {"--seed", "0x"}, .result = OPTS_ERROR, .err = "daclip t: --seed: '0x' is not an integer"},
    {.args = {"--int", ""}, .result = OPTS_ERROR, .err = "daclip t: --int: empty value"},
    {.args = {"--int="}, .result = OPTS_ERROR, .err = "daclip t: --int: empty value"},
    {.args = {"--lr", ""}, .result = OPTS_ERROR, .err = "daclip t: --lr: empty value"},
    {.args = {"--int", " 5"}, .result = OPTS_ERROR, .err = "daclip t: --int: ' 5' starts with a space"},
    {.args = {"--int", "5 "}, .result = OPTS_ERROR, .err = "daclip t: --int: '5 ' is not an integer"},
    {.args = {"--int", "1.5"}, .result = OPTS_ERROR, .err = "daclip t: --int: '1.5' is not an integer"},
    {.args = {"--lr", "nan"}, .result = OPTS_ERROR, .err = "daclip t: --lr: 'nan' is not a finite number"},
    {.args = {"--lr", "inf"}, .result = OPTS_ERROR, .err = "daclip t: --lr: 'inf' is not a finite number"},
    {.args = {"--lr", "-Infinity"}, .result = OPTS_ERROR, .err = "daclip t: --lr: '-Infinity' is not a finite number"},
    {.args = {"--lr", "1e999"}, .result = OPTS_ERROR, .err = "daclip t: --lr: '1e999' is not a finite number"},
    {.args = {"--lr", "1e-400"}, .result = OPTS_ERROR, .err = "daclip t: --lr: 1e-400 is out of range"},
    {.args = {"--lr", "0.1x"}, .result = OPTS_ERROR, .err = "daclip t: --lr: '0.1x' is not a number"},
    {.args = {"--frac", "1.5"}, .result = OPTS_ERROR, .err = "daclip t: --frac: 1.5 is out of range (0..1)"},
    {.args = {"--frac", "-0.1"}, .result = OPTS_ERROR, .err = "daclip t: --frac: -0.1 is out of range (0..1)"},
    /* missing values */
    {.args = {"--text"}, .result = OPTS_ERROR, .err = "daclip t: --text: missing value (expected --text TEXT)"},
    {.args = {"--steps"}, .result = OPTS_ERROR, .err = "daclip t: --steps: missing value"},
    {.args = {"--text", "--quiet"}, .result = OPTS_ERROR, .err = "daclip t: --text: missing value: the next argument, '--quiet', is an option"},
    {.args = {"--int", "--5"}, .result = OPTS_ERROR, .err = "daclip t: --int: missing value"},
    {.args = {"--text", "--"}, .result = OPTS_ERROR, .err = "daclip t: --text: missing value"},
    {.args = {"--param"}, .result = OPTS_ERROR, .err = "daclip t: --param: missing value"},
    /* flags and unknown options */
    {.args = {"--quiet=1"}, .result = OPTS_ERROR, .err = "daclip t: --quiet: takes no value"},
    {.args = {"--bogus"}, .result = OPTS_ERROR, .err = "daclip t: --bogus: unknown option; see 'daclip t --help'"},
    {.args = {"--bogus=3"}, .result = OPTS_ERROR, .err = "daclip t: --bogus: unknown option"},
    {.args = {"--step", "5"}, .result = OPTS_ERROR, .err = "daclip t: --step: unknown option (did you mean --steps?)"},
    {.args = {"-seed", "5"}, .result = OPTS_ERROR, .err = "daclip t: -seed: unknown option (did you mean --seed?)"},
    {.args = {"-x"}, .result = OPTS_ERROR, .err = "daclip t: -x: unknown option"},
    {.args = {"-5"}, .result = OPTS_ERROR, .err = "daclip t: -5: unknown option"},
    /* the first error wins, --help included */
    {.args = {"--int", "x", "--help"}, .result = OPTS_ERROR, .err = "daclip t: --int: 'x' is not an integer"},
    /* required options */
    {.args = {"--int", "3"}, .result = OPTS_ERROR, .err = "daclip t: --req: required", .want = {.i = 3}, .mode = REQUIRED},
    {.args = {"--req", "f"}, .result = OPTS_OK, .want = {.req = "f"}, .mode = REQUIRED},
    {.args = {"--req="}, .result = OPTS_OK, .want = {.req = ""}, .mode = REQUIRED},
};

static void assert_str_eq_or_null(const char *got, const char *want) {
    if (!want) assert_null(got);
    else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

static void assert_vals(const Vals *got, const Vals *want) {
    assert_int_equal(got->i, want->i);
    assert_int_equal(got->batch, want->batch);
    assert_true(got->steps == want->steps);
    assert_true(got->big == want->big);
    assert_true(got->seed == want->seed);
    assert_true(got->lr == want->lr);
    assert_true(got->frac == want->frac);
    assert_str_eq_or_null(got->text, want->text);
    assert_str_eq_or_null(got->req, want->req);
    assert_int_equal(got->quiet, want->quiet);
    assert_int_equal(got->params.n, want->params.n);
    for (int k = 0; k < want->params.n; k++) assert_string_equal(got->params.v[k], want->params.v[k]);
}

static void test_table(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const Case *k = &cases[c];
        memset(&v, 0, sizeof v);
        char **pos = NULL;
        int npos = -1;
        int r = run(k->mode, k->args, &pos, &npos);
        print_message("case %zu: %s %s -> %d, stderr: %s", c, k->args[0] ? k->args[0] : "",
                      k->args[1] ? k->args[1] : "", r, err_text[0] ? err_text : "(empty)\n");
        assert_int_equal(r, k->result);
        if (k->result == OPTS_ERROR) {
            assert_non_null(strstr(err_text, k->err));
            assert_int_equal(strncmp(err_text, "daclip t: ", 10), 0);
            assert_non_null(strchr(err_text, '\n'));
            assert_string_equal(strchr(err_text, '\n'), "\n");   /* exactly one line */
            assert_vals(&v, &k->want);   /* nothing stored by the failing option */
        } else {
            assert_string_equal(err_text, "");
            assert_vals(&v, &k->want);
            if (k->mode == WITH_POS) {
                int n = 0;
                while (n < 3 && k->pos[n]) n++;
                assert_int_equal(npos, n);
                for (int p = 0; p < n; p++) assert_string_equal(pos[p], k->pos[p]);
            }
        }
        assert_string_equal(out_text, "");
    }
}

/* An absent option keeps the caller's default. */
static void test_defaults_kept(void **state) {
    (void)state;
    memset(&v, 0, sizeof v);
    v.i = 7, v.lr = 0.5, v.text = "def";
    char **pos;
    int npos;
    assert_int_equal(run(WITH_POS, (const char *[]){"--quiet", NULL}, &pos, &npos), OPTS_OK);
    assert_int_equal(v.i, 7);
    assert_true(v.lr == 0.5);
    assert_string_equal(v.text, "def");
    assert_true(v.quiet);
    assert_int_equal(npos, 0);
}

static void test_list_overflow(void **state) {
    (void)state;
    memset(&v, 0, sizeof v);
    const char *args[2 * OPT_LIST_MAX + 3];
    int n = 0;
    for (int k = 0; k < OPT_LIST_MAX; k++) args[n++] = "--param", args[n++] = "k=1";
    args[n] = NULL;
    assert_int_equal(run(NO_POS, args, NULL, NULL), OPTS_OK);
    assert_int_equal(v.params.n, OPT_LIST_MAX);
    memset(&v, 0, sizeof v);
    args[n++] = "--param", args[n++] = "one=too-many";
    args[n] = NULL;
    assert_true(n < 160);   /* argv_buf holds 160 */
    assert_int_equal(run(NO_POS, args, NULL, NULL), OPTS_ERROR);
    assert_non_null(strstr(err_text, "daclip t: --param: given more than 64 times"));
}

/* --help: usage to stdout, every option of the table with its metavar and help, nothing on stderr. */
static void test_help(void **state) {
    (void)state;
    const char *forms[] = {"--help", "-h"};
    for (int f = 0; f < 2; f++) {
        memset(&v, 0, sizeof v);
        char **pos;
        int npos;
        assert_int_equal(run(WITH_POS, (const char *[]){"--int", "3", forms[f], "--bogus", NULL}, &pos, &npos),
                         OPTS_HELP);
        assert_string_equal(err_text, "");
        const char *head = "usage: daclip t [options] ARG...\n\nA test command.\n\noptions:\n";
        assert_int_equal(strncmp(out_text, head, strlen(head)), 0);
        for (const OptSpec *s = specs; s->name; s++) {
            char line[128];
            snprintf(line, sizeof line, "\n  %s%s%s ", s->name, s->metavar ? " " : "", s->metavar ? s->metavar : "");
            assert_non_null(strstr(out_text, line));
            assert_non_null(strstr(out_text, s->help[0] == 's' ? "share for validation\n" : s->help));
        }
        /* the help column is two past the widest "  --name METAVAR" (here "  --param K=V", 13) */
        assert_non_null(strstr(out_text, "\n  --frac F     share for validation\n"
                                         "               second line\n"));
        assert_non_null(strstr(out_text, "a parameter (repeatable)\n"));
        assert_non_null(strstr(out_text, "\n  -h, --help   show this help\n"));
    }
    memset(&v, 0, sizeof v);
    assert_int_equal(run(REQUIRED, (const char *[]){"--help", NULL}, NULL, NULL), OPTS_HELP);
    assert_non_null(strstr(out_text, "\n  --req FILE  needed (required)\n"));
    assert_int_equal(opts_exit_code(OPTS_HELP), 0);
    assert_int_equal(opts_exit_code(OPTS_ERROR), 2);
}

static void test_opts_fail(void **state) {
    (void)state;
    FILE *e = tmpfile();
    assert_non_null(e);
    fflush(stderr);
    int se = dup(2);
    dup2(fileno(e), 2);
    int a = opts_fail("t", "--type", "unknown type '%s'", "fuzzy");
    int b = opts_fail("t", NULL, "needs %d arguments", 2);
    fflush(stderr);
    dup2(se, 2);
    close(se);
    slurp(e, err_text, sizeof err_text);
    assert_int_equal(a, 2);
    assert_int_equal(b, 2);
    assert_string_equal(err_text, "daclip t: --type: unknown type 'fuzzy'\ndaclip t: needs 2 arguments\n");
}

/* ---- checked stdout ---------------------------------------------------------------------------------------- */

/* Runs out_close_stdout in a child whose stdout is `target` after printing `bytes` bytes; returns the
 * child's exit status and its stderr in err_text. */
static int close_stdout_in_child(const char *target, size_t bytes) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        if (!freopen(target, "w", stdout)) _exit(99);
        for (size_t k = 0; k < bytes; k++) putchar('x');
        int first = out_close_stdout("t");
        int second = out_close_stdout("t");   /* a second call must not close twice */
        _exit(first != second ? 98 : first);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], err_text + n, sizeof err_text - 1 - n)) > 0) n += (size_t)k;
    err_text[n] = 0;
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_stdout_full(void **state) {
    (void)state;
    if (access("/dev/full", W_OK)) skip();
    assert_int_equal(close_stdout_in_child("/dev/full", 10), 1);              /* error found by the flush */
    assert_string_equal(err_text, "daclip t: stdout: write error: No space left on device\n");
    assert_int_equal(close_stdout_in_child("/dev/full", 100000), 1);          /* error already while printing */
    assert_non_null(strstr(err_text, "daclip t: stdout: write error"));
    assert_int_equal(close_stdout_in_child("/dev/null", 100000), 0);
    assert_string_equal(err_text, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_defaults_kept),
        cmocka_unit_test(test_list_overflow),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_opts_fail),
        cmocka_unit_test(test_stdout_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
