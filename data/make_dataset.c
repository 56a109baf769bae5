/* `daclip make-dataset`: clean photos -> the official folder layout with LQ/GT pairs and caption CSVs. */
#include "data/dataset.h"
#include "data/file_io.h"
#include "data/image_io.h"
#include "data/resize.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void make_dataset_default_options(MakeDatasetOptions *o) {
    memset(o, 0, sizeof *o);
    o->val_frac = 0.1;
    o->patch_size = 256;
    o->downscale = 1.0;
    for (int t = 0; t < DEGRADE_N; t++) o->types[t] = 1;
}

static int mkdir_p(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) { data_set_error("%s: bad folder name", path); return -1; }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++)
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) { data_set_error("%s: cannot create folder", tmp); return -1; }
            tmp[i] = c;
        }
    return 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

void caption_template(const char *filename, const Image *im, char *out, size_t cap) {
    /* words from the file name: letters kept, everything else a single space; digits-only names say nothing */
    char words[128];
    size_t k = 0;
    const char *b = base_name(filename), *dot = strrchr(b, '.');
    size_t len = dot ? (size_t)(dot - b) : strlen(b);
    for (size_t i = 0; i < len && k + 1 < sizeof words; i++) {
        unsigned char c = (unsigned char)b[i];
        if (isalpha(c)) words[k++] = (char)tolower(c);
        else if (k && words[k - 1] != ' ') words[k++] = ' ';
    }
    while (k && words[k - 1] == ' ') k--;
    words[k] = 0;
    double m[3] = { 0, 0, 0 };
    size_t np = (size_t)im->w * im->h;
    for (size_t i = 0; i < np; i++)
        for (int c = 0; c < 3; c++) m[c] += im->px[i * im->c + (im->c >= 3 ? c : 0)];
    for (int c = 0; c < 3; c++) m[c] /= (double)(np ? np : 1);
    double mx = fmax(m[0], fmax(m[1], m[2])), mn = fmin(m[0], fmin(m[1], m[2])), lum = (m[0] + m[1] + m[2]) / 3;
    const char *tone = "grey";
    if (mx - mn > 0.06) {
        double hue;   /* degrees, from the mean colour */
        if (mx == m[0]) hue = 60.0 * fmod((m[1] - m[2]) / (mx - mn) + 6.0, 6.0);
        else if (mx == m[1]) hue = 60.0 * ((m[2] - m[0]) / (mx - mn) + 2.0);
        else hue = 60.0 * ((m[0] - m[1]) / (mx - mn) + 4.0);
        static const char *names[] = { "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "red" };
        static const double edges[] = { 15, 45, 70, 160, 200, 260, 290, 340, 361 };
        int i = 0;
        while (hue >= edges[i]) i++;
        tone = names[i];
    }
    const char *light = lum < 0.3 ? "dark" : lum > 0.65 ? "bright" : "softly lit";
    if (words[0]) snprintf(out, cap, "a %s photo of %s with mostly %s tones", light, words, tone);
    else snprintf(out, cap, "a %s photo with mostly %s tones", light, tone);
}

typedef struct { char *file, *caption; } CaptionEntry;

static void captions_free(CaptionEntry *c, int n) {
    for (int i = 0; i < n; i++) { free(c[i].file); free(c[i].caption); }
    free(c);
}

/* TSV "filename<TAB>caption" per line; '#' lines and blank lines skipped. */
static int captions_load(const char *path, CaptionEntry **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    FILE *f = data_open_regular(path, DATA_MAX_TEXT_BYTES, NULL);   /* no FIFO, device or huge file */
    if (!f) return -1;
    char line[8192];
    int n = 0, cap = 0, lineno = 0;
    CaptionEntry *c = NULL;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strlen(line);
        if (l == sizeof line - 1 && line[l - 1] != '\n') { data_set_error("%s:%d: line too long", path, lineno); goto fail; }
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (!l || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab || !tab[1]) { data_set_error("%s:%d: expected \"filename<TAB>caption\"", path, lineno); goto fail; }
        *tab = 0;
        if (strstr(tab + 1, ": ")) {
            data_set_error("%s:%d: caption contains \": \", which breaks the \"<caption>: <degradation>\" title",
                           path, lineno);
            goto fail;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            CaptionEntry *nc = realloc(c, sizeof *c * (size_t)cap);
            if (!nc) { data_set_error("%s: out of memory", path); goto fail; }
            c = nc;
        }
        c[n].file = strdup(line);
        c[n].caption = strdup(tab + 1);
        n++;
        if (!c[n - 1].file || !c[n - 1].caption) { data_set_error("%s: out of memory", path); goto fail; }
    }
    if (ferror(f)) { data_set_error("%s: read error", path); goto fail; }
    fclose(f);
    *out = c;
    *n_out = n;
    return 0;
fail:
    fclose(f);
    captions_free(c, n);
    return -1;
}

