/* daclip metrics: PSNR/SSIM (RGB and Y) of predictions against ground truth, as the official evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/metrics.h"
#include "train/commands.h"
#include "train/options.h"
#include "train/progress.h"

static const char usage_head[] =
    "usage: daclip metrics --gt A --pred B [--crop-border 4] [--csv out.csv]\n\n"
    "PSNR and SSIM, RGB and Y (BT.601), exactly as the official DA-CLIP/IR-SDE evaluation: both images\n"
    "rounded to uint8, --crop-border px removed on each side (default 4), SSIM with an 11x11 Gaussian\n"
    "window (sigma 1.5). A and B are two image files, or two folders whose images are matched by sorted\n"
    "file name (both must hold the same number of images). Prints one row per image and the mean;\n"
    "--csv also writes them as CSV.\n";

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cmd_metrics(int argc, char **argv) {
    const char *gt = NULL, *pred = NULL, *csv = NULL;
    int crop = METRICS_DEFAULT_CROP;
    const OptSpec specs[] = {
        {"--gt", OPT_STR | OPT_REQUIRED, &gt, 0, 0, "PATH", "ground truth: an image file or a folder"},
        {"--pred", OPT_STR | OPT_REQUIRED, &pred, 0, 0, "PATH", "predictions: an image file or a folder"},
        {"--crop-border", OPT_INT, &crop, 0, 10000, "PX", "pixels removed on each side (default 4)"},
        {"--csv", OPT_STR, &csv, 0, 0, "FILE", "also write the rows and the mean as CSV"},
        {0}};
    int parsed = opts_parse("metrics", usage_head, specs, argc, argv, NULL, NULL);
    if (parsed != OPTS_OK) return opts_exit_code(parsed);
    char **ga = NULL, **pa = NULL;
    int ng = 0, np = 0, rc = 1;
    if (is_dir(gt) != is_dir(pred)) { fprintf(stderr, "daclip metrics: --gt and --pred must both be files or both folders\n"); return 2; }
    if (is_dir(gt)) {
        if (dataset_list_images(gt, &ga, &ng) || dataset_list_images(pred, &pa, &np)) {
            fprintf(stderr, "daclip metrics: %s\n", data_error());
            goto done;
        }
        if (ng != np || ng == 0) { fprintf(stderr, "daclip metrics: %d images in %s but %d in %s\n", ng, gt, np, pred); goto done; }
    } else {
        ga = malloc(sizeof(char *)); pa = malloc(sizeof(char *));
        if (!ga || !pa) goto done;
        ga[0] = strdup(gt); pa[0] = strdup(pred);
        ng = np = 1;
    }
    FILE *out = NULL;
    if (csv && !(out = fopen(csv, "w"))) { fprintf(stderr, "daclip metrics: cannot create %s\n", csv); goto done; }
    if (out) fprintf(out, "gt,pred,psnr,ssim,psnr_y,ssim_y\n");
    printf("%-32s %9s %8s %9s %8s\n", "image", "PSNR", "SSIM", "PSNR_Y", "SSIM_Y");
    double sum[4] = { 0, 0, 0, 0 };
    Progress pr;
    progress_begin(&pr, "metrics", ng, "img");
    for (int i = 0; i < ng; i++) {
        Image a, b;
        Metrics m;
        if (image_load(ga[i], &a)) { fprintf(stderr, "daclip metrics: %s\n", data_error()); if (out) fclose(out); goto done; }
        if (image_load(pa[i], &b)) { image_free(&a); fprintf(stderr, "daclip metrics: %s\n", data_error()); if (out) fclose(out); goto done; }
        int err = metrics_compute(&a, &b, crop, &m);
        image_free(&a);
        image_free(&b);
        if (err) { fprintf(stderr, "daclip metrics: %s vs %s: %s\n", ga[i], pa[i], data_error()); if (out) fclose(out); goto done; }
        const char *name = strrchr(ga[i], '/') ? strrchr(ga[i], '/') + 1 : ga[i];
        printf("%-32s %9.4f %8.4f %9.4f %8.4f\n", name, m.psnr, m.ssim, m.psnr_y, m.ssim_y);
        if (out) fprintf(out, "%s,%s,%.6f,%.6f,%.6f,%.6f\n", ga[i], pa[i], m.psnr, m.ssim, m.psnr_y, m.ssim_y);
        sum[0] += m.psnr; sum[1] += m.ssim; sum[2] += m.psnr_y; sum[3] += m.ssim_y;
        progress_update(&pr, i + 1, NULL);
    }
    progress_end(&pr);
    printf("%-32s %9.4f %8.4f %9.4f %8.4f\n", "mean", sum[0] / ng, sum[1] / ng, sum[2] / ng, sum[3] / ng);
    if (out) {
        fprintf(out, "mean,,%.6f,%.6f,%.6f,%.6f\n", sum[0] / ng, sum[1] / ng, sum[2] / ng, sum[3] / ng);
        bool failed = ferror(out) != 0;   /* an earlier write may have failed although the last flush did not */
        if (fclose(out) || failed) { fprintf(stderr, "daclip metrics: write error on %s\n", csv); goto done; }
    }
    rc = 0;
done:
    dataset_free_list(ga, ng);
    dataset_free_list(pa, np);
    if (out_close_stdout("metrics")) rc = 1;
    return rc;
}
