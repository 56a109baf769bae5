#ifndef DACLIP_TRAIN_CONFUSION_PLOT_H
#define DACLIP_TRAIN_CONFUSION_PLOT_H
/* A confusion matrix as a PNG heat map: one cell per (true, predicted) pair, shaded by the share of the true
 * class's images, with the count in the cell, row and column labels and the per-class accuracy. */
#include <stdint.h>

/* counts[t * n + p]; labels[n]. 0, or -1 (data_error) if the PNG cannot be written. */
int confusion_plot(const char *png_path, int n, const int64_t *counts, const char *const *labels, const char *title);

#endif
