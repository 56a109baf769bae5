/* Dataset folders in the official layout, and the daclip_{train,val}.csv caption files. */
#include "data/dataset.h"
#include "data/file_io.h"
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char e[8] = { 0 };
    for (int i = 0; i < 7 && dot[1 + i]; i++) e[i] = (char)tolower((unsigned char)dot[1 + i]);
    return !strcmp(e, "png") || !strcmp(e, "jpg") || !strcmp(e, "jpeg");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void dataset_free_list(char **paths, int n) {
    if (!paths) return;
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int dataset_list_images(const char *dir, char ***paths, int *n) {
    *paths = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) { data_set_error("%s: cannot open folder", dir); return -1; }
    char **list = NULL;
    int cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            char **nl = realloc(list, sizeof(char *) * (size_t)cap);
            if (!nl) goto oom;
            list = nl;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(list[cnt] = malloc(len))) goto oom;
        snprintf(list[cnt++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (cnt > 1) qsort(list, (size_t)cnt, sizeof(char *), cmp_str);   /* Python's sorted(): byte order */
    *paths = list;
    *n = cnt;
    return 0;
oom:
    closedir(d);
    dataset_free_list(list, cnt);
    data_set_error("%s: out of memory while listing", dir);
    return -1;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

void dataset_free(Dataset *ds) {
    for (int i = 0; i < ds->n; i++) { free(ds->items[i].lq); free(ds->items[i].gt); }
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}

static int push_item(Dataset *ds, int *cap, char *lq, char *gt, int type) {
    if (ds->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        DatasetItem *ni = realloc(ds->items, sizeof(DatasetItem) * (size_t)*cap);
        if (!ni) return -1;
        ds->items = ni;
    }
    ds->items[ds->n++] = (DatasetItem){ lq, gt, type };
    return 0;
}

int dataset_open(const char *root, const char *split, Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    int cap = 0;
    char dir[4096];
    for (int t = 0; t < DEGRADE_N; t++) {
        ds->type_start[t] = ds->n;
        snprintf(dir, sizeof dir, "%s/%s/%s/LQ", root, split, degrade_name(t));
        if (!is_dir(dir)) continue;
        char **lq, **gt;
        int nlq, ngt;
        if (dataset_list_images(dir, &lq, &nlq)) goto fail;
        snprintf(dir, sizeof dir, "%s/%s/%s/GT", root, split, degrade_name(t));
        if (dataset_list_images(dir, &gt, &ngt)) { dataset_free_list(lq, nlq); goto fail; }
        if (nlq != ngt) {
            data_set_error("%s/%s/%s: %d LQ images but %d GT images (pairs are matched by sorted order)", root,
                           split, degrade_name(t), nlq, ngt);
            dataset_free_list(lq, nlq);
            dataset_free_list(gt, ngt);
            goto fail;
        }
        int i = 0;
        for (; i < nlq; i++)
            if (push_item(ds, &cap, lq[i], gt[i], t)) break;
        if (i < nlq) {   /* ownership of the first i pairs moved to ds */
            for (int j = i; j < nlq; j++) { free(lq[j]); free(gt[j]); }
            free(lq); free(gt);
            data_set_error("%s: out of memory", root);
            goto fail;
        }
        free(lq);
        free(gt);
    }
    ds->type_start[DEGRADE_N] = ds->n;
    if (ds->n == 0) {
        data_set_error("%s/%s: no <degradation>/LQ,GT image pairs found", root, split);
        goto fail;
    }
    return 0;
fail:
    dataset_free(ds);
    return -1;
}

int dataset_open_clean(const char *dir, Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    char **p;
    int n;
    if (dataset_list_images(dir, &p, &n)) return -1;
    if (n == 0) { free(p); data_set_error("%s: no .png/.jpg images", dir); return -1; }
    ds->items = malloc(sizeof(DatasetItem) * (size_t)n);
    if (!ds->items) { dataset_free_list(p, n); data_set_error("%s: out of memory", dir); return -1; }
    for (int i = 0; i < n; i++) ds->items[i] = (DatasetItem){ p[i], NULL, -1 };
    free(p);
    ds->n = n;
    /* clean images belong to no type: all groups empty, items[0..n) with type -1 */
    for (int t = 0; t <= DEGRADE_N; t++) ds->type_start[t] = 0;
    return 0;
}

/* ---- CSV (pandas, sep='\t', QUOTE_MINIMAL) ---- */

typedef struct { char *s; size_t n, cap; } Buf;

static int buf_put(Buf *b, char c) {
    if (b->n + 1 >= b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 128;
        char *ns = realloc(b->s, nc);
        if (!ns) return -1;
        b->s = ns;
        b->cap = nc;
    }
    b->s[b->n++] = c;
    b->s[b->n] = 0;
    return 0;
}

void caption_rows_free(CaptionRow *rows, int n) {
    for (int i = 0; i < n; i++) { free(rows[i].filepath); free(rows[i].caption); free(rows[i].degradation); }
    free(rows);
}

enum { CSV_MAX_FIELDS = 16 };

/* Reads one record starting at *pos: fields split on tabs outside quotes; returns the field count, 0 at end of
 * input, -1 on an unterminated quote (or out of memory), -2 on too many fields. *lines counts newlines. */
static int csv_record(const char *s, size_t len, size_t *pos, Buf f[CSV_MAX_FIELDS], int *lines) {
    size_t p = *pos;
    if (p >= len) return 0;
    int nf = 1, quoted = 0, at_field_start = 1;
    for (int i = 0; i < CSV_MAX_FIELDS; i++) { f[i].n = 0; if (f[i].s) f[i].s[0] = 0; }
    while (p < len) {
        char c = s[p++];
        if (quoted) {
            if (c == '"') {
                if (p < len && s[p] == '"') { p++; if (buf_put(&f[nf - 1], '"')) return -1; }
                else quoted = 0;
            } else {
                if (c == '\n') (*lines)++;
                if (buf_put(&f[nf - 1], c)) return -1;
            }
            continue;
        }
        if (c == '"' && at_field_start) { quoted = 1; at_field_start = 0; continue; }
        at_field_start = 0;
        if (c == '\t') {
            if (nf == CSV_MAX_FIELDS) return -2;
            nf++;
            at_field_start = 1;
        } else if (c == '\n') {
            (*lines)++;
            break;
        } else if (c == '\r' && p < len && s[p] == '\n') {
            continue;
        } else if (buf_put(&f[nf - 1], c)) {
            return -1;
        }
    }
    if (quoted) return -1;
    *pos = p;
    return nf;
}

int caption_csv_read(const char *path, CaptionRow **rows_out, int *n_out) {
    *rows_out = NULL;
    *n_out = 0;
    FILE *fp = data_open_regular(path, DATA_MAX_TEXT_BYTES, NULL);
    if (!fp) return -1;
    Buf all = { 0 };
    char chunk[65536];
    size_t got;
    int rc = -1;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if ((int64_t)(all.n + got) > DATA_MAX_TEXT_BYTES) {   /* the file grew while being read */
            fclose(fp); free(all.s);
            data_set_error("%s: above the %lld-byte limit for a CSV", path, (long long)DATA_MAX_TEXT_BYTES);
            return -1;
        }
        for (size_t i = 0; i < got; i++)
            if (buf_put(&all, chunk[i])) { fclose(fp); free(all.s); data_set_error("%s: out of memory", path); return -1; }
    }
    if (ferror(fp)) { fclose(fp); free(all.s); data_set_error("%s: read error", path); return -1; }
    fclose(fp);
    Buf f[CSV_MAX_FIELDS];
    memset(f, 0, sizeof f);
    CaptionRow *rows = NULL;
    int n = 0, cap = 0, line = 1, col_fp = -1, col_title = -1, ncols = 0;
    size_t pos = 0;
    int start_line = line;
    int nf = csv_record(all.s ? all.s : "", all.n, &pos, f, &line);
    if (nf <= 0) { data_set_error("%s: empty file or bad header", path); goto done; }
    ncols = nf;
    for (int i = 0; i < nf; i++) {
        if (f[i].s && !strcmp(f[i].s, "filepath")) col_fp = i;
        if (f[i].s && !strcmp(f[i].s, "title")) col_title = i;
    }
    if (col_fp < 0 || col_title < 0) {
        data_set_error("%s:1: header must have the columns \"filepath\" and \"title\" separated by a tab", path);
        goto done;
    }
    for (;;) {
        start_line = line;
        nf = csv_record(all.s, all.n, &pos, f, &line);
        if (nf == 0) break;
        if (nf < 0) {
            data_set_error("%s:%d: %s", path, start_line, nf == -2 ? "too many fields" : "unterminated quoted field");
            goto done;
        }
        if (nf == 1 && (!f[0].s || !f[0].s[0])) continue;   /* blank line */
        if (nf != ncols) {
            data_set_error("%s:%d: %d fields, the header has %d (tab-separated)", path, start_line, nf, ncols);
            goto done;
        }
        const char *title = f[col_title].s ? f[col_title].s : "";
        const char *sep = strstr(title, ": ");
        if (!sep || strstr(sep + 2, ": ")) {
            data_set_error("%s:%d: title \"%s\" must contain \": \" exactly once (\"<caption>: <degradation>\")",
                           path, start_line, title);
            goto done;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            CaptionRow *nr = realloc(rows, sizeof(CaptionRow) * (size_t)cap);
            if (!nr) { data_set_error("%s: out of memory", path); goto done; }
            rows = nr;
        }
        CaptionRow *r = &rows[n++];
        r->filepath = dup_str(f[col_fp].s ? f[col_fp].s : "");
        r->caption = malloc((size_t)(sep - title) + 1);
        r->degradation = dup_str(sep + 2);
        if (!r->filepath || !r->caption || !r->degradation) { data_set_error("%s: out of memory", path); goto done; }
        memcpy(r->caption, title, (size_t)(sep - title));
        r->caption[sep - title] = 0;
    }
    rc = 0;
done:
    for (int i = 0; i < CSV_MAX_FIELDS; i++) free(f[i].s);
    free(all.s);
    if (rc) caption_rows_free(rows, n);
    else { *rows_out = rows; *n_out = n; }
    return rc;
}

/* pandas QUOTE_MINIMAL: quote a field holding the separator, a quote or a line break; double inner quotes. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, "\t\"\n\r")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int caption_csv_write(const char *path, const CaptionRow *rows, int n) {
    for (int i = 0; i < n; i++)
        if (strstr(rows[i].caption, ": ")) {
            data_set_error("%s: caption \"%s\" contains \": \", which the \"<caption>: <degradation>\" split "
                           "cannot tell apart", path, rows[i].caption);
            return -1;
        }
    DataOutFile out;
    if (data_out_open(&out, path)) return -1;
    FILE *f = out.fp;
    fputs("filepath\ttitle\n", f);
    for (int i = 0; i < n; i++) {
        size_t tl = strlen(rows[i].caption) + strlen(rows[i].degradation) + 3;
        char *title = malloc(tl);
        if (!title) { data_out_abort(&out); data_set_error("%s: out of memory", path); return -1; }
        snprintf(title, tl, "%s: %s", rows[i].caption, rows[i].degradation);
        csv_field(f, rows[i].filepath);
        fputc('\t', f);
        csv_field(f, title);
        fputc('\n', f);
        free(title);
    }
    return data_out_commit(&out);   /* checks every write above (ferror), then renames */
}
