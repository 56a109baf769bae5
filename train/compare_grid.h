#ifndef DACLIP_TRAIN_COMPARE_GRID_H
#define DACLIP_TRAIN_COMPARE_GRID_H
/* The comparison picture of `daclip eval-ir`: one row per image, three cells (degraded input | restored |
 * ground truth), each image scaled to fit a cell, three lines of text under each cell (the 5x7 font: letters,
 * digits and - + = . : / only; other characters are drawn as spaces). */
#include "data/image.h"

#define COMPARE_GRID_CELL 192   /* px: thumbnails fit in a cell x cell square */

typedef struct {
    Image lq, restored, gt;     /* thumbnails (compare_grid_thumbnail), owned by the row */
    char text[3][3][48];        /* [column][line] captions */
} CompareRow;

/* A copy of src scaled (area filter when shrinking, never enlarged) to fit cell x cell. 0 or -1 (data_error). */
int compare_grid_thumbnail(const Image *src, int cell, Image *dst);
/* Frees the row's thumbnails. */
void compare_row_free(CompareRow *r);
/* Writes the rows as a PNG with a column header and a title line. 0, or -1 (data_error). */
int compare_grid_write(const char *png_path, const CompareRow *rows, int n, int cell, const char *title);

#endif
