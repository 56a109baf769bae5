/* Packed single-precision GEMM with an 8×48 micro-kernel (Goto/BLIS structure): the driver. The leaves
 * (packing, micro-kernel) exist for AVX-512F (gemm_avx512.c) and AVX2 + FMA (gemm_avx2.c), picked once per
 * process by CPU (tensor/gemm_kernels.h).
 *
 * Why our own: on the AVX-512 machines of this project (2 cores, two FMA ports) the FMA peak is ≈335
 * GFLOP/s, and OpenBLAS 0.3.21's SkylakeX sgemm reaches ≈200-280 at the ViT and convolution shapes this
 * project runs; and only our driver reads convolution windows in place (t_sgemm_shifted) and hands C over
 * in chunks (t_sgemm_shifted_settle).
 *
 * Structure. Each thread owns a contiguous range of 48-column panels of C; for each NC-wide slice of it
 * and each K-block it packs that slice of op(B) (KC × NC ≤ 2.3 MB; in practice a chunk of a few panels,
 * L2-resident) and sweeps the 8-row panels of op(A) against it. Untransposed op(A) is read in place when
 * alpha is 1 (8 rows × KC ≤ 24 KB
 * stay in L1 across the sweep, so packing would only add a pass over it); otherwise it is packed once,
 * scaled, shared by all threads (one barrier). A transposed A is always packed: read in place, its 8-float
 * slivers sit lda apart, and with lda a multiple of 1 KB (768, 3072) they all fall in one L1 set.
 * Every element of C is summed in the same order (k ascending within a block, blocks in order) whatever
 * the thread count. That holds only when our kernels run: products under MIN_FLOPS (BLAS_SERIAL_FLOPS on
 * AVX2, where OpenBLAS then runs single-threaded), CPUs without AVX2 + FMA, DACLIP_GEMM=blas, a busy lock
 * or slot (run_ours) and failed scratch allocation go to OpenBLAS, whose sums can change with the thread
 * count (docs/architecture.md, Threads). A settle callback (t_sgemm_shifted_settle) takes C chunk by chunk
 * from a thread's [M][NC] scratch instead of C being stored. */
#include "tensor/gemm.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm_kernels.h"
#include "tensor/gemm_prepacked.h"
#include "tensor/tensor.h"

#if defined(__x86_64__)
#define GEMM_HAVE_KERNELS 1
#else
#define GEMM_HAVE_KERNELS 0
#endif

#define KC 768                      /* largest K-block of a dense op(B); a product's blocks are K split evenly */
#define KC_SHIFTED 512              /* ... of shifted windows (convolutions) */
/* ... of windows read in place by the AVX2 kernel: a quarter's 24 columns of 128 unaligned window rows
 * (≈ 2 lines each, 16 KB) stay in Zen 3's 32 KB L1 for the tile's second row quarter. Three alternating
 * runs of bench_unet_convs (2 threads): 128→64 at 256² 61–66 vs 66–78 ms at 512, upsample+3×3 128→64
 * 28.6–29.2 vs 33.1–36.2 ms, 64→64 within the noise, 128 to 512 channels (windows packed) unaffected */
#define KC_IN_PLACE_AVX2 128
#define NC 768                      /* 16 panels of NR */
#define SHIFTED_PACK_M 128          /* shifted windows are packed (not read in place) from this many rows of C */
#define MIN_FLOPS (4.0 * 1024 * 1024) /* below this, cblas_sgemm's small-matrix path is as good */
/* OpenBLAS 0.3.21 threads a product above M·N·K = 65536 · 4 (interface/gemm.c). Its SkylakeX kernels give
 * the same sums whatever its split; its Haswell ones (AVX2 CPUs) do not (a 3-step restore differed between
 * 1 and 2 threads). So on AVX2 our kernel takes every product OpenBLAS would thread. */
#define BLAS_SERIAL_FLOPS (2.0 * 65536 * 4)
#define MAX_THREADS 256

static void blas_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