static const char *caption_lookup(const CaptionEntry *c, int n, const char *path) {
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].file, base_name(path))) return c[i].caption;
    return NULL;
}

/* The clean images one photo contributes: the photo (downscaled by o->downscale with an area filter, so codec
 * artefacts of JPEG sources fade), or o->patches random patch_size crops of it (the whole image when it is
 * smaller), each a sample of its own. Seeded by (seed, photo index). */
static int photo_views(const Image *photo, const MakeDatasetOptions *o, int photo_index, Image *views, int *nv) {
    Image base;
    int rc = 0;
    if (o->downscale > 1.0) {
        int w = (int)floor(photo->w / o->downscale + 0.5), h = (int)floor(photo->h / o->downscale + 0.5);
        if (w < 1) w = 1;
        if (h < 1) h = 1;
        if (image_resize(photo, &base, w, h, RESIZE_AREA)) return -1;
    } else if (image_clone(&base, photo)) {
        return -1;
    }
    if (o->patches <= 0) {
        views[0] = base;
        *nv = 1;
        return 0;
    }
    int P = o->patch_size;
    uint64_t s = data_hash64(o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)photo_index + 1);
    *nv = 0;
    for (int k = 0; k < o->patches && !rc; k++) {
        int pw = base.w < P ? base.w : P, ph = base.h < P ? base.h : P;
        s = data_hash64(s);
        int x0 = (int)(s % (uint64_t)(base.w - pw + 1)), y0 = (int)((s >> 32) % (uint64_t)(base.h - ph + 1));
        if (image_alloc(&views[k], pw, ph, base.c)) {
            rc = -1;
            break;
        }
        for (int y = 0; y < ph; y++)
            memcpy(image_at(&views[k], 0, y), image_at(&base, x0, y0 + y), sizeof(float) * (size_t)pw * base.c);
        (*nv)++;
    }
    image_free(&base);
    if (rc)
        for (int k = 0; k < *nv; k++) image_free(&views[k]);
    return rc;
}

/* The work shared by make-dataset's workers. Every output (file number, CSV row, seed) is fixed by the photo's
 * index before any work starts, so the dataset is the same whatever the thread count and the order photos finish in. */
typedef struct {
    const MakeDatasetOptions *o;
    char **photos;
    int n, n_types, per_photo;
    const int *is_val, *rank_in_split;   /* split of photo i and its position among that split's photos */
    const CaptionEntry *caps;
    int n_caps;
    CaptionRow *rows[2];
    pthread_mutex_t mu;                  /* guards everything below */
    int next_photo, failed;
    int64_t done_pairs, total;
    char err[1024];                      /* the first failure's data_error() (it is per thread) */
} DatasetJob;

static void job_fail(DatasetJob *j) {
    pthread_mutex_lock(&j->mu);
    if (!j->failed) snprintf(j->err, sizeof j->err, "%s", data_error());
    j->failed = 1;
    pthread_mutex_unlock(&j->mu);
}

