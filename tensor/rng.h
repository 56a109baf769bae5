#ifndef DACLIP_TENSOR_RNG_H
#define DACLIP_TENSOR_RNG_H
/* Philox4x32-10, counter-based: the state is (key, counter), explicit and savable, so a checkpoint
 * can store it and a resumed run draws the same numbers. Block i of the stream is
 * philox4x32_10(counter = {i lo, i hi, 0, 0}, key = {seed lo, seed hi}); words are used in order. */
#include <stdint.h>

#include "tensor/tensor.h"

typedef struct {
    uint64_t key;        /* the seed */
    uint64_t counter;    /* blocks of 4 x u32 consumed */
    uint32_t buf[4];
    int buf_pos;         /* next unused word in buf (4 = empty) */
} TRng;

/* The raw bijection (Random123 naming: counter words c0..c3, key words k0, k1). */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void rng_seed(TRng *r, uint64_t seed);
uint32_t rng_u32(TRng *r);
float rng_uniform(TRng *r);                 /* [0, 1), 24 random bits */
float rng_normal(TRng *r);                  /* N(0, 1), Box-Muller (cos branch; 2 words per draw) */
/* Fills; the tensor must be contiguous. Same seed -> same tensor. With r NULL nothing is drawn and t keeps
 * its values: a model built only to be loaded (every parameter overwritten) passes NULL to its init, which
 * skips a random start that costs seconds for the official models. */
void t_fill_uniform(Tensor *t, TRng *r, float lo, float hi);
void t_fill_normal(Tensor *t, TRng *r, float mean, float std);
/* Serialised state: 4 u64 words (key, counter, buf position, 0 reserved) for checkpoints. The buffered
 * words need not be stored: they are block counter-1 and are recomputed on load. */
void rng_state_save(const TRng *r, uint64_t out[4]);
void rng_state_load(TRng *r, const uint64_t in[4]);

#endif