int64_t gemm_k_block_dense(int64_t K) {
    int64_t nb = (K + KC - 1) / KC;
    return (K + nb - 1) / nb;
}

void gemm_pack_weight(const GemmIsa *isa, const float *W, int64_t N, int64_t K, float *dst) {
    Gemm g = {.tb = true, .N = N, .K = K, .ldb = K, .B = W, .bmode = B_DENSE};
    for (int64_t k0 = 0, kb = gemm_k_block_dense(K); k0 < K; k0 += kb)
        isa->pack_b(&g, 0, N, k0, K - k0 < kb ? K - k0 : kb, dst + k0 * N);
}

#if GEMM_HAVE_KERNELS
static const GemmIsa *g_isa;   /* the leaves of this CPU (backend()) */

/* Scratch kept for the life of the process (reachable from globals, so leak checkers stay quiet). One
 * caller at a time uses it (g_lock); a concurrent caller falls back to BLAS. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static float *g_apack;
static size_t g_apack_cap;
static float *g_bpack[MAX_THREADS];
static float *g_cbuf[MAX_THREADS];   /* [M][NC] chunks of C for a settle callback */
static size_t g_cbuf_cap[MAX_THREADS];

static float *grow(float **buf, size_t *cap, size_t n) {
    if (n <= *cap) return *buf;
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0) return NULL;
    free(*buf);
    *buf = p;
    *cap = n;
    return *buf;
}


/* One 8×48 tile over K-block [k0, k0 + kc): A packed (apack) or in place (alpha 1), B packed (bpanel) or
 * shifted windows. */
static void tile(const Gemm *g, const float *apack, int64_t ip, int64_t k0, int64_t kc, const float *bpanel,
                        int64_t q, bool acc, bool first, float *cbase, int64_t ldc, int64_t qbase) {
    int mr = (int)(g->M - ip * MR < MR ? g->M - ip * MR : MR), nr = (int)(g->N - q * NR < NR ? g->N - q * NR : NR);
    float *c = cbase + ip * MR * ldc + (q - qbase) * NR;
    const float *brow = first && g->bias_row ? g->bias_row + ip * MR : NULL;
    const float *bcol = first && g->bias_col ? g->bias_col + q * NR : NULL;
    if (g->a_direct) {
        /* (i, k) of op(A) at A[i·lda + k], or A[k·lda + i] when transposed */
        const float *a = g->ta ? g->A + k0 * g->lda + ip * MR : g->A + ip * MR * g->lda + k0;
        int64_t ars = g->ta ? 1 : g->lda, astep = g->ta ? g->lda : 1;
        if (g->b_in_place)
            g_isa->kernel_ds(kc, a, ars, astep, g->src + q * NR, g->off + k0, c, ldc, mr, nr, acc, brow, bcol);
        else
            g_isa->kernel_dp(kc, a, ars, astep, bpanel, c, ldc, mr, nr, acc, brow, bcol);
    } else {
        const float *a = apack + ((g->M + MR - 1) / MR * MR) * k0 + ip * MR * kc;
        if (g->b_in_place)
            g_isa->kernel_ps(kc, a, g->src + q * NR, g->off + k0, c, ldc, mr, nr, acc, brow, bcol);
        else
            g_isa->kernel_pp(kc, a, bpanel, c, ldc, mr, nr, acc, brow, bcol);
    }
}

/* K is cut into ceil(K / KC) equal blocks: every block but the last pass over C costs a read and a write
 * of it (a 3072×768 weight gradient is 9 MB), so fewer, fuller blocks are better (K = 400: one block).
 * KC 768 rather than 512 keeps a ViT-B/32 linear layer (K = 768) in one block and cuts c_proj's K = 3072
 * from six to four: encode faster in 26 of 36 alternating rounds (three A/B runs, medians 1.08, 1.01,
 * 1.03), the training step in 12 of 16 (1.11, 1.03). The B block stays small enough for L2 because
 * column chunks are a few panels wide, and an in-place 8-row sliver of A is 24 KB, half of L1. Shifted
 * windows (convolutions) keep 512: not measured at 768. */
