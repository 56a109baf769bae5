/* daclip metrics: PSNR/SSIM (RGB and Y) of predictions against ground truth, as the official evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data/dataset.h"
#include "data/file_io.h"
#include "data/image_io.h"
#include "data/metrics.h"
#include "train/commands.h"
#include "train/options.h"
#include "train/progress.h"

static const char usage_head[] =
    "usage: daclip metrics --gt A --pred B [--crop-border 4] [--csv out.csv]\n\n"
    "PSNR and SSIM, RGB and Y (BT.601), exactly as the official DA-CLIP/IR-SDE evaluation: both images\n"
    "rounded to uint8, --crop-border px removed on each side (default 4), SSIM with an 11x11 Gaussian\n"
    "window (sigma 1.5). A and B are two image files, or two folders whose images are paired by file name\n"
    "without extension (a.png with a.jpg); a name found in only one folder is an error. Prints one row per\n"
    "image and the mean; --csv also writes them as CSV.\n";

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- pairing two folders by file stem ---- */

typedef struct {
    const char *path;
    const char *stem;          /* file name, extension cut */
    size_t stem_len;
} Named;

static int by_stem(const void *a, const void *b) {
    const Named *x = a, *y = b;
    size_t n = x->stem_len < y->stem_len ? x->stem_len : y->stem_len;
    int c = memcmp(x->stem, y->stem, n);
    return c ? c : (x->stem_len > y->stem_len) - (x->stem_len < y->stem_len);
}

/* Sorted by stem; an error when two files of one folder share a stem (a.png and a.jpg). */
static Named *named_list(char **paths, int n, const char *dir) {
    Named *v = malloc(sizeof *v * (size_t)(n > 0 ? n : 1));
    if (!v) {
        fprintf(stderr, "daclip metrics: out of memory\n");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        const char *dot = strrchr(base, '.');
        v[i] = (Named){paths[i], base, dot ? (size_t)(dot - base) : strlen(base)};
    }
    if (n > 1) qsort(v, (size_t)n, sizeof *v, by_stem);
    for (int i = 1; i < n; i++)
        if (!by_stem(&v[i - 1], &v[i])) {
            fprintf(stderr, "daclip metrics: %s: %s and %s have the same name; cannot tell which to compare\n", dir,
                    v[i - 1].path, v[i].path);
            free(v);
            return NULL;
        }
    return v;
}

/* Pairs gt and pred images by stem into ga/pa (n pairs, in stem order). Every unmatched name is reported;
 * any makes this fail. */
static int pair_folders(const char *gt, const char *pred, char ***ga, char ***pa, int *n) {
    char **gl = NULL, **pl = NULL;
    int ng = 0, np = 0, rc = -1;
    Named *gv = NULL, *pv = NULL;
    *ga = *pa = NULL;
    *n = 0;
    if (dataset_list_images(gt, &gl, &ng) || dataset_list_images(pred, &pl, &np)) {
        fprintf(stderr, "daclip metrics: %s\n", data_error());
        goto done;
    }
    if (ng == 0 || np == 0) {
        fprintf(stderr, "daclip metrics: %s: no .png/.jpg/.jpeg images found\n", ng == 0 ? gt : pred);
        goto done;
    }
    if (!(gv = named_list(gl, ng, gt)) || !(pv = named_list(pl, np, pred))) goto done;
    int cap = ng < np ? ng : np, unmatched = 0;
    *ga = calloc((size_t)cap, sizeof(char *));
    *pa = calloc((size_t)cap, sizeof(char *));
    if (!*ga || !*pa) {
        fprintf(stderr, "daclip metrics: out of memory\n");
        goto done;
    }
    for (int i = 0, j = 0; i < ng || j < np;) {
        int c = i == ng ? 1 : j == np ? -1 : by_stem(&gv[i], &pv[j]);
        if (c < 0) {
            fprintf(stderr, "daclip metrics: %s has no prediction in %s\n", gv[i++].path, pred);
            unmatched++;
        } else if (c > 0) {
            fprintf(stderr, "daclip metrics: %s has no ground truth in %s\n", pv[j++].path, gt);
            unmatched++;
        } else {
            (*ga)[*n] = strdup(gv[i++].path);
            (*pa)[*n] = strdup(pv[j++].path);
            if (!(*ga)[*n] || !(*pa)[*n]) {
                fprintf(stderr, "daclip metrics: out of memory\n");
                (*n)++;
                goto done;
            }
            (*n)++;
        }
    }
    if (unmatched)
        fprintf(stderr, "daclip metrics: %d unmatched image%s (pairs are matched by file name without extension)\n",
                unmatched, unmatched == 1 ? "" : "s");
    else
        rc = 0;
done:
    free(gv);
    free(pv);
    dataset_free_list(gl, ng);
    dataset_free_list(pl, np);
    if (rc) {
        dataset_free_list(*ga, *n);
        dataset_free_list(*pa, *n);
        *ga = *pa = NULL;
        *n = 0;
    }
    return rc;
}

