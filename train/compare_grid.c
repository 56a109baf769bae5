/* LQ | restored | GT rows with captions, as one PNG. */
#include "train/compare_grid.h"

#include <stdbool.h>
#include <string.h>

#include "data/image_io.h"
#include "data/resize.h"
#include "train/draw.h"

#define MARGIN 10
#define LINE 11          /* text line height at scale 1 (7 px glyphs) */
#define HEADER 34        /* one title line and the column names */

static const float background[3] = {0.13f, 0.13f, 0.14f}, ink[3] = {0.92f, 0.92f, 0.92f},
                   accent[3] = {1.0f, 0.80f, 0.30f}, frame[3] = {0.25f, 0.25f, 0.27f};

int compare_grid_thumbnail(const Image *src, int cell, Image *dst) {
    double s = (double)cell / (src->w > src->h ? src->w : src->h);
    if (s >= 1.0) return image_clone(dst, src);
    int w = (int)(src->w * s + 0.5), h = (int)(src->h * s + 0.5);
    return image_resize(src, dst, w > 0 ? w : 1, h > 0 ? h : 1, RESIZE_AREA);
}

void compare_row_free(CompareRow *r) {
    image_free(&r->lq), image_free(&r->restored), image_free(&r->gt);
}

/* Pastes a thumbnail centred in the cell at (x0, y0) (RGB or grey), in a thin frame. */
static void paste(Image *dst, const Image *src, int x0, int y0, int cell) {
    if (!src->px) return;
    int ox = x0 + (cell - src->w) / 2, oy = y0 + (cell - src->h) / 2;
    draw_fill(dst, ox - 1, oy - 1, ox + src->w + 1, oy + src->h + 1, frame);
    for (int y = 0; y < src->h && y < cell; y++)
        for (int x = 0; x < src->w && x < cell; x++) {
            const float *s = image_at(src, x, y);
            float *d = image_at(dst, ox + x, oy + y);
            for (int c = 0; c < 3; c++) d[c] = s[src->c >= 3 ? c : 0];
        }
}

/* The font's characters pass, anything else becomes a space; cut to what fits `width` px. */
static void caption(Image *im, int x, int y, const char *text, int width, const float rgb[3]) {
    char buf[256];
    size_t n = 0, max = (size_t)(width / 6);
    for (; text[n] && n < sizeof buf - 1 && n < max; n++) {
        char ch = text[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-+=.:/ ", ch);
        buf[n] = ok ? ch : ' ';
    }
    buf[n] = 0;
    draw_text_rgb(im, x, y, buf, 1, rgb);
}

/* Splits text at spaces into lines of at most max characters (a longer word is cut); up to nmax lines of
 * up to 255 characters each. Returns the number of lines. */
static int wrap_lines(const char *text, int max, char lines[][256], int nmax) {
    int n = 0;
    if (max > 255) max = 255;
    while (*text && n < nmax) {
        while (*text == ' ') text++;
        int len = (int)strlen(text);
        if (!len) break;
        int take = len <= max ? len : max;
        if (take < len) {   /* break at the last space that fits */
            int sp = take;
            while (sp > 0 && text[sp] != ' ') sp--;
            if (sp > 0) take = sp;
        }
        memcpy(lines[n], text, (size_t)take);
        lines[n++][take] = 0;
        text += take;
    }
    return n;
}

int compare_grid_write(const char *png_path, const CompareRow *rows, int n, int cell, const char *title) {
    int row_h = cell + 3 * LINE + 6 + MARGIN, width = 3 * cell + 4 * MARGIN;
    char tl[4][256];   /* the title, wrapped to the grid's width */
    int ntl = wrap_lines(title ? title : "", (width - 2 * MARGIN) / 6, tl, 4);
    int header = HEADER + (ntl > 1 ? (ntl - 1) * LINE : 0);
    Image im;
    if (image_alloc(&im, width, header + n * row_h + MARGIN, 3)) return -1;
    draw_fill(&im, 0, 0, im.w, im.h, background);
    for (int l = 0; l < ntl; l++) caption(&im, MARGIN, 6 + l * LINE, tl[l], im.w - 2 * MARGIN, accent);
    static const char *const heads[3] = {"DEGRADED INPUT", "RESTORED", "GROUND TRUTH"};
    for (int c = 0; c < 3; c++) caption(&im, MARGIN + c * (cell + MARGIN), header - 14, heads[c], cell, ink);
    for (int r = 0; r < n; r++) {
        int y = header + r * row_h;
        const Image *cells[3] = {&rows[r].lq, &rows[r].restored, &rows[r].gt};
        for (int c = 0; c < 3; c++) {
            int x = MARGIN + c * (cell + MARGIN);
            paste(&im, cells[c], x, y, cell);
            for (int l = 0; l < 3; l++)
                caption(&im, x, y + cell + 4 + l * LINE, rows[r].text[c][l], cell, c == 0 && l == 0 ? accent : ink);
        }
    }
    int rc = image_save(png_path, &im);
    image_free(&im);
    return rc;
}
