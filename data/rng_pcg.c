#include "data/rng_pcg.h"
#include <math.h>

uint64_t pcg_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void pcg_seed(Pcg32 *r, uint64_t seed, uint64_t stream) {
    uint64_t s = seed ^ (stream * 0xD1B54A32D192ED03ull);
    r->state = 0;
    r->inc = (pcg_splitmix64(&s) << 1) | 1u;
    pcg_u32(r);
    r->state += pcg_splitmix64(&s);
    pcg_u32(r);
}

uint32_t pcg_u32(Pcg32 *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ull + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

float pcg_uniform(Pcg32 *r) { return (float)(pcg_u32(r) >> 8) * (1.0f / 16777216.0f); }

float pcg_range(Pcg32 *r, float lo, float hi) { return lo + (hi - lo) * pcg_uniform(r); }

uint32_t pcg_below(Pcg32 *r, uint32_t n) {
    uint64_t m = (uint64_t)pcg_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)pcg_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float pcg_normal(Pcg32 *r) {
    /* Box–Muller without a cached spare: the stream position then depends only on the number of calls,
     * which keeps callers that interleave uniforms and normals simple to reason about. */
    float u1 = ((float)(pcg_u32(r) >> 8) + 0.5f) * (1.0f / 16777216.0f);   /* (0,1): log is finite */
    float u2 = pcg_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}
