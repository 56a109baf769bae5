#ifndef DACLIP_TRAIN_PLOT_H
#define DACLIP_TRAIN_PLOT_H
/* Line charts as PNG (loss curves and the like), drawn with train/draw.h: one panel per call, axes with
 * min/max labels, one colour per series, a legend. */
#include "data/image.h"

typedef struct {
    const char *label;
    const double *x, *y;   /* n points; NaN y values are skipped */
    int n;
    float rgb[3];
} PlotSeries;

/* Draws a panel of w×h at (x0, y0) of `im`. */
void plot_panel(Image *im, int x0, int y0, int w, int h, const char *title, int n_series, const PlotSeries *s);

/* Reads a training log CSV (header with columns "step", "loss", and optionally "val_loss", "val_top1")
 * and writes a two-panel PNG: losses, and validation top-1. Returns 0, or -1 (data_error set). */
int plot_training_log(const char *csv_path, const char *png_path);

#endif
