#include "train/confusion_plot.h"

#include <stdio.h>
#include <string.h>

#include "data/image_io.h"
#include "train/draw.h"

int confusion_plot(const char *png_path, int n, const int64_t *counts, const char *const *labels, const char *title) {
    const int cell = 44, left = 190, top = 60, right = 90, bottom = 40;
    Image im;
    if (image_alloc(&im, left + n * cell + right, top + n * cell + bottom + 150, 3)) return -1;
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0}, grey[3] = {0.6f, 0.6f, 0.6f};
    draw_fill(&im, 0, 0, im.w, im.h, white);
    draw_text_rgb(&im, 10, 12, title, 2, black);
    draw_text_rgb(&im, left, top - 16, "PREDICTED", 1, grey);
    draw_text_rgb(&im, 10, top - 16, "TRUE", 1, grey);
    draw_text_rgb(&im, left + n * cell + 8, top - 16, "ACC", 1, grey);
    char s[64];
    for (int t = 0; t < n; t++) {
        int64_t row = 0;
        for (int p = 0; p < n; p++) row += counts[t * n + p];
        int y = top + t * cell;
        draw_text_rgb(&im, 10, y + cell / 2 - 4, labels[t], 1, black);
        for (int p = 0; p < n; p++) {
            int64_t c = counts[t * n + p];
            float share = row ? (float)c / (float)row : 0.0f;
            /* white -> deep blue; the diagonal in the same scale */
            float rgb[3] = {1.0f - 0.85f * share, 1.0f - 0.65f * share, 1.0f - 0.25f * share};
            int x = left + p * cell;
            draw_fill(&im, x, y, x + cell - 1, y + cell - 1, rgb);
            if (c) {
                snprintf(s, sizeof s, "%lld", (long long)c);
                draw_text_rgb(&im, x + 4, y + cell / 2 - 4, s, 1, share > 0.5f ? white : black);
            }
        }
        snprintf(s, sizeof s, "%.0f", row ? 100.0 * (double)counts[t * n + t] / (double)row : 0.0);
        draw_text_rgb(&im, left + n * cell + 8, y + cell / 2 - 4, s, 1, black);
    }
    /* column labels below, one per line with its column number */
    for (int p = 0; p < n; p++) {
        snprintf(s, sizeof s, "%d", p + 1);
        draw_text_rgb(&im, left + p * cell + cell / 2 - 4, top + n * cell + 6, s, 1, black);
        snprintf(s, sizeof s, "%d = %s", p + 1, labels[p]);
        draw_text_rgb(&im, left, top + n * cell + 24 + 12 * p, s, 1, grey);
    }
    int rc = image_save(png_path, &im);
    image_free(&im);
    return rc;
}
