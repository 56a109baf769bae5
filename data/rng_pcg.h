#ifndef DACLIP_DATA_RNG_PCG_H
#define DACLIP_DATA_RNG_PCG_H
/* A small deterministic RNG for data/: PCG32 (O'Neill, XSH-RR output of a 64-bit LCG), seeded through
 * splitmix64 so that nearby seeds (0, 1, 2, ...) give unrelated streams. Same seed -> same numbers on every
 * platform for the integer and uniform outputs; pcg_normal goes through logf/cosf, so its last bit may differ
 * between C libraries. */
#include <stdint.h>

typedef struct {
    uint64_t state, inc;   /* inc is odd: it selects one of 2^63 streams */
} Pcg32;

/* splitmix64 step: advances *x and returns a well-mixed 64-bit value (also useful to derive sub-seeds). */
uint64_t pcg_splitmix64(uint64_t *x);
/* Seeds from (seed, stream); different streams of one seed are independent. */
void     pcg_seed(Pcg32 *r, uint64_t seed, uint64_t stream);
uint32_t pcg_u32(Pcg32 *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
float    pcg_uniform(Pcg32 *r);
/* Uniform in [lo, hi). */
float    pcg_range(Pcg32 *r, float lo, float hi);
/* Uniform integer in [0, n), unbiased (Lemire's rejection); n > 0. */
uint32_t pcg_below(Pcg32 *r, uint32_t n);
/* Standard normal N(0,1) (Box–Muller, two uniforms per call, no cached state). */
float    pcg_normal(Pcg32 *r);

#endif