static int64_t k_block(const Gemm *g) {
    if (g->bmode == B_DENSE) return gemm_k_block_dense(g->K);
    static int64_t kip_env = -1;   /* DACLIP_KIP: the in-place K-block, for comparisons */
    if (kip_env < 0) { const char *e = getenv("DACLIP_KIP"); kip_env = e && atoll(e) > 0 ? atoll(e) : 0; }
    int64_t kip = kip_env ? kip_env : g_isa == &gemm_isa_avx2 ? KC_IN_PLACE_AVX2 : KC_SHIFTED;
    int64_t kc = g->b_in_place ? kip : KC_SHIFTED;
    int64_t nb = (g->K + kc - 1) / kc;
    return (g->K + nb - 1) / nb;
}

static int64_t k_len(const Gemm *g, int64_t k0) { return g->K - k0 < k_block(g) ? g->K - k0 : k_block(g); }

/* Work items [w0, w1) of packing op(A)·alpha whole: item w = (K-block, pair of 8-row panels). K-block
 * kb starts at Mp·k0 in apack, panel ip at + ip·8·kc. */
static void pack_a_items(const Gemm *g, float *apack, int64_t w0, int64_t w1) {
    const int64_t Mp = (g->M + MR - 1) / MR * MR, npm = Mp / MR, npairs = (npm + 1) / 2;
    for (int64_t w = w0; w < w1; w++) {
        int64_t kb = w / npairs, pr = w % npairs, k0 = kb * k_block(g);
        g_isa->pack_a16(g->ta, g->A, g->lda, g->M, pr * 16, k0, k_len(g, k0), g->alpha,
                 apack + Mp * k0 + pr * 2 * MR * k_len(g, k0), (2 * pr + 1 < npm) ? 2 : 1);
    }
}

static int64_t pack_a_count(const Gemm *g) {
    int64_t npm = (g->M + MR - 1) / MR;
    return (g->K + k_block(g) - 1) / k_block(g) * ((npm + 1) / 2);
}

/* Columns panels [p0, p1) of C from packed A, packing op(B) NC columns at a time into bp (B_SHIFTED
 * reads B in place instead). With a settle callback, each NC-wide chunk of C is made in cbuf [M][NC]
 * and handed over while it is still in L2, instead of being stored. */
static void compute_columns(const Gemm *g, const float *apack, float *bp, float *cbuf, int64_t p0, int64_t p1) {
    const int64_t M = g->M, N = g->N, ldc = g->ldc, npm = (M + MR - 1) / MR;
    if (p1 <= p0) return;
    if (g->beta != 0.0f && g->beta != 1.0f) {
        int64_t j0 = p0 * NR, j1 = p1 * NR < N ? p1 * NR : N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = j0; j < j1; j++) g->C[i * ldc + j] *= g->beta;
    }
    for (int64_t q0 = p0; q0 < p1; q0 += NC / NR) {
        int64_t q1 = q0 + NC / NR < p1 ? q0 + NC / NR : p1;
        int64_t j0 = q0 * NR, ncols = (q1 * NR < N ? q1 * NR : N) - j0;
        float *cb = g->settle ? cbuf : g->C;
        int64_t cld = g->settle ? NC : ldc, qb = g->settle ? q0 : 0;
        for (int64_t k0 = 0; k0 < g->K; k0 += k_block(g)) {
            int64_t kc = k_len(g, k0);
            bool first = k0 == 0, acc = !first || g->beta != 0.0f;
            if (g->b_in_place) {
                /* windows read in place: keep one 48-column panel of them in L1 across all of A's panels
                 * (the in-place reads are unaligned, each spanning two cache lines) */
                for (int64_t q = q0; q < q1; q++)
                    for (int64_t ip = 0; ip < npm; ip++) tile(g, apack, ip, k0, kc, NULL, q, acc, first, cb, cld, qb);
                continue;
            }
            const float *panels = bp;   /* of columns [j0, j0 + ncols), [kc][48] each */
            if (g->prepacked)
                panels = g->prepacked + k0 * g->prepacked_n + (g->prepacked_p0 + q0) * kc * NR;
            else
                g_isa->pack_b(g, j0, ncols, k0, kc, bp);
            for (int64_t ip = 0; ip < npm; ip++)
                for (int64_t q = q0; q < q1; q++)
                    tile(g, apack, ip, k0, kc, panels + (q - q0) * kc * NR, q, acc, first, cb, cld, qb);
        }
        if (g->settle) g->settle(g->settle_ctx, j0, ncols, cbuf, NC);
    }
}

