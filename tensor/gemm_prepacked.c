/* Weights packed once, in place, for the GEMM kernels (tensor/gemm.h: t_sgemm_prepack).
 *
 * Why: an inference product y = x·Wᵀ repacks the whole of W into 48-column panels on every call (pack_b),
 * although W never changes. In ViT-B/32 encode with control that repacking took 4 % of the time (two towers,
 * 170 M weights read transposed and written per batch). A prepacked W is stored in exactly the layout
 * pack_b would make, so the kernels read it as they read their own packing and every sum is unchanged.
 *
 * Layout of a packed W [N][K] (N a multiple of 48): K is cut into the driver's K-blocks (gemm_k_block_dense);
 * block [k0, k0 + kc) starts at k0·N, and within it 48-row panel p of W (= 48 columns of op(B)) is the kc·48
 * floats at p·kc·48, laid out as the ISA's pack_b lays out a panel (sub-panels of `b_sub` columns,
 * gemm_kernels.h). The size is W's own: packing happens in place, so memory does not grow.
 *
 * The registry maps each packed buffer to its shape and the ISA that packed it. t_sgemm consults it for
 * every operand: a packed B read as op(B) = Wᵀ (rows of W from a multiple of 48, all of K) by the ISA that
 * packed it skips pack_b; any other use (BLAS, another ISA, W untransposed, as A) runs on an unpacked
 * temporary copy; a packed buffer written as C is unpacked for good first. A freed tensor is forgotten
 * (t_free) before its memory can be reused. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tensor/gemm_prepacked.h"
#include "tensor/tensor.h"

typedef struct {
    const float *base;
    int64_t N, K;
    const GemmIsa *isa;
} Packed;

static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static Packed *g_list;
static int64_t g_len, g_cap;
static atomic_int_fast64_t g_count;   /* g_len, read without the lock: most products meet no packed buffer */

/* Offset of W[j][k] in its packed form. */
static int64_t packed_index(const Packed *p, int64_t j, int64_t k) {
    int64_t kb = gemm_k_block_dense(p->K), k0 = k / kb * kb, kc = p->K - k0 < kb ? p->K - k0 : kb;
    int64_t c = j % NR, sub = p->isa->b_sub;
    return k0 * p->N + (j / NR) * kc * NR + (c / sub) * kc * sub + (k - k0) * sub + c % sub;
}

static bool find_locked(const float *ptr, Packed *out) {
    for (int64_t i = 0; i < g_len; i++) {
        const Packed *p = &g_list[i];
        if (ptr >= p->base && ptr < p->base + p->N * p->K) {
            *out = *p;
            return true;
        }
    }
    return false;
}

bool gemm_packed_find(const float *ptr, GemmPacked *out) {
    if (!ptr || atomic_load_explicit(&g_count, memory_order_acquire) == 0) return false;
    Packed p;
    pthread_rwlock_rdlock(&g_lock);
    bool found = find_locked(ptr, &p);
    pthread_rwlock_unlock(&g_lock);
    if (found) *out = (GemmPacked){p.base, p.N, p.K, p.isa};
    return found;
}

float *gemm_packed_unpacked_copy(const GemmPacked *e) {
    float *w = malloc(sizeof(float) * (size_t)(e->N * e->K));
    if (!w) return NULL;
    Packed p = {e->base, e->N, e->K, e->isa};
    for (int64_t j = 0; j < p.N; j++)
        for (int64_t k = 0; k < p.K; k++) w[j * p.K + k] = p.base[packed_index(&p, j, k)];
    return w;
}

static void remove_locked(int64_t i) {
    g_list[i] = g_list[g_len - 1];
    g_len--;
    atomic_store_explicit(&g_count, g_len, memory_order_release);
}

bool t_sgemm_prepack(float *W, int64_t N, int64_t K) {
    const GemmIsa *isa = gemm_isa_active();
    /* the kernels load packed panels with aligned loads: panels start at multiples of 192 bytes from W */
    if (!W || !isa || N <= 0 || K <= 0 || N % NR != 0 || (uintptr_t)W % 64 != 0) return false;
    /* the packing is made in a scratch copy mapped for the purpose: freed with free(), glibc would keep
     * these 2-9 MB in its heap, and the peak memory of an encode rose by 16 MB */
    size_t bytes = sizeof(float) * (size_t)(N * K);
    float *tmp = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED) return false;
    /* under the write lock throughout: a product meanwhile must see W either plain and unlisted or packed
     * and listed */
    pthread_rwlock_wrlock(&g_lock);
    Packed old;
    bool ok;
    if (find_locked(W, &old) || find_locked(W + N * K - 1, &old)) {
        ok = old.base == W && old.N == N && old.K == K;   /* packed already (true), or overlapping (false) */
    } else {
        if (g_len == g_cap) {
            int64_t cap = g_cap ? 2 * g_cap : 64;
            Packed *grown = realloc(g_list, sizeof *grown * (size_t)cap);
            if (grown) g_list = grown, g_cap = cap;
        }
        ok = g_len < g_cap;
        if (ok) {
            gemm_pack_weight(isa, W, N, K, tmp);   /* [K-blocks][N / 48 panels][kc][48] */
            memcpy(W, tmp, bytes);
            g_list[g_len++] = (Packed){W, N, K, isa};
            atomic_store_explicit(&g_count, g_len, memory_order_release);
        }
    }
    pthread_rwlock_unlock(&g_lock);
    munmap(tmp, bytes);
    return ok;
}

bool t_sgemm_unpack(float *p) {
    GemmPacked e;
    if (!gemm_packed_find(p, &e)) return true;
    float *w = gemm_packed_unpacked_copy(&e);   /* [N][K] */
    if (!w) return false;
    pthread_rwlock_wrlock(&g_lock);
    memcpy((float *)e.base, w, sizeof(float) * (size_t)(e.N * e.K));
    for (int64_t i = 0; i < g_len; i++)
        if (g_list[i].base == e.base) {
            remove_locked(i);
            break;
        }
    pthread_rwlock_unlock(&g_lock);
    free(w);
    return true;
}

bool t_sgemm_is_packed(const float *W) {
    GemmPacked e;
    return gemm_packed_find(W, &e);
}

void t_sgemm_forget(const float *W) {
    if (!W || atomic_load_explicit(&g_count, memory_order_acquire) == 0) return;
    pthread_rwlock_wrlock(&g_lock);
    for (int64_t i = 0; i < g_len; i++)
        if (g_list[i].base == W) {
            remove_locked(i);
            break;
        }
    if (g_len == 0) {   /* nothing left: give the list back (leak checkers see no registry at exit) */
        free(g_list);
        g_list = NULL;
        g_cap = 0;
    }
    pthread_rwlock_unlock(&g_lock);
}