/* One photo: its views, and for each view and type the GT/LQ pair and the CSV row. 0 or -1 (data_error). */
static int make_photo(DatasetJob *j, int i, Image *views) {
    const MakeDatasetOptions *o = j->o;
    int sp = j->is_val[i], nv = 0, rc = 0;
    const char *split = sp ? "val" : "train";
    Image photo;
    char path[4096];
    if (image_load(j->photos[i], &photo)) return -1;
    int vr = photo_views(&photo, o, i, views, &nv);
    image_free(&photo);
    if (vr) return -1;
    const char *given = caption_lookup(j->caps, j->n_caps, j->photos[i]);   /* one per photo */
    for (int v = 0; v < nv && !rc; v++) {
        int first = j->rank_in_split[i] * j->per_photo + v;   /* 0-based sample number in the split */
        Image *clean = &views[v];
        char caption[512];
        if (given) snprintf(caption, sizeof caption, "%s", given);
        else caption_template(j->photos[i], clean, caption, sizeof caption);
        for (int t = 0, tt = 0; t < DEGRADE_N && !rc; t++) {
            if (!o->types[t]) continue;
            Image lq;
            if (degrade_apply(clean, t, NULL, data_hash64(o->seed * 0x100000001B3ull + ((uint64_t)i * 16 + (uint64_t)t) * 10007u + (uint64_t)v), &lq)) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", data_error());
                data_set_error("%s: %s failed: %s", j->photos[i], degrade_name(t), msg);
                rc = -1;
                break;
            }
            snprintf(path, sizeof path, "%s/%s/%s/GT/%04d.png", o->out, split, degrade_name(t), first + 1);
            int err = image_save(path, clean);
            snprintf(path, sizeof path, "%s/%s/%s/LQ/%04d.png", o->out, split, degrade_name(t), first + 1);
            err = err || image_save(path, &lq);
            image_free(&lq);
            if (err) { rc = -1; break; }
            CaptionRow *r = &j->rows[sp][(int64_t)first * j->n_types + tt++];
            /* relative to the dataset root, where the CSV lives (as the official CSVs are) */
            snprintf(path, sizeof path, "%s/%s/LQ/%04d.png", split, degrade_name(t), first + 1);
            r->filepath = strdup(path);
            r->caption = strdup(caption);
            r->degradation = strdup(degrade_name(t));
            if (!r->filepath || !r->caption || !r->degradation) {
                data_set_error("make-dataset: out of memory");
                rc = -1;
                break;
            }
            pthread_mutex_lock(&j->mu);   /* the progress callback is called by one thread at a time */
            j->done_pairs++;
            if (o->progress) o->progress(o->progress_ctx, j->done_pairs, j->total);
            pthread_mutex_unlock(&j->mu);
        }
    }
    for (int k = 0; k < nv; k++) image_free(&views[k]);
    return rc;
}

static void *dataset_worker(void *arg) {
    DatasetJob *j = arg;
    Image *views = calloc((size_t)j->per_photo, sizeof *views);
    if (!views) {
        data_set_error("make-dataset: out of memory");
        job_fail(j);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int i = j->failed ? j->n : j->next_photo++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n) break;
        if (make_photo(j, i, views)) {
            job_fail(j);
            break;
        }
    }
    free(views);
    return NULL;
}

