/* The shared option parser (train/options.h): strict numbers, one error format, --help from the table. */
#include "train/options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPECS 128   /* a table longer than this is a programming error, reported as such */

static OptType base_type(const OptSpec *s) { return (OptType)(s->type & ~OPT_REQUIRED); }
static bool takes_value(const OptSpec *s) { return base_type(s) != OPT_FLAG; }
static bool has_range(const OptSpec *s) { return s->min != 0 || s->max != 0; }

int opts_fail(const char *cmd, const char *opt, const char *fmt, ...) {
    fprintf(stderr, opt ? "daclip %s: %s: " : "daclip %s: ", cmd, opt);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return OPTS_ERROR;
}

/* ---- numbers ----------------------------------------------------------------------------------------------- */

/* The accepted range of s as text, e.g. "1..1000000000" or "0..18446744073709551615". */
static void range_text(const OptSpec *s, char *buf, size_t n) {
    OptType t = base_type(s);
    if (has_range(s)) {
        if (t == OPT_DOUBLE) snprintf(buf, n, "%g..%g", s->min, s->max);
        else snprintf(buf, n, "%.0f..%.0f", s->min, s->max);
    } else if (t == OPT_INT) snprintf(buf, n, "%d..%d", INT_MIN, INT_MAX);
    else if (t == OPT_I64) snprintf(buf, n, "%lld..%lld", (long long)INT64_MIN, (long long)INT64_MAX);
    else if (t == OPT_U64) snprintf(buf, n, "0..%llu", (unsigned long long)UINT64_MAX);
    else snprintf(buf, n, "finite numbers");
}

static int out_of_range(const char *cmd, const OptSpec *s, const char *v) {
    char r[96];
    range_text(s, r, sizeof r);
    return opts_fail(cmd, s->name, "%s is out of range (%s)", v, r);
}

/* Decimal, or hexadecimal after an optional sign and "0x": never octal, so "010" is ten. */
static int int_base(const char *v) {
    if (*v == '+' || *v == '-') v++;
    return v[0] == '0' && (v[1] == 'x' || v[1] == 'X') ? 16 : 10;
}

static int parse_integer(const char *cmd, const OptSpec *s, const char *v) {
    OptType t = base_type(s);
    char *end;
    errno = 0;
    long long sv = 0;
    unsigned long long uv = 0;
    if (t == OPT_U64) {
        if (*v == '-') return out_of_range(cmd, s, v);   /* strtoull would wrap "-1" to 2^64-1 */
        uv = strtoull(v, &end, int_base(v));
    } else {
        sv = strtoll(v, &end, int_base(v));
    }
    if (end == v || *end) return opts_fail(cmd, s->name, "'%s' is not an integer", v);
    if (errno == ERANGE) return out_of_range(cmd, s, v);
    double d = t == OPT_U64 ? (double)uv : (double)sv;
    if (has_range(s) && (d < s->min || d > s->max)) return out_of_range(cmd, s, v);
    if (t == OPT_INT) {
        if (sv < INT_MIN || sv > INT_MAX) return out_of_range(cmd, s, v);
        *(int *)s->dest = (int)sv;
    } else if (t == OPT_I64) {
        *(int64_t *)s->dest = (int64_t)sv;
    } else {
        *(uint64_t *)s->dest = (uint64_t)uv;
    }
    return OPTS_OK;
}

static int parse_double(const char *cmd, const OptSpec *s, const char *v) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end) return opts_fail(cmd, s->name, "'%s' is not a number", v);
    if (!isfinite(d)) return opts_fail(cmd, s->name, "'%s' is not a finite number", v);
    if (errno == ERANGE || (has_range(s) && (d < s->min || d > s->max))) return out_of_range(cmd, s, v);
    *(double *)s->dest = d;
    return OPTS_OK;
}

int opts_store(const char *cmd, const OptSpec *s, const char *v) {
    OptType t = base_type(s);
    if (t == OPT_STR) {
        *(const char **)s->dest = v;
        return OPTS_OK;
    }
    if (t == OPT_LIST) {
        OptList *l = s->dest;
        if (l->n == OPT_LIST_MAX) return opts_fail(cmd, s->name, "given more than %d times", OPT_LIST_MAX);
        l->v[l->n++] = v;
        return OPTS_OK;
    }
    if (!*v) return opts_fail(cmd, s->name, "empty value, expected a number");
    if (isspace((unsigned char)*v)) return opts_fail(cmd, s->name, "'%s' starts with a space", v);
    return t == OPT_DOUBLE ? parse_double(cmd, s, v) : parse_integer(cmd, s, v);
}

/* ---- option names ------------------------------------------------------------------------------------------ */

static const OptSpec *find(const OptSpec *specs, const char *name, size_t len) {
    for (const OptSpec *s = specs; s->name; s++)
        if (strlen(s->name) == len && !strncmp(s->name, name, len)) return s;
    return NULL;
}

