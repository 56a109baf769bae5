#include "train/dist.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef DACLIP_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static double g_reduce_s = 0, g_wait_s = 0;

/* The world size mpirun/mpiexec announces (OpenMPI, MPICH/Hydra, PMIx launchers), 0 when not launched by one. */
static int launcher_size(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v) > 0 ? atoi(v) : 1;
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

int dist_rank(void) { return g_rank; }
#ifdef DACLIP_MPI
bool dist_built_with_mpi(void) { return true; }
#else
bool dist_built_with_mpi(void) { return false; }
#endif
int dist_size(void) { return g_size; }
double dist_reduce_seconds(void) { return g_reduce_s; }
double dist_wait_seconds(void) { return g_wait_s; }

void dist_shard_of(int64_t n, int r, int64_t *lo, int64_t *hi) {
    *lo = n * r / g_size;
    *hi = n * (r + 1) / g_size;
}

void dist_shard_sizes(int64_t n, int64_t *rows_of) {
    for (int r = 0; r < g_size; r++) {
        int64_t lo, hi;
        dist_shard_of(n, r, &lo, &hi);
        rows_of[r] = hi - lo;
    }
}

#ifdef DACLIP_MPI

static bool g_mpi = false;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A failed collective leaves the others blocked in it: report and end the whole job. */
static void check(int rc, const char *call, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fprintf(stderr, "\ndaclip: rank %d of %d: %s (%s) failed: %s; another rank has probably died. Stopping the job\n",
            g_rank, g_size, call, what, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

int dist_init(void) {
    int announced = launcher_size();
    if (announced == 0 || g_mpi) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "daclip: MPI_Init failed\n");
        return -1;
    }
    g_mpi = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* Without a thread count, t_init would give every rank all the cores it can see: ranks sharing a machine
     * would oversubscribe it. Default: this rank's cores (its affinity mask, which mpirun's binding sets),
     * shared out among the ranks on the machine. */
    MPI_Comm local;
    int local_size = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &local_size);
        MPI_Comm_free(&local);
    }
    const char *t = getenv("DACLIP_THREADS"), *o = getenv("OMP_NUM_THREADS");
    cpu_set_t cpus;
    if ((!t || !*t) && (!o || !*o) && sched_getaffinity(0, sizeof cpus, &cpus) == 0) {
        int mine = CPU_COUNT(&cpus), online = (int)sysconf(_SC_NPROCESSORS_ONLN) / (local_size > 0 ? local_size : 1);
        char n[16];
        snprintf(n, sizeof n, "%d", mine < online ? mine : online > 0 ? online : 1);
        setenv("DACLIP_THREADS", n, 1);
    }
    return 0;
}

int dist_finish(const char *cmd, int rc) {
    if (!g_mpi) return rc;
    if (rc != 0 && g_size > 1) {
        fprintf(stderr, "daclip %s: rank %d of %d stopped with an error (above); aborting the job\n", cmd, g_rank, g_size);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
        _exit(rc);
    }
    MPI_Finalize();
    g_mpi = false;
    g_rank = 0, g_size = 1;
    return rc;
}

void dist_sum_f32(float *buf, int64_t n, const char *what) {
    if (g_size == 1) return;
    double t0 = now();
    for (int64_t off = 0; off < n; off += INT_MAX / 2) {   /* MPI counts are int */
        int k = (int)(n - off < INT_MAX / 2 ? n - off : INT_MAX / 2);
        check(MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce", what);
    }
    g_reduce_s += now() - t0;
}

void dist_wait_all(const char *what) {
    if (g_size == 1) return;
    double t0 = now();
    check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier", what);
    g_wait_s += now() - t0;
}

void dist_sum_f64(double *buf, int n, const char *what) {
    if (g_size == 1) return;
    check(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce", what);
}

void dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max, const char *what) {
    *min = *max = v;
    if (g_size == 1) return;
    check(MPI_Allreduce(&v, min, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce", what);
    check(MPI_Allreduce(&v, max, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce", what);
}

void dist_gather_rows_f32(const float *mine, const int64_t *rows_of, int64_t cols, float *all, const char *what) {
    if (g_size == 1) {
        if (all != mine) memcpy(all, mine, sizeof(float) * (size_t)(rows_of[0] * cols));
        return;
    }
    int *counts = malloc(sizeof(int) * (size_t)g_size), *displs = malloc(sizeof(int) * (size_t)g_size);
    if (!counts || !displs) {
        fprintf(stderr, "daclip: rank %d: out of memory in %s\n", g_rank, what);
        MPI_Abort(MPI_COMM_WORLD, 1);
        _exit(1);
    }
    int64_t off = 0;
    for (int r = 0; r < g_size; r++) {
        if (off + rows_of[r] * cols > INT_MAX) {
            fprintf(stderr, "daclip: rank %d: %s: more than %d floats to gather\n", g_rank, what, INT_MAX);
            MPI_Abort(MPI_COMM_WORLD, 1);
            _exit(1);
        }
        counts[r] = (int)(rows_of[r] * cols), displs[r] = (int)off;
        off += rows_of[r] * cols;
    }
    check(MPI_Allgatherv(mine, counts[g_rank], MPI_FLOAT, all, counts, displs, MPI_FLOAT, MPI_COMM_WORLD),
          "MPI_Allgatherv", what);
    free(counts);
    free(displs);
}

#else /* built without MPI: a job of one rank */

int dist_init(void) {
    int announced = launcher_size();
    if (announced > 1) {
        fprintf(stderr, "daclip: launched as %d ranks, but this build has no MPI (make MPI=0, or no mpicc when it was "
                "built): every rank would train alone. Install libopenmpi-dev and rebuild.\n", announced);
        return -1;
    }
    return 0;
}

int dist_finish(const char *cmd, int rc) {
    (void)cmd;
    return rc;
}

void dist_sum_f32(float *buf, int64_t n, const char *what) { (void)buf, (void)n, (void)what; }
void dist_wait_all(const char *what) { (void)what; }
void dist_sum_f64(double *buf, int n, const char *what) { (void)buf, (void)n, (void)what; }

void dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max, const char *what) {
    (void)what;
    *min = *max = v;
}

void dist_gather_rows_f32(const float *mine, const int64_t *rows_of, int64_t cols, float *all, const char *what) {
    (void)what;
    if (all != mine) memcpy(all, mine, sizeof(float) * (size_t)(rows_of[0] * cols));
}

#endif