/* All threads: A packed once and shared (one barrier), then each thread its own range of column panels. */
static void gemm_threaded(const Gemm *g, float *apack, int nthreads) {
    const int64_t npn = (g->N + NR - 1) / NR, items = pack_a_count(g);
#pragma omp parallel num_threads(nthreads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        if (!g->a_direct) {
#pragma omp for schedule(static)
            for (int64_t w = 0; w < items; w++) pack_a_items(g, apack, w, w + 1);
        }
        /* column chunks handed out dynamically: on a shared machine one thread can lose its core for a
         * while, and the other then takes over its share instead of waiting at the end. A packed A (e.g. a
         * weight gradient's dYᵀ, 3072×400) is streamed whole from L3 for every chunk, so its chunks are
         * larger: 1/(2T) of the panels rather than 1/(8T) (ViT dW 3072×768×400: ≈270 → ≈282 GFLOP/s) */
        int64_t div = g->a_direct ? 8 : 2;
        int64_t chunk = (npn + div * T - 1) / (div * T);
        if (chunk > NC / NR) chunk = NC / NR;
        if (chunk < 1) chunk = 1;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t p = 0; p < npn; p += chunk)
            compute_columns(g, apack, g_bpack[t], g_cbuf[t], p, p + chunk < npn ? p + chunk : npn);
    }
}

/* Scratch of the in-thread path (a call from inside a parallel region): one slot per team thread. */
static float *g_slot_a[MAX_THREADS], *g_slot_b[MAX_THREADS], *g_slot_c[MAX_THREADS];
static size_t g_slot_a_cap[MAX_THREADS], g_slot_c_cap[MAX_THREADS];
static atomic_flag g_slot_busy[MAX_THREADS];

/* Runs the product on the calling thread; false (nothing done) when its slot is busy or memory short. */
static bool gemm_in_thread(const Gemm *g) {
    int t = omp_get_thread_num();
    if (t < 0 || t >= MAX_THREADS || atomic_flag_test_and_set(&g_slot_busy[t])) return false;
    int64_t Mp = (g->M + MR - 1) / MR * MR;
    bool ok = g->a_direct || grow(&g_slot_a[t], &g_slot_a_cap[t], (size_t)(Mp * g->K)) != NULL;
    if (ok && !g_slot_b[t] && posix_memalign((void **)&g_slot_b[t], 64, (size_t)KC * NC * sizeof(float)) != 0) {
        g_slot_b[t] = NULL;
        ok = false;
    }
    if (ok && g->settle) ok = grow(&g_slot_c[t], &g_slot_c_cap[t], (size_t)(Mp * NC)) != NULL;
    if (ok) {
        if (!g->a_direct) pack_a_items(g, g_slot_a[t], 0, pack_a_count(g));
        compute_columns(g, g_slot_a[t], g_slot_b[t], g_slot_c[t], 0, (g->N + NR - 1) / NR);
    }
    atomic_flag_clear(&g_slot_busy[t]);
    return ok;
}

/* The scratch of the threaded path for nthreads threads, or false when memory is short. */
static bool scratch_ready(int64_t M, int64_t K, int nthreads, int64_t Mc) {
    int64_t Mp = (M + MR - 1) / MR * MR;
    if (Mp > 0 && !grow(&g_apack, &g_apack_cap, (size_t)(Mp * K))) return false;
    for (int t = 0; t < nthreads; t++) {
        if (!g_bpack[t] && posix_memalign((void **)&g_bpack[t], 64, (size_t)KC * NC * sizeof(float)) != 0) {
            g_bpack[t] = NULL;
            return false;
        }
        if (Mc > 0 && !grow(&g_cbuf[t], &g_cbuf_cap[t], (size_t)((Mc + MR - 1) / MR * MR * NC))) return false;
    }
    return true;
}
#endif /* GEMM_HAVE_KERNELS */