int cmd_metrics(int argc, char **argv) {
    const char *gt = NULL, *pred = NULL, *csv = NULL;
    int crop = METRICS_DEFAULT_CROP;
    const OptSpec specs[] = {
        {"--gt", OPT_STR | OPT_REQUIRED, &gt, 0, 0, "PATH", "ground truth: an image file or a folder"},
        {"--pred", OPT_STR | OPT_REQUIRED, &pred, 0, 0, "PATH", "predictions: an image file or a folder"},
        {"--crop-border", OPT_INT, &crop, 0, 10000, "PX", "pixels removed on each side (default 4)"},
        {"--csv", OPT_STR, &csv, 0, 0, "FILE", "also write the rows and the mean as CSV (atomically)"},
        {0}};
    int parsed = opts_parse("metrics", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    char **ga = NULL, **pa = NULL;
    int n = 0, rc = 1;
    DataOutFile out = {0};
    if (is_dir(gt) != is_dir(pred)) { fprintf(stderr, "daclip metrics: --gt and --pred must both be files or both folders\n"); return 2; }
    if (is_dir(gt)) {
        if (pair_folders(gt, pred, &ga, &pa, &n)) goto done;
    } else {
        ga = calloc(1, sizeof(char *)); pa = calloc(1, sizeof(char *));
        n = 1;
        if (!ga || !pa || !(ga[0] = strdup(gt)) || !(pa[0] = strdup(pred))) {
            fprintf(stderr, "daclip metrics: out of memory\n");
            goto done;
        }
    }
    if (csv && data_out_open(&out, csv)) { fprintf(stderr, "daclip metrics: %s\n", data_error()); goto done; }
    if (out.fp) fprintf(out.fp, "gt,pred,psnr,ssim,psnr_y,ssim_y\n");
    printf("%-32s %9s %8s %9s %8s\n", "image", "PSNR", "SSIM", "PSNR_Y", "SSIM_Y");
    double sum[4] = { 0, 0, 0, 0 };
    Progress pr;
    progress_begin(&pr, "metrics", n, "img");
    for (int i = 0; i < n; i++) {
        Image a, b;
        Metrics m;
        if (image_load(ga[i], &a)) { fprintf(stderr, "daclip metrics: %s\n", data_error()); goto done; }
        if (image_load(pa[i], &b)) { image_free(&a); fprintf(stderr, "daclip metrics: %s\n", data_error()); goto done; }
        int err = metrics_compute(&a, &b, crop, &m);
        image_free(&a);
        image_free(&b);
        if (err) { fprintf(stderr, "daclip metrics: %s vs %s: %s\n", ga[i], pa[i], data_error()); goto done; }
        const char *name = strrchr(ga[i], '/') ? strrchr(ga[i], '/') + 1 : ga[i];
        printf("%-32s %9.4f %8.4f %9.4f %8.4f\n", name, m.psnr, m.ssim, m.psnr_y, m.ssim_y);
        if (out.fp) fprintf(out.fp, "%s,%s,%.6f,%.6f,%.6f,%.6f\n", ga[i], pa[i], m.psnr, m.ssim, m.psnr_y, m.ssim_y);
        sum[0] += m.psnr; sum[1] += m.ssim; sum[2] += m.psnr_y; sum[3] += m.ssim_y;
        progress_update(&pr, i + 1, NULL);
    }
    progress_end(&pr);
    printf("%-32s %9.4f %8.4f %9.4f %8.4f\n", "mean", sum[0] / n, sum[1] / n, sum[2] / n, sum[3] / n);
    if (out.fp) {
        fprintf(out.fp, "mean,,%.6f,%.6f,%.6f,%.6f\n", sum[0] / n, sum[1] / n, sum[2] / n, sum[3] / n);
        if (data_out_commit(&out)) { fprintf(stderr, "daclip metrics: %s\n", data_error()); goto done; }
    }
    rc = 0;
done:
    data_out_abort(&out);   /* no-op after a commit; removes the temporary after a failure */
    dataset_free_list(ga, n);
    dataset_free_list(pa, n);
    if (out_close_stdout("metrics")) rc = 1;
    return rc;
}
