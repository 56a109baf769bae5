#include "train/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image_io.h"
#include "train/draw.h"

static const float BLACK[3] = {0.1f, 0.1f, 0.1f}, GRID[3] = {0.85f, 0.85f, 0.85f};

void plot_panel(Image *im, int x0, int y0, int w, int h, const char *title, int n_series, const PlotSeries *s) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (isnan(s[k].y[i])) continue;
            xmin = fmin(xmin, s[k].x[i]), xmax = fmax(xmax, s[k].x[i]);
            ymin = fmin(ymin, s[k].y[i]), ymax = fmax(ymax, s[k].y[i]);
        }
    draw_text_rgb(im, x0 + 50, y0 + 6, title, 2, BLACK);
    int L = x0 + 60, R = x0 + w - 20, T = y0 + 30, B = y0 + h - 30;   /* plot area */
    if (!(xmax >= xmin)) return;                                        /* nothing to draw */
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + 1;
    for (int g = 0; g <= 4; g++) {
        int y = T + (B - T) * g / 4;
        draw_line(im, L, y, R, y, 1, GRID);
    }
    draw_line(im, L, B, R, B, 1, BLACK);
    draw_line(im, L, T, L, B, 1, BLACK);
    char buf[32];
    snprintf(buf, sizeof buf, "%.3g", ymax);
    draw_text_rgb(im, x0 + 2, T - 3, buf, 1, BLACK);
    snprintf(buf, sizeof buf, "%.3g", ymin);
    draw_text_rgb(im, x0 + 2, B - 3, buf, 1, BLACK);
    snprintf(buf, sizeof buf, "%.0f", xmin);
    draw_text_rgb(im, L, B + 6, buf, 1, BLACK);
    snprintf(buf, sizeof buf, "%.0f", xmax);
    draw_text_rgb(im, R - 6 * (int)strlen(buf), B + 6, buf, 1, BLACK);
    draw_text_rgb(im, (L + R) / 2 - 12, B + 6, "STEP", 1, BLACK);
    for (int k = 0; k < n_series; k++) {
        int px = -1, py = -1;
        for (int i = 0; i < s[k].n; i++) {
            if (isnan(s[k].y[i])) continue;
            int x = L + (int)lround((s[k].x[i] - xmin) / (xmax - xmin) * (R - L));
            int y = B - (int)lround((s[k].y[i] - ymin) / (ymax - ymin) * (B - T));
            if (px >= 0) draw_line(im, px, py, x, y, 2, s[k].rgb);
            else draw_fill(im, x - 2, y - 2, x + 3, y + 3, s[k].rgb);
            px = x, py = y;
        }
        draw_fill(im, R - 150, T + 8 + 14 * k, R - 136, T + 12 + 14 * k, s[k].rgb);
        draw_text_rgb(im, R - 130, T + 6 + 14 * k, s[k].label, 1, BLACK);
    }
}

/* Index of a column in a CSV header line, or -1. */
static int column(const char *header, const char *name) {
    int idx = 0;
    size_t n = strlen(name);
    for (const char *p = header; *p; idx++) {
        const char *e = strpbrk(p, ",\n\r");
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return idx;
        if (!e || *e != ',') break;
        p = e + 1;
    }
    return -1;
}

static double field(const char *line, int col) {
    if (col < 0) return NAN;
    const char *p = line;
    for (int i = 0; i < col && p; i++) {
        p = strchr(p, ',');
        if (p) p++;
    }
    if (!p || !*p || *p == ',' || *p == '\n') return NAN;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

int plot_training_log(const char *csv_path, const char *png_path) {
    FILE *f = fopen(csv_path, "r");
    if (!f) {
        data_set_error("%s: cannot open", csv_path);
        return -1;
    }
    char line[1024];
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        data_set_error("%s: empty log", csv_path);
        return -1;
    }
    int cs = column(line, "step"), cl = column(line, "loss"), cv = column(line, "val_loss"),
        ct = column(line, "val_top1");
    if (cs < 0 || cl < 0) {
        fclose(f);
        data_set_error("%s: no step/loss columns", csv_path);
        return -1;
    }
    int cap = 1024, n = 0;
    double *step = malloc(sizeof(double) * cap), *loss = malloc(sizeof(double) * cap),
           *vl = malloc(sizeof(double) * cap), *vt = malloc(sizeof(double) * cap);
    while (fgets(line, sizeof line, f)) {
        if (n == cap) {
            cap *= 2;
            step = realloc(step, sizeof(double) * cap), loss = realloc(loss, sizeof(double) * cap);
            vl = realloc(vl, sizeof(double) * cap), vt = realloc(vt, sizeof(double) * cap);
        }
        step[n] = field(line, cs), loss[n] = field(line, cl), vl[n] = field(line, cv);
        vt[n] = 100 * field(line, ct);
        if (!isnan(step[n])) n++;
    }
    fclose(f);
    Image im;
    int rc = -1;
    if (image_alloc(&im, 1000, 360, 3) == 0) {
        for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++) im.px[i] = 1.0f;
        PlotSeries losses[2] = {{"TRAIN LOSS", step, loss, n, {0.15f, 0.35f, 0.8f}},
                                {"VAL LOSS", step, vl, n, {0.9f, 0.4f, 0.1f}}};
        PlotSeries acc[1] = {{"VAL TOP-1 %", step, vt, n, {0.2f, 0.65f, 0.25f}}};
        plot_panel(&im, 0, 0, 500, 360, "LOSS", cv >= 0 ? 2 : 1, losses);
        if (ct >= 0) plot_panel(&im, 500, 0, 500, 360, "VALIDATION TOP-1 %", 1, acc);
        rc = image_save(png_path, &im);
        image_free(&im);
    }
    free(step), free(loss), free(vl), free(vt);
    return rc;
}