static int g_backend = -1; /* 1: ours (g_isa), 0: BLAS */
static bool g_pack_a_always; /* DACLIP_GEMM=packed: pack op(A) even when it could be read in place */

/* Our leaves by name, when this CPU can run them (NULL otherwise). */
static const GemmIsa *isa_named(const char *name) {
#if GEMM_HAVE_KERNELS
    __builtin_cpu_init();
    if (strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f")) return &gemm_isa_avx512;
    if (strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &gemm_isa_avx2;
#else
    (void)name;
#endif
    return NULL;
}

/* DACLIP_GEMM: blas (OpenBLAS for everything), avx2 (the AVX2 leaves even on an AVX-512 CPU), packed
 * (ours, op(A) always packed); unset: the best leaves this CPU has. */
static int backend(void) {
    if (g_backend < 0) {
        const char *e = getenv("DACLIP_GEMM");
        if (e && strcmp(e, "packed") == 0) g_pack_a_always = true;
        const GemmIsa *isa = e && strcmp(e, "blas") == 0 ? NULL
                          : e && strcmp(e, "avx2") == 0 ? isa_named("avx2")
                          : isa_named("avx512") ? isa_named("avx512") : isa_named("avx2");
#if GEMM_HAVE_KERNELS
        g_isa = isa;
#endif
        g_backend = isa != NULL;
    }
    return g_backend;
}

const char *t_sgemm_backend(void) {
#if GEMM_HAVE_KERNELS
    if (backend()) return g_isa->name;
#else
    (void)backend();
#endif
    return "blas";
}

const GemmIsa *gemm_isa_active(void) {
#if GEMM_HAVE_KERNELS
    return backend() ? g_isa : NULL;
#else
    (void)backend();
    return NULL;
#endif
}

bool t_sgemm_use(const char *name) {
    (void)backend();
    if (strcmp(name, "blas") == 0) {
        g_backend = 0;
        return true;
    }
    const GemmIsa *isa = isa_named(name);
    if (!isa) return false;
#if GEMM_HAVE_KERNELS
    g_isa = isa;
#endif
    g_backend = 1;
    return true;
}

/* C = beta·C + bias_row[i] + bias_col[j], the whole of the product when K or alpha is zero. */
static void scale_and_bias(int64_t M, int64_t N, float beta, float *C, int64_t ldc, const float *bias_row,
                           const float *bias_col) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float v = beta == 0.0f ? 0.0f : C[i * ldc + j] * beta;
            if (bias_row) v += bias_row[i];
            if (bias_col) v += bias_col[j];
            C[i * ldc + j] = v;
        }
}

#if GEMM_HAVE_KERNELS
/* Our kernel, threaded or on the calling thread; false when it cannot run (lock or slot busy, memory), and
 * the caller then uses OpenBLAS: a GEMM issued concurrently from a second non-OpenMP thread, or from two
 * teams with the same thread number, loses thread-count independence, at a timing-dependent moment. */
static bool run_ours(const Gemm *g) {
    if (omp_in_parallel()) return gemm_in_thread(g);
    if (pthread_mutex_trylock(&g_lock) != 0) return false;
    int nt = omp_get_max_threads();
    if (nt > MAX_THREADS) nt = MAX_THREADS;
    int64_t npn = (g->N + NR - 1) / NR;
    if (nt > npn) nt = (int)npn;
    bool ok = scratch_ready(g->a_direct ? 0 : g->M, g->K, nt, g->settle ? g->M : 0);
    if (ok) gemm_threaded(g, g_apack, nt);
    pthread_mutex_unlock(&g_lock);
    return ok;
}
#endif

