#include "train/progress.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    int64_t t = (int64_t)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", (int)(t / 3600), (int)(t / 60 % 60), (int)(t % 60));
    else snprintf(buf, n, "%02d:%02d", (int)(t / 60), (int)(t % 60));
}

double progress_rate(const Progress *p, double now) {
    double el = now - p->t_start;
    return el > 0 ? (double)(p->done - p->start) / el : 0;
}

static void draw(Progress *p, int final) {
    double now = progress_now(), el = now - p->t_start;
    double rate = progress_rate(p, now);
    char eta[32], ela[32];
    fmt_time(ela, sizeof ela, el);
    fmt_time(eta, sizeof eta, rate > 0 ? (double)(p->total - p->done) / rate : -1);
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    if (p->is_tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %lld/%lld %5.1f%% %.2f %s/s %s<%s %s\033[K", p->label, bar,
                (long long)p->done, (long long)p->total, 100 * frac, rate, p->unit, ela, eta, p->extra);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s %lld/%lld %.1f%% %.2f %s/s elapsed %s eta %s %s\n", p->label, (long long)p->done,
                (long long)p->total, 100 * frac, rate, p->unit, ela, eta, p->extra);
    }
    fflush(stderr);
    p->t_last_draw = now;
}

void progress_begin_at(Progress *p, const char *label, int64_t total, const char *unit, int64_t start) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->start = p->done = start;
    p->t_start = progress_now();
    p->is_tty = isatty(2);
}

void progress_begin(Progress *p, const char *label, int64_t total, const char *unit) {
    progress_begin_at(p, label, total, unit, 0);
}

void progress_update(Progress *p, int64_t done, const char *extra_fmt, ...) {
    p->done = done;
    if (extra_fmt) {
        va_list ap;
        va_start(ap, extra_fmt);
        vsnprintf(p->extra, sizeof p->extra, extra_fmt, ap);
        va_end(ap);
    }
    double now = progress_now();
    if (now - p->t_last_draw >= (p->is_tty ? 0.1 : 5.0)) draw(p, 0);
}

void progress_end(Progress *p) { draw(p, 1); }
