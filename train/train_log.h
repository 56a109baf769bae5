#ifndef DACLIP_TRAIN_TRAIN_LOG_H
#define DACLIP_TRAIN_TRAIN_LOG_H
/* The per-step CSV log of a training run (step in the first column). A resumed run continues the log of the
 * checkpoint it resumes: rows written after that checkpoint (by a run that was then interrupted) are cut, so
 * no step appears twice. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Fresh: creates the file with `header`. Resume: keeps the header and the rows with step <= `step` (rewritten
 * atomically), then appends. NULL with a message naming the file in *err. */
FILE *train_log_open(const char *path, const char *header, bool resume, int64_t step, char *err, size_t errlen);
/* Flushes and closes; -1 (message in *err) if anything written was lost (full disk). */
int train_log_close(FILE *f, const char *path, char *err, size_t errlen);

#endif
