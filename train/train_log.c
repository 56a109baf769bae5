#include "train/train_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rewrites `path` keeping the header line and the rows whose first field is <= step. */
static int cut_after(const char *path, int64_t step, char *err, size_t errlen) {
    FILE *in = fopen(path, "r");
    if (!in) return 0;   /* nothing logged yet */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    char line[4096];
    bool first = true;
    while (fgets(line, sizeof line, in)) {
        char *end;
        long long s = strtoll(line, &end, 10);
        if (first || (end != line && *end == ',' && s <= step)) fputs(line, out);
        first = false;
    }
    fclose(in);
    int bad = fflush(out) != 0 || ferror(out);
    bad |= fclose(out) != 0;   /* closed whatever happened */
    if (bad || rename(tmp, path)) {
        snprintf(err, errlen, "%s: cannot rewrite: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

FILE *train_log_open(const char *path, const char *header, bool resume, int64_t step, char *err, size_t errlen) {
    if (resume && cut_after(path, step, err, errlen)) return NULL;
    bool fresh = !resume || access(path, F_OK) != 0;
    FILE *f = fopen(path, fresh ? "w" : "a");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fresh) fprintf(f, "%s\n", header);
    return f;
}

int train_log_close(FILE *f, const char *path, char *err, size_t errlen) {
    if (!f) return 0;
    int bad = fflush(f) != 0 || ferror(f);
    bad |= fclose(f) != 0;
    if (bad) snprintf(err, errlen, "%s: write error: %s", path, strerror(errno));
    return bad ? -1 : 0;
}