#if GEMM_HAVE_KERNELS
static bool ours_take(int64_t M, int64_t N, int64_t K) {
    return backend() && 2.0 * M * N * K > (g_isa == &gemm_isa_avx2 ? BLAS_SERIAL_FLOPS : MIN_FLOPS);
}

static Gemm dense_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias_row,
                       const float *bias_col) {
    return (Gemm){.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha,
                  .beta = beta, .A = A, .B = B, .bias_row = bias_row, .bias_col = bias_col, .C = C, .bmode = B_DENSE,
                  .a_direct = alpha == 1.0f && !ta && !g_pack_a_always};
}

/* op(B) = Wᵀ read from W's packed panels as they are: rows [r0, r0 + N) of W, r0 a multiple of 48, all of K;
 * sets the panel of row r0. */
static bool packed_b_direct(const GemmPacked *e, bool tb, const float *B, int64_t ldb, int64_t N, int64_t K,
                            int64_t *p0) {
    int64_t off = B - e->base;
    if (!tb || e->isa != g_isa || ldb != e->K || K != e->K || off % e->K != 0) return false;
    int64_t r0 = off / e->K;
    if (r0 % NR != 0 || r0 + N > e->N) return false;
    *p0 = r0 / NR;
    return true;
}
#endif

/* The product when A, B or C lies in a buffer packed by t_sgemm_prepack; false (nothing done) when none
 * does. A packed B used as Wᵀ by the ISA that packed it goes to the kernels as it is; every other use runs
 * on a plain temporary copy; a packed C is unpacked for good, as it is about to be written. */
static bool sgemm_packed_operands(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                                  const float *bias_row, const float *bias_col) {
    GemmPacked ea, eb;
    if (!t_sgemm_unpack(C)) {
        t_error("sgemm", "out of memory unpacking a prepacked weight written as C");
        return true;
    }
    bool pa = gemm_packed_find(A, &ea), pb = gemm_packed_find(B, &eb);
    if (!pa && !pb) return false;
#if GEMM_HAVE_KERNELS
    int64_t p0;
    if (!pa && ours_take(M, N, K) && packed_b_direct(&eb, tb, B, ldb, N, K, &p0)) {
        Gemm g = dense_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias_row, bias_col);
        g.prepacked = eb.base;
        g.prepacked_n = eb.N;
        g.prepacked_p0 = p0;
        if (run_ours(&g)) return true;
    }
#endif
    float *plain_a = pa ? gemm_packed_unpacked_copy(&ea) : NULL;
    float *plain_b = !pb ? NULL : pa && eb.base == ea.base ? plain_a : gemm_packed_unpacked_copy(&eb);
    if ((pa && !plain_a) || (pb && !plain_b)) {
        t_error("sgemm", "out of memory for a plain copy of a prepacked weight (%lld x %lld)",
                (long long)(pa ? ea.N : eb.N), (long long)(pa ? ea.K : eb.K));
        for (int64_t i = 0; i < M; i++)   /* a product that did not happen must not pass for one */
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = NAN;
    } else {
        t_sgemm_bias(ta, tb, M, N, K, alpha, pa ? plain_a + (A - ea.base) : A, lda, pb ? plain_b + (B - eb.base) : B,
                     ldb, beta, C, ldc, bias_row, bias_col);
    }
    if (plain_b != plain_a) free(plain_b);
    free(plain_a);
    return true;
}

void t_sgemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const float *bias_row,
                  const float *bias_col) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        (void)t_sgemm_unpack(C);   /* C is written: if it was a packed weight, it is plain from now on */
        scale_and_bias(M, N, beta, C, ldc, bias_row, bias_col);
        return;
    }
    if (sgemm_packed_operands(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias_row, bias_col)) return;
#if GEMM_HAVE_KERNELS
    if (ours_take(M, N, K)) {
        Gemm g = dense_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias_row, bias_col);
        if (run_ours(&g)) return;
    }
