#ifndef DACLIP_TRAIN_DIST_TRAIN_H
#define DACLIP_TRAIN_DIST_TRAIN_H
/* What the data-parallel training loops do with train/dist.h (docs/distributed.md): sum the ranks' gradients,
 * gather the rows of a contrastive batch, and check that the ranks hold the same weights. With one rank every
 * function is a no-op (or returns its input), so the single-process loop runs unchanged. */
#include <stdint.h>

#include "nn/module.h"
#include "tensor/tensor.h"

/* Gradients are summed in buckets of at most this many floats (one MPI_Allreduce each): a bounded copy
 * buffer, and few enough calls that the per-call latency does not matter. */
#define DIST_BUCKET_FLOATS ((int64_t)1 << 22)

/* Sums the gradient of every trainable parameter over the ranks (each rank's gradient is its share of the
 * global batch's, already weighted: see the loops). The `replicated` parameters are those whose gradient every
 * rank computed in full — the contrastive temperature, since every rank evaluates the whole loss — and count
 * once (rank 0's). */
void dist_sum_grads(ParamSet *ps, Tensor *const *replicated, int n_replicated);

/* x: this rank's rows [lo, hi) of a batch of `total` rows (dist_shard), shape [hi - lo, ...]. Returns the
 * whole batch [total, ...] in row order; only this rank's rows are on the tape (the others arrive as
 * constants). A loss that every rank computes in full from it then gives each rank exactly the gradient of the
 * single-process loss with respect to its own rows, and summing over ranks (dist_sum_grads) gives the full
 * gradient (open_clip's gather without gradient, with the sum in place of DDP's mean). One rank: x. */
Tensor *dist_gather_rows(Tensor *x, int64_t total, const char *what);

/* Rank 0, several ranks, steps > 0: prints the gradient reduction's cost per step and its share of
 * step_seconds (the training loop's wall time over those steps; 0 if unknown). */
void dist_report(const char *cmd, int64_t steps, double step_seconds);

/* 0 when every rank holds the same weights and step (compared through a hash), else -1 after printing it. */
int dist_check_in_sync(const ParamSet *ps, int64_t step, const char *cmd);

#endif
