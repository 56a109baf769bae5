#ifndef DACLIP_PROGRESS_H
#define DACLIP_PROGRESS_H
/* A terminal progress bar with rate and ETA, redrawn at most ~10 times a second on stderr.
 * On a non-terminal stderr it prints a plain line every few seconds instead. */
#include <stdint.h>

typedef struct {
    const char *label;
    const char *unit;       /* "img", "step", ... */
    int64_t total, done;
    int64_t start;          /* done when the bar began (a resumed run): the rate counts from here */
    double t_start, t_last_draw;
    char extra[128];        /* caller text, e.g. "loss 0.4312" */
    int is_tty;
} Progress;

void progress_begin(Progress *p, const char *label, int64_t total, const char *unit);
/* A bar that starts at `start` of `total` (a resumed run): rate and ETA count only the work done since. */
void progress_begin_at(Progress *p, const char *label, int64_t total, const char *unit, int64_t start);
/* Work per second since the bar began; 0 before any time has passed. */
double progress_rate(const Progress *p, double now);
void progress_update(Progress *p, int64_t done, const char *extra_fmt, ...);
void progress_end(Progress *p);
double progress_now(void);  /* monotonic seconds */

#endif
