#ifndef DACLIP_TRAIN_SAMPLE_ORDER_H
#define DACLIP_TRAIN_SAMPLE_ORDER_H
/* The order in which training samples are drawn: epoch after epoch, each a permutation that is a pure function
 * of (seed, epoch), so a resumed run draws exactly the batches the uninterrupted run would have. */
#include <stdint.h>

typedef struct {
    int64_t n, epoch;
    uint64_t seed;
    int64_t *perm;
} SampleOrder;

/* 0, or -1 when out of memory. */
int sample_order_init(SampleOrder *o, int64_t n, uint64_t seed);
void sample_order_free(SampleOrder *o);
/* The sample drawn k-th since the start of training. */
int64_t sample_order_at(SampleOrder *o, int64_t k);
/* A well-mixed 64-bit hash (splitmix64), for seeds derived from (seed, step, index). */
uint64_t sample_mix64(uint64_t z);

#endif
