/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): ten rounds of
 * two 32x32->64 multiplies per block, key bumped by the Weyl constants between rounds. */
#include "tensor/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0, k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void rng_block(const TRng *r, uint64_t block, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)r->key, (uint32_t)(r->key >> 32)};
    philox4x32_10(ctr, key, out);
}

void rng_seed(TRng *r, uint64_t seed) {
    r->key = seed;
    r->counter = 0;
    r->buf[0] = r->buf[1] = r->buf[2] = r->buf[3] = 0;
    r->buf_pos = 4;
}

uint32_t rng_u32(TRng *r) {
    if (r->buf_pos >= 4) {
        rng_block(r, r->counter++, r->buf);
        r->buf_pos = 0;
    }
    return r->buf[r->buf_pos++];
}

float rng_uniform(TRng *r) { return (float)(rng_u32(r) >> 8) * 0x1p-24f; }

float rng_normal(TRng *r) {
    /* u1 in (0, 1] keeps log finite; double precision so the tails are not quantised by float log */
    double u1 = ((double)(rng_u32(r) >> 8) + 1.0) * 0x1p-24;
    double u2 = (double)(rng_u32(r) >> 8) * 0x1p-24;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void t_fill_uniform(Tensor *t, TRng *r, float lo, float hi) {
    if (!r) return;
    int64_t n = t_numel(t);
    for (int64_t i = 0; i < n; i++) t->data[i] = lo + (hi - lo) * rng_uniform(r);
}

void t_fill_normal(Tensor *t, TRng *r, float mean, float std) {
    if (!r) return;
    int64_t n = t_numel(t);
    for (int64_t i = 0; i < n; i++) t->data[i] = mean + std * rng_normal(r);
}

void rng_state_save(const TRng *r, uint64_t out[4]) {
    out[0] = r->key;
    out[1] = r->counter;
    out[2] = (uint64_t)r->buf_pos;
    out[3] = 0;
}

void rng_state_load(TRng *r, const uint64_t in[4]) {
    r->key = in[0];
    r->counter = in[1];
    r->buf_pos = in[2] < 4 && in[1] > 0 ? (int)in[2] : 4;
    if (r->buf_pos < 4) rng_block(r, r->counter - 1, r->buf);
}
