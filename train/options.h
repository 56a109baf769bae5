#ifndef DACLIP_TRAIN_OPTIONS_H
#define DACLIP_TRAIN_OPTIONS_H
/* One table-driven option parser for every daclip subcommand, so that numbers are read strictly, errors
 * look alike and --help is generated from the same table the parser reads.
 *
 *   static int steps = 1000; static const char *out = NULL; static bool quiet = false;
 *   const OptSpec specs[] = {
 *       {"--out",   OPT_STR | OPT_REQUIRED, &out, 0, 0, "DIR", "output folder"},
 *       {"--steps", OPT_INT,  &steps, 1, 1e9, "N",  "optimizer steps (default 1000)"},
 *       {"--quiet", OPT_FLAG, &quiet, 0, 0,   NULL, "no progress bar"},
 *       {0}};
 *   int r = opts_parse("train-foo", "usage: daclip train-foo --out DIR [options]\n\nWhat it does.\n",
 *                      specs, argc, argv, NULL, NULL);
 *   if (r != OPTS_OK) return opts_exit_code(r);     (0 after --help, 2 after a usage error)
 *
 * Rules:
 * - "--name value" and "--name=value"; "-h"/"--help" prints the usage to stdout; "--" ends the options.
 * - Numbers: decimal (integers also 0x hex), the whole string consumed, no empty string, no leading space,
 *   range-checked against the type and [min, max] (inclusive; min == max == 0 means the type's range).
 *   "1e3" and "2x" are refused for integers, "-1" for OPT_U64, nan/inf (and over/underflow) for OPT_DOUBLE.
 * - A missing value ("--out" last) is an error; so is a separate value that starts with "--" (`--text --out`
 *   reads as a forgotten value; write `--text=--out` to mean it literally).
 * - Unknown options (anything starting with '-' except "-" itself) are errors with a did-you-mean.
 * - Repeating a scalar option keeps the last value; OPT_LIST collects every occurrence.
 * - Every error is one line on stderr: "daclip <cmd>: <option>: <problem>". */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    OPT_STR,      /* const char *  (points into argv; "" allowed) */
    OPT_INT,      /* int */
    OPT_I64,      /* int64_t */
    OPT_U64,      /* uint64_t */
    OPT_DOUBLE,   /* double, finite */
    OPT_FLAG,     /* bool, set to true; takes no value */
    OPT_LIST,     /* OptList, one string per occurrence (repeatable) */
    OPT_REQUIRED = 0x100   /* or'ed into a type: the command cannot run without the option */
} OptType;

#define OPT_LIST_MAX 64

/* The end of every training command's --resume help: what resuming keeps and what a larger --steps does. */
#define OPT_RESUME_HELP_TAIL "(same options, bit-identical: a changed seed, batch\nor view option is refused;\na larger --steps stretches the cosine schedule from there: a warm\nrestart, not the run a single longer --steps would give)"
typedef struct {
    const char *v[OPT_LIST_MAX];   /* point into argv */
    int n;
} OptList;

typedef struct {
    const char *name;      /* "--steps"; a NULL name ends the table */
    OptType type;          /* possibly | OPT_REQUIRED ("daclip <cmd>: --x: required" when absent) */
    void *dest;            /* a variable of exactly the type above (not checked by the compiler: an int64_t
                              for OPT_INT is a bug); keeps its value when the option is absent */
    double min, max;       /* numbers: inclusive range; both 0 = the type's own range */
    const char *metavar;   /* "N", "FILE" in the help (NULL for flags) */
    const char *help;      /* one line; '\n' continues on an indented line */
} OptSpec;

enum { OPTS_OK = 0, OPTS_HELP = 1, OPTS_ERROR = 2 };

/* Parses argv[1..argc) (argv[0] is the subcommand name) against specs. Positional arguments (every
 * argument after "--" included) are moved, in order, to the front of argv[1..] and *pos = argv + 1,
 * *npos = their count (argv is permuted, nothing is allocated); pos == NULL means the command takes none
 * and any positional is an error. Returns OPTS_OK, OPTS_HELP (usage printed to stdout) or OPTS_ERROR
 * (one message printed to stderr). */
int opts_parse(const char *cmd, const char *usage_head, const OptSpec *specs, int argc, char **argv,
               char ***pos, int *npos);

/* The exit status for a non-OK parse result: 0 after --help, 2 after a usage error. */
static inline int opts_exit_code(int parse_result) { return parse_result == OPTS_HELP ? 0 : 2; }

/* Checks and stores one value for spec exactly as if given on the command line (for numbers inside other
 * values, e.g. the NUMBER of "--param KEY=NUMBER"). Returns OPTS_OK, or OPTS_ERROR after printing
 * "daclip <cmd>: <spec name>: <problem>". */
int opts_store(const char *cmd, const OptSpec *spec, const char *value);

/* usage_head, then "options:" and one aligned line per spec (and -h, --help), to f. */
void opts_usage(FILE *f, const char *usage_head, const OptSpec *specs);

/* For checks after parsing (values that depend on each other, names looked up in a table): prints
 * "daclip <cmd>: <opt>: <message>" (or "daclip <cmd>: <message>" when opt is NULL) to stderr and
 * returns 2, the usage-error exit status. */
int opts_fail(const char *cmd, const char *opt, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Flushes and closes stdout and reports a write error ("daclip <cmd>: stdout: write error: ...", or
 * "daclip: stdout: ..." when cmd is NULL), e.g. with stdout on /dev/full or a full disk. Returns 0, or 1
 * after an error. Only the first call acts (later calls return its result), so a command may call it and
 * main() calls it again after every command; print nothing to stdout afterwards. */
int out_close_stdout(const char *cmd);

#endif
