#ifndef DACLIP_TENSOR_ATTENTION_CHUNKED_H
#define DACLIP_TENSOR_ATTENTION_CHUNKED_H
/* Attention in blocks (flash-style online softmax): the same softmax(scale · q kᵀ) v as t_attention (no
 * mask), but the [Lq, Lk] probability matrix is never built. Queries are taken block_q rows at a time; for
 * each key block the scores are computed, the running row maximum and row sum are updated and the output
 * rows rescaled, so a thread needs block_q·block_k + block_q·Dv floats whatever Lq and Lk are. The U-Net's
 * self-attention at H/8 has (HW/64)² scores per head: 1 GB per head at 1024², 35 GB at 4000×3000.
 *
 * q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] (views are copied to contiguous) -> [B, H, Lq, Dv].
 * One tape node. The forward saves only the output and each row's log-sum-exp; the backward recomputes the
 * probabilities block by block (a dQ pass over query blocks and a dK/dV pass over key blocks, so every
 * gradient element is written by one thread in a fixed order: results do not depend on the thread count). */
#include <stdint.h>

#include "tensor/tensor.h"

#define T_ATTN_BLOCK_Q 128
#define T_ATTN_BLOCK_K 256

/* block_q, block_k <= 0 mean T_ATTN_BLOCK_Q / T_ATTN_BLOCK_K. NULL with t_error() on a shape mismatch. */
Tensor *t_attention_chunked(Tensor *q, Tensor *k, Tensor *v, float scale, int block_q, int block_k);

/* The attention a module should call when it has no mask: t_attention when a tape will record the op
 * (training keeps the saved probabilities its backward is fast with) or when Lq·Lk is below the chunking
 * threshold, t_attention_chunked otherwise (no-grad inference on large images). */
Tensor *t_attention_auto(Tensor *q, Tensor *k, Tensor *v, float scale);
/* The threshold on Lq·Lk (default T_ATTN_CHUNK_MIN: 4M scores, 16 MB per thread); tests lower it. Returns
 * the previous value. */
#define T_ATTN_CHUNK_MIN ((int64_t)1 << 22)
int64_t t_attention_set_chunk_min(int64_t lq_times_lk);

#endif
