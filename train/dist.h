#ifndef DACLIP_TRAIN_DIST_H
#define DACLIP_TRAIN_DIST_H
/* The MPI wrapper of data-parallel training (docs/distributed.md). Every MPI call of the project is in
 * train/dist.c; built without MPI (make MPI=0, or no mpicc) the same functions are those of a job of one
 * rank, so callers have no #ifdef.
 *
 * MPI is started only when the process was launched by mpirun/mpiexec (OMPI_COMM_WORLD_SIZE, PMI_SIZE or
 * PMIX_RANK in the environment): a plain `daclip train-ir ...` never touches MPI. A failed collective (a peer
 * died, a link broke) is reported naming this rank and ends the whole job through MPI_Abort, never a hang;
 * a rank that is killed is reported by mpirun itself, which then stops the others. */
#include <stdbool.h>
#include <stdint.h>

/* Starts MPI when launched by mpirun (MPI_THREAD_FUNNELED: only the main thread communicates). When neither
 * DACLIP_THREADS nor OMP_NUM_THREADS is set, it sets DACLIP_THREADS to this rank's share of its machine's
 * cores, for t_init (call it before). 0, or -1 after printing why (e.g. a build without MPI launched as
 * several ranks). */
int dist_init(void);
/* true when this build has MPI (DACLIP_MPI). */
bool dist_built_with_mpi(void);
int dist_rank(void);
int dist_size(void);
static inline bool dist_is_root(void) { return dist_rank() == 0; }
/* Ends a command: rc == 0 finalizes MPI; rc != 0 in a job of several ranks aborts every rank (the others may
 * be waiting in a collective), naming this one. Returns rc (single process, or after a clean finalize). */
int dist_finish(const char *cmd, int rc);

/* The rows [lo, hi) of n that rank r owns: contiguous slices in rank order, sizes differing by at most one,
 * so concatenating the ranks' slices gives rows 0..n-1 in order. */
void dist_shard_of(int64_t n, int r, int64_t *lo, int64_t *hi);
static inline void dist_shard(int64_t n, int64_t *lo, int64_t *hi) { dist_shard_of(n, dist_rank(), lo, hi); }
/* rows_of[r] = the number of rows of n that rank r owns, for every rank (dist_size() entries). */
void dist_shard_sizes(int64_t n, int64_t *rows_of);

/* Collectives over every rank (no-ops with one rank). A failure aborts the job with a message naming this
 * rank and `what`. */
void dist_sum_f32(float *buf, int64_t n, const char *what);
void dist_sum_f64(double *buf, int n, const char *what);
void dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max, const char *what);
/* Concatenates each rank's `rows` rows of `cols` floats (rank order; rows_of[r] = rank r's count, the
 * same array on every rank) into all. */
void dist_gather_rows_f32(const float *mine, const int64_t *rows_of, int64_t cols, float *all, const char *what);

/* Waits until every rank is here (MPI_Barrier), timed apart: before the gradient sum it separates the wait
 * for the slowest rank (load imbalance) from the reduction's own cost. */
void dist_wait_all(const char *what);
/* Wall time since the start spent in dist_sum_f32 (the gradient reduction) and in dist_wait_all. */
double dist_reduce_seconds(void);
double dist_wait_seconds(void);

#endif