int make_dataset(const MakeDatasetOptions *o) {
    char **photos = NULL;
    int n = 0, n_caps = 0, rc = -1, *is_val = NULL, *order = NULL, *rank = NULL, n_rows[2] = { 0, 0 };
    CaptionEntry *caps = NULL;
    CaptionRow *rows[2] = { NULL, NULL };
    int n_types = 0;
    for (int t = 0; t < DEGRADE_N; t++) n_types += o->types[t] != 0;
    if (!n_types) { data_set_error("make-dataset: no degradation type selected"); return -1; }
    if (o->val_frac < 0 || o->val_frac >= 1) { data_set_error("make-dataset: --val-frac must be in [0, 1)"); return -1; }
    if (o->patches < 0 || o->patches > 10000 || (o->patches > 0 && (o->patch_size < 8 || o->patch_size > 8192)) ||
        !(o->downscale >= 1.0 && o->downscale <= 64.0) || o->threads < 0 || o->threads > 1024) {
        data_set_error("make-dataset: patches must be in [0, 10000], patch size in [8, 8192], downscale in [1, 64], "
                       "threads in [0, 1024]");
        return -1;
    }
    int per_photo = o->patches > 0 ? o->patches : 1;
    if (dataset_list_images(o->src, &photos, &n)) return -1;
    if (n == 0) { data_set_error("%s: no .png/.jpg images", o->src); goto done; }
    if ((int64_t)n * n_types * per_photo > INT_MAX) {   /* rows and sample numbers are counted in int */
        data_set_error("%s: %d photos x %d types x %d crops is more than %d pairs; make several datasets",
                       o->src, n, n_types, per_photo, INT_MAX);
        goto done;
    }
    if (o->captions && captions_load(o->captions, &caps, &n_caps)) goto done;
    is_val = calloc((size_t)n, sizeof(int));
    order = malloc(sizeof(int) * (size_t)n);
    rank = malloc(sizeof(int) * (size_t)n);
    rows[0] = calloc((size_t)n * n_types * per_photo, sizeof(CaptionRow));
    rows[1] = calloc((size_t)n * n_types * per_photo, sizeof(CaptionRow));
    if (!is_val || !order || !rank || !rows[0] || !rows[1]) { data_set_error("make-dataset: out of memory"); goto done; }
    /* seeded Fisher-Yates; the first n_val of the permutation go to val */
    for (int i = 0; i < n; i++) order[i] = i;
    uint64_t st = data_hash64(o->seed ^ 0x5EEDull);
    for (int i = n - 1; i > 0; i--) {
        st = data_hash64(st);
        int j = (int)(st % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int n_val = (int)floor(o->val_frac * n + 0.5);
    if (n_val > n - 1) n_val = n - 1;
    for (int i = 0; i < n_val; i++) is_val[order[i]] = 1;
    /* samples are numbered in photo order within each split; every photo gives per_photo of them */
    int in_split[2] = { 0, 0 };
    for (int i = 0; i < n; i++) rank[i] = in_split[is_val[i]]++;
    char path[4096];
    for (int sp = 0; sp < 2; sp++) {
        if (!in_split[sp]) continue;
        for (int t = 0; t < DEGRADE_N; t++)
            for (int g = 0; o->types[t] && g < 2; g++) {
                snprintf(path, sizeof path, "%s/%s/%s/%s", o->out, sp ? "val" : "train", degrade_name(t), g ? "GT" : "LQ");
                if (mkdir_p(path)) goto done;
            }
        n_rows[sp] = in_split[sp] * per_photo * n_types;
    }
    DatasetJob job = { .o = o, .photos = photos, .n = n, .n_types = n_types, .per_photo = per_photo,
                       .is_val = is_val, .rank_in_split = rank, .caps = caps, .n_caps = n_caps,
                       .rows = { rows[0], rows[1] }, .total = (int64_t)n * n_types * per_photo };
    int nt = o->threads > 0 ? o->threads : 1;
    if (nt > n) nt = n;
    pthread_t tids[1024];
    int started = 0;
    if (pthread_mutex_init(&job.mu, NULL)) { data_set_error("make-dataset: cannot create a lock"); goto done; }
    for (; started < nt - 1; started++)   /* the calling thread is the last worker */
        if (pthread_create(&tids[started], NULL, dataset_worker, &job)) break;
    dataset_worker(&job);
    for (int k = 0; k < started; k++) pthread_join(tids[k], NULL);
    pthread_mutex_destroy(&job.mu);
    if (job.failed) {
        data_set_error("%s", job.err);
        goto done;
    }
    for (int sp = 0; sp < 2; sp++) {
        snprintf(path, sizeof path, "%s/daclip_%s.csv", o->out, sp ? "val" : "train");
        if (caption_csv_write(path, rows[sp], n_rows[sp])) goto done;
    }
    rc = 0;
done:
    dataset_free_list(photos, n);
    captions_free(caps, n_caps);
    /* rows of a failed run may be partly filled: free what is there (NULL fields are fine for free) */
    if (rows[0]) caption_rows_free(rows[0], n * n_types * per_photo);
    if (rows[1]) caption_rows_free(rows[1], n * n_types * per_photo);
    free(is_val);
    free(order);
    free(rank);
    return rc;
}