#endif
    if (bias_row || bias_col) { /* BLAS: seed C with beta·C + bias, then accumulate */
        scale_and_bias(M, N, beta, C, ldc, bias_row, bias_col);
        beta = 1.0f;
    }
    blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#if GEMM_HAVE_KERNELS
/* How a shifted-window product reads its operands (g->bmode, M and alpha set).
 * Windows read in place suit few output channels (M < SHIFTED_PACK_M: A, packed, is small and the windows
 * are re-read from L1 for each of its 8-row panels); with more, A's panels and the windows no longer share
 * L1, so the windows are packed like dense B (aligned, L2-resident, a copy amortised over M/8 panels) and A
 * is read in place. U-Net convs at 256-512 channels: conv time / dense GEMM time 1.4-1.6 -> 1.2-1.4
 * (bench_unet_convs, three alternating runs). Windows in place sweep all of A for every 48-column panel
 * (see compute_columns): A must then be one contiguous L2 stream, i.e. packed. Windows as columns
 * (B_SHIFTED_T) are always packed, A then read in place when alpha is 1. */
static void choose_shifted_operands(Gemm *g) {
    g->b_in_place = g->bmode == B_SHIFTED && g->M < SHIFTED_PACK_M;
    g->a_direct = !g->b_in_place && g->alpha == 1.0f && !g_pack_a_always;
}
#endif

bool t_sgemm_shifted(bool windows_are_columns, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *src, const int64_t *off, float beta, float *C, int64_t ldc,
                     const float *bias_row) {
    if (M <= 0 || N <= 0) return true;
    /* convolution weights are never prepacked; should one be, it becomes plain for good */
    if (!t_sgemm_unpack((float *)A) || !t_sgemm_unpack(C)) return false;
    if (K <= 0 || alpha == 0.0f) {
        scale_and_bias(M, N, beta, C, ldc, bias_row, NULL);
        return true;
    }
#if GEMM_HAVE_KERNELS
    if (backend()) {
        Gemm g = {.M = M, .N = N, .K = K, .lda = lda, .ldc = ldc, .alpha = alpha, .beta = beta, .A = A,
                  .bias_row = bias_row, .C = C, .bmode = windows_are_columns ? B_SHIFTED_T : B_SHIFTED,
                  .src = src, .off = off};
        choose_shifted_operands(&g);
        if (run_ours(&g)) return true;
    }
#endif
    /* BLAS: materialise op(B) [K, N] */
    float *B = malloc(sizeof(float) * (size_t)K * (size_t)N);
    if (!B) return false;
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) B[k * N + j] = windows_are_columns ? src[off[j] + k] : src[off[k] + j];
    t_sgemm_bias(false, false, M, N, K, alpha, A, lda, B, N, beta, C, ldc, bias_row, NULL);
    free(B);
    return true;
}

bool t_sgemm_shifted_settle(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *src,
                            const int64_t *off, const float *bias_row, TGemmSettle settle, void *ctx) {
    if (M <= 0 || N <= 0) return true;
    if (!t_sgemm_unpack((float *)A)) return false;   /* as in t_sgemm_shifted */
#if GEMM_HAVE_KERNELS
    if (backend() && K > 0) {
        Gemm g = {.M = M, .N = N, .K = K, .lda = lda, .ldc = 0, .alpha = 1.0f, .beta = 0.0f, .A = A,
                  .bias_row = bias_row, .C = NULL, .bmode = B_SHIFTED, .src = src, .off = off,
                  .settle = settle, .settle_ctx = ctx};
        choose_shifted_operands(&g);
        if (run_ours(&g)) return true;
    }
#endif
    /* elsewhere: C made whole, then settled at once */
    float *C = malloc(sizeof(float) * (size_t)M * (size_t)N);
    if (!C) return false;
    bool ok = t_sgemm_shifted(false, M, N, K, 1.0f, A, lda, src, off, 0.0f, C, N, bias_row);
    if (ok) settle(ctx, 0, N, C, N);
    free(C);
    return ok;
}

void t_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    t_sgemm_bias(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, NULL);
}