/* Edit distance of two short strings (insertions, deletions, substitutions); large for long ones. */
static int edit_distance(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b);
    if (na > 63 || nb > 63) return INT_MAX;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static int unknown_option(const char *cmd, const OptSpec *specs, const char *arg, size_t len) {
    const OptSpec *best = NULL;
    int best_d = 3;   /* suggest only near misses: a typo or two, "-steps" for "--steps" */
    for (const OptSpec *s = specs; s->name; s++) {
        int d = edit_distance(arg, len, s->name);
        if (d < best_d) best_d = d, best = s;
    }
    fprintf(stderr, "daclip %s: %.*s: unknown option", cmd, (int)len, arg);
    if (best) fprintf(stderr, " (did you mean %s?)", best->name);
    fprintf(stderr, "; see 'daclip %s --help'\n", cmd);
    return OPTS_ERROR;
}

/* ---- parse ------------------------------------------------------------------------------------------------- */

int opts_parse(const char *cmd, const char *usage_head, const OptSpec *specs, int argc, char **argv,
               char ***pos, int *npos) {
    bool seen[MAX_SPECS] = {false};
    int n_specs = 0;
    while (specs[n_specs].name) n_specs++;
    if (n_specs > MAX_SPECS) return opts_fail(cmd, NULL, "internal error: more than %d options", MAX_SPECS);
    int n_pos = 0;
    bool options_ended = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        bool is_option = !options_ended && a[0] == '-' && a[1];
        if (!is_option) {
            if (!pos) return opts_fail(cmd, a, "unexpected argument (this command takes options only)");
            argv[1 + n_pos++] = a;   /* never overwrites an argument not yet read: 1 + n_pos <= i */
            continue;
        }
        if (!strcmp(a, "--")) {
            options_ended = true;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            opts_usage(stdout, usage_head, specs);
            return OPTS_HELP;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const OptSpec *s = find(specs, a, len);
        if (!s) return unknown_option(cmd, specs, a, len);
        seen[s - specs] = true;
        if (!takes_value(s)) {
            if (eq) return opts_fail(cmd, s->name, "takes no value (got '%s')", eq + 1);
            *(bool *)s->dest = true;
            continue;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (i + 1 >= argc) {
            return opts_fail(cmd, s->name, "missing value (expected %s %s)", s->name, s->metavar ? s->metavar : "VALUE");
        } else if (!strncmp(argv[i + 1], "--", 2)) {
            return opts_fail(cmd, s->name, "missing value: the next argument, '%s', is an option "
                             "(write %s=%s to mean it as the value)", argv[i + 1], s->name, argv[i + 1]);
        } else {
            v = argv[++i];
        }
        if (opts_store(cmd, s, v)) return OPTS_ERROR;
    }
    for (int k = 0; k < n_specs; k++)
        if ((specs[k].type & OPT_REQUIRED) && !seen[k])
            return opts_fail(cmd, specs[k].name, "required; see 'daclip %s --help'", cmd);
    if (pos) {
        *pos = argv + 1;
        *npos = n_pos;
    }
    return OPTS_OK;
}

/* ---- help -------------------------------------------------------------------------------------------------- */

void opts_usage(FILE *f, const char *usage_head, const OptSpec *specs) {
    enum { MAX_COL = 24 };   /* the help column; longer names put their help on the next line */
    int col = 0;
    for (const OptSpec *s = specs; s->name; s++) {
        int w = 2 + (int)strlen(s->name) + (s->metavar ? 1 + (int)strlen(s->metavar) : 0) + 2;
        if (w > col) col = w;
    }
    if (col > MAX_COL) col = MAX_COL;
    if (col < 14) col = 14;   /* room for "  -h, --help" */
    size_t head = strlen(usage_head);
    fputs(usage_head, f);
    if (head && usage_head[head - 1] != '\n') fputc('\n', f);
    fprintf(f, "\noptions:\n");
    for (const OptSpec *s = specs; s->name; s++) {
        int w = fprintf(f, "  %s%s%s", s->name, s->metavar ? " " : "", s->metavar ? s->metavar : "");
        if (w + 2 > col) {
            fputc('\n', f);
            w = 0;
        }
        fprintf(f, "%*s", col - w, "");
        for (const char *h = s->help ? s->help : ""; *h; h++) {
            fputc(*h, f);
            if (*h == '\n') fprintf(f, "%*s", col, "");
        }
        if (s->type & OPT_REQUIRED) fputs(" (required)", f);
        if (base_type(s) == OPT_LIST) fputs(" (repeatable)", f);
        fputc('\n', f);
    }
    fprintf(f, "  %-*s%s\n", col - 2, "-h, --help", "show this help");
}

/* ---- checked stdout ---------------------------------------------------------------------------------------- */

int out_close_stdout(const char *cmd) {
    static int result = -1;   /* the first call's result: stdout can be closed only once */
    if (result >= 0) return result;
    errno = 0;
    bool failed = fflush(stdout) != 0 || ferror(stdout);
    int err = errno;
    if (fclose(stdout) != 0 && !failed) {
        failed = true;
        err = errno;
    }
    if (failed) {
        fprintf(stderr, "daclip%s%s: stdout: write error%s%s\n", cmd ? " " : "", cmd ? cmd : "", err ? ": " : "",
                err ? strerror(err) : "");
    }
    result = failed ? 1 : 0;
    return result;
}
