#ifndef DACLIP_DATA_DATASET_H
#define DACLIP_DATA_DATASET_H
/* DA-CLIP datasets in the official layout (reference §3):
 *   ROOT/{train,val}/<degradation>/{LQ,GT}/NNNN.png  LQ/GT paired by sorted file name order
 *   ROOT/daclip_{train,val}.csv                   tab-separated, columns filepath (LQ path) and
 *                                                  title = "<caption>: <degradation>", as pandas writes it. */
#include <stdint.h>
#include "data/degrade.h"
#include "data/image.h"

typedef struct {
    char *lq, *gt;      /* file paths (gt == NULL for a clean-only dataset) */
    int type;           /* degradation index 0..DEGRADE_N-1, -1 for clean images */
} DatasetItem;

typedef struct {
    DatasetItem *items;           /* grouped by type, in type order, each group in sorted file order */
    int n;
    int type_start[DEGRADE_N + 1]; /* items of type t are [type_start[t], type_start[t+1]) */
} Dataset;

/* Scans ROOT/<split>/<name>/{LQ,GT} for the ten names; absent type folders are allowed (empty groups), but
 * LQ and GT of a present type must have the same number of images. Error if nothing is found. */
int  dataset_open(const char *root, const char *split, Dataset *ds);
/* A clean-only dataset: every .png/.jpg/.jpeg in `dir` (sorted), type -1 and gt NULL (items[i].lq is the clean
 * image), all type groups empty; for on-the-fly degradation by the loader. */
int  dataset_open_clean(const char *dir, Dataset *ds);
void dataset_free(Dataset *ds);
static inline int dataset_type_count(const Dataset *ds, int t) { return ds->type_start[t + 1] - ds->type_start[t]; }

/* Sorted list of image files (.png/.jpg/.jpeg, case-insensitive) in a folder, full paths "dir/name".
 * *paths gets malloc'd strings; free with dataset_free_list. An empty folder gives n = 0 (not an error). */
int  dataset_list_images(const char *dir, char ***paths, int *n);
void dataset_free_list(char **paths, int n);

/* One row of daclip_{train,val}.csv. */
typedef struct { char *filepath, *caption, *degradation; } CaptionRow;

/* Reads the tab-separated CSV (header with columns "filepath" and "title" in any order, pandas quoting: "..."
 * with "" for a quote). The title must contain exactly one ": " (the official loader's split would break
 * otherwise) and is split there into caption and degradation. A row without exactly one ": ", with the wrong
 * number of fields or an unterminated quote is an error naming the file and line. */
int  caption_csv_read(const char *path, CaptionRow **rows, int *n);
/* Writes rows with title = caption + ": " + degradation, quoting like pandas (QUOTE_MINIMAL). A caption that
 * contains ": " is rejected (it would not split back). */
int  caption_csv_write(const char *path, const CaptionRow *rows, int n);
void caption_rows_free(CaptionRow *rows, int n);

/* Options of make-dataset (daclip make-dataset). */
typedef struct {
    const char *src, *out;
    const char *captions;  /* TSV "filename<TAB>caption", or NULL for the template captions */
    double val_frac;       /* share of source photos that go to val, default 0.1 */
    int types[DEGRADE_N];  /* 1 = generate this type */
    int patches;           /* > 0: this many random patch_size crops per photo, each its own sample (0 = whole photo) */
    int patch_size;        /* default 256 */
    double downscale;      /* area-downscale photos by this factor first (>= 1; default 1) */
    uint64_t seed;
    int threads;           /* workers, one photo each at a time (0 or 1: the calling thread alone); same output */
    /* called after each written pair (may be NULL): done/total pairs */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} MakeDatasetOptions;

void make_dataset_default_options(MakeDatasetOptions *o);
/* For each clean photo (sorted) — or each of its `patches` crops — and each selected type writes <out>/<split>/<name>/{LQ,GT}/NNNN.png (NNNN =
 * photo index within the split, from 0001) and <out>/daclip_{train,val}.csv. Photos are assigned to val by a
 * seeded shuffle (round(val_frac·n) photos, at least one photo stays in train). The LQ of photo i and type t
 * is degrade_apply(photo, t, NULL, seed derived from (seed, photo index, t)), so the output does not depend on
 * `threads`. Returns 0 or -1 (data_error). */
int  make_dataset(const MakeDatasetOptions *o);
/* Template caption for a photo with no caption: from the file name and colour statistics, never containing ": ". */
void caption_template(const char *filename, const Image *im, char *out, size_t cap);

#endif
