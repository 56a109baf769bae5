#ifndef DACLIP_DATA_FILE_IO_H
#define DACLIP_DATA_FILE_IO_H
/* Opening input files safely and writing output files atomically (used by data/ and by the CLI).
 *
 * Inputs: only regular files are read. A FIFO would block forever, /dev/zero or a terminal never end, a
 * folder fails late with a confusing message; they are refused up front, and a size cap keeps a text input
 * from eating all memory.
 *
 * Outputs: written to "<path>.tmp.<pid>.<random>" in the same folder and renamed over <path> only when every
 * write, the flush and the close have succeeded, so a full disk or a crash never leaves a half-written file
 * and never destroys the previous good one; on failure the temporary is removed. No fsync (thousands of
 * images per dataset): a power cut may lose the newest files, never expose partial ones under their names.
 * A target that exists and is not a regular file (/dev/stdout, /dev/full, a FIFO) is written directly.
 *
 * Errors: -1 / NULL with data_error() naming the file and the problem. */
#include <stdint.h>
#include <stdio.h>

/* Text inputs (CSV, captions) larger than this are refused: far above any real dataset's captions. */
#define DATA_MAX_TEXT_BYTES ((int64_t)256 << 20)

/* Opens path for reading ("rb") if it is a regular file of at most max_bytes (0 = no cap); *size (may be
 * NULL) gets its size. */
FILE *data_open_regular(const char *path, int64_t max_bytes, int64_t *size);

typedef struct {
    FILE *fp;            /* write here */
    char *path;          /* the final name */
    char *tmp;           /* the temporary name, NULL when writing directly (not a regular file) */
} DataOutFile;

/* Starts writing path. */
int data_out_open(DataOutFile *o, const char *path);
/* Checks that everything was written, closes, and renames the temporary over path. On any failure the
 * temporary is removed, path is untouched, and -1 is returned. Frees o either way. */
int data_out_commit(DataOutFile *o);
/* Gives up: closes and removes the temporary (path untouched). Safe on a zeroed or committed o. */
void data_out_abort(DataOutFile *o);

#endif
