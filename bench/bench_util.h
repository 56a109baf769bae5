#ifndef DACLIP_BENCH_UTIL_H
#define DACLIP_BENCH_UTIL_H
/* Shared by the benchmarks: a monotonic clock and the comparator for sorting times (medians). */
#include <time.h>

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
