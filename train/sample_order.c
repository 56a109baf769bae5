#include "train/sample_order.h"

#include <stdlib.h>

uint64_t sample_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int sample_order_init(SampleOrder *o, int64_t n, uint64_t seed) {
    o->n = n;
    o->epoch = -1;
    o->seed = seed;
    o->perm = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    return o->perm ? 0 : -1;
}

void sample_order_free(SampleOrder *o) {
    free(o->perm);
    o->perm = NULL;
}

int64_t sample_order_at(SampleOrder *o, int64_t k) {
    int64_t epoch = k / o->n;
    if (epoch != o->epoch) {
        for (int64_t i = 0; i < o->n; i++) o->perm[i] = i;
        uint64_t s = sample_mix64(o->seed * 1000003u + (uint64_t)epoch);
        for (int64_t i = o->n - 1; i > 0; i--) {   /* Fisher-Yates */
            s = sample_mix64(s);
            int64_t j = (int64_t)(s % (uint64_t)(i + 1));
            int64_t t = o->perm[i];
            o->perm[i] = o->perm[j];
            o->perm[j] = t;
        }
        o->epoch = epoch;
    }
    return o->perm[k % o->n];
}
