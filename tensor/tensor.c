/* Tensor headers, creation, shapes, errors and thread settings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <strings.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "tensor/gemm.h"
#include "tensor/internal.h"

/* ---------------------------------------------------------------- shapes */

int64_t t_numel(const Tensor *t) {
    if (!t) return 0;   /* a parameter that could not be made (its init reports it) */
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void t_contig_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i];
    }
}

bool t_is_contiguous(const Tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool t_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

char *t_shape_str(const Tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int t_axis(const Tensor *t, int axis) {
    if (axis < 0) axis += t->ndim;
    return (axis < 0 || axis >= t->ndim) ? -1 : axis;
}

int t_broadcast_shape(const char *op, const Tensor *a, const Tensor *b, int *ndim, int64_t *shape) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = a->ndim - n + i, ib = b->ndim - n + i;
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            t_error(op, "shapes %s and %s cannot be broadcast (axis %d: %lld vs %lld)", t_shape_str(a, sa, sizeof sa),
                    t_shape_str(b, sb, sizeof sb), i, (long long)da, (long long)db);
            return -1;
        }
        shape[i] = da == 1 ? db : da;
    }
    *ndim = n;
    return 0;
}

void t_broadcast_strides(const Tensor *x, int ndim, const int64_t *shape, int64_t *stride) {
    for (int i = 0; i < ndim; i++) {
        int ix = x->ndim - ndim + i;
        stride[i] = (ix < 0 || x->shape[ix] == 1) ? 0 : x->stride[ix];
        (void)shape;
    }
}

/* Merges adjacent axes that are contiguous with each other in both stride sets; returns the new rank. */
static int coalesce(int ndim, int64_t *shape, int64_t *s1, int64_t *s2) {
    if (ndim == 0) return 0;
    int k = 0;
    for (int i = 1; i < ndim; i++) {
        if (s1[k] == s1[i] * shape[i] && s2[k] == s2[i] * shape[i]) {
            shape[k] *= shape[i];
            s1[k] = s1[i];
            s2[k] = s2[i];
        } else {
            k++;
            shape[k] = shape[i];
            s1[k] = s1[i];
            s2[k] = s2[i];
        }
    }
    return k + 1;
}

/* Walks the index space of `shape` with two stride sets; calls the inner loop over the last axis. */
#define STRIDED_LOOP(NDIM, SHAPE, S1, S2, BODY)                                             \
    do {                                                                                    \
        int64_t sh_[T_MAX_DIMS], a_[T_MAX_DIMS], b_[T_MAX_DIMS], idx_[T_MAX_DIMS] = {0};    \
        memcpy(sh_, SHAPE, sizeof(int64_t) * (size_t)(NDIM));                               \
        memcpy(a_, S1, sizeof(int64_t) * (size_t)(NDIM));                                   \
        memcpy(b_, S2, sizeof(int64_t) * (size_t)(NDIM));                                   \
        int nd_ = coalesce(NDIM, sh_, a_, b_);                                              \
        if (nd_ == 0) { sh_[0] = 1; a_[0] = b_[0] = 0; nd_ = 1; }                           \
        int64_t inner_ = sh_[nd_ - 1], ia_ = a_[nd_ - 1], ib_ = b_[nd_ - 1];                \
        int64_t outer_ = 1;                                                                 \
        for (int d_ = 0; d_ < nd_ - 1; d_++) outer_ *= sh_[d_];                             \
        int64_t oa_ = 0, ob_ = 0;                                                           \
        for (int64_t o_ = 0; o_ < outer_; o_++) {                                           \
            BODY;                                                                           \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                         \
                idx_[d_]++;                                                                 \
                oa_ += a_[d_];                                                              \
                ob_ += b_[d_];                                                              \
                if (idx_[d_] < sh_[d_]) break;                                              \
                oa_ -= a_[d_] * sh_[d_];                                                    \
                ob_ -= b_[d_] * sh_[d_];                                                    \
                idx_[d_] = 0;                                                               \
            }                                                                               \
        }                                                                                   \
    } while (0)

void t_strided_copy(float *dst, const float *src, const int64_t *sstride, int ndim, const int64_t *shape) {
    int64_t dstride[T_MAX_DIMS];
    t_contig_strides(ndim, shape, dstride);
    STRIDED_LOOP(ndim, shape, dstride, sstride, {
        float *d = dst + oa_;
        const float *s = src + ob_;
        if (ib_ == 1)
            memcpy(d, s, sizeof(float) * (size_t)inner_);
        else
            for (int64_t j = 0; j < inner_; j++) d[j * ia_] = s[j * ib_];
    });
}

void t_strided_add(float *dst, const int64_t *dstride, int ndim, const int64_t *shape, const float *src) {
    int64_t sstride[T_MAX_DIMS];
    t_contig_strides(ndim, shape, sstride);
    STRIDED_LOOP(ndim, shape, dstride, sstride, {
        float *d = dst + oa_;
        const float *s = src + ob_;
        for (int64_t j = 0; j < inner_; j++) d[j * ia_] += s[j * ib_];
    });
}

void t_copy_to(const Tensor *x, float *dst) {
    if (t_is_contiguous(x))
        memcpy(dst, x->data, sizeof(float) * (size_t)t_numel(x));
    else
        t_strided_copy(dst, x->data, x->stride, x->ndim, x->shape);
}

/* ---------------------------------------------------------------- errors */

/* One message channel: t_error and t_set_errmsg write the same thread-local buffer, t_errmsg reads it.
 * Library code never exits: the default handler only keeps the message (the op then returns NULL); the
 * command-line front end installs a handler that prints it and exits (train/daclip.c). */
static _Thread_local char errmsg[1024];

static void keep_message(const char *msg) { (void)msg; }

static TErrorHandler handler = keep_message;

TErrorHandler t_set_error_handler(TErrorHandler h) {
    TErrorHandler prev = handler;
    handler = h ? h : keep_message;
    return prev == keep_message ? NULL : prev;
}

void t_error(const char *op, const char *fmt, ...) {
    int k = snprintf(errmsg, sizeof errmsg, "%s: ", op);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg + k, sizeof errmsg - (size_t)k, fmt, ap);
    va_end(ap);
    handler(errmsg);
}

void t_set_errmsg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
}

const char *t_errmsg(void) { return errmsg; }

/* ---------------------------------------------------------------- threads */

static int n_threads = 1;

void t_set_threads(int n) {
    if (n < 1) n = 1;
    n_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

int t_threads(void) { return n_threads; }

/* OpenBLAS 0.3.21 (Debian 12) does not recognise newer Xeons (family 6 model 207 on the dev machine) and
 * falls back to its Prescott SSE3 kernels: sgemm runs ~4x slower. If that happened on a CPU with AVX-512
 * or AVX2 and the user has not chosen OPENBLAS_CORETYPE, redo OpenBLAS's core selection with the matching
 * kernel family (before any BLAS call allocates buffers). The hooks exist only in DYNAMIC_ARCH builds, so
 * they are weak: elsewhere this does nothing. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static void blas_fix_core(void) {
#if defined(__x86_64__)
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || getenv("OPENBLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "Prescott") != 0) return;
    __builtin_cpu_init();
    const char *want = __builtin_cpu_supports("avx512f") ? "SkylakeX" : __builtin_cpu_supports("avx2") ? "Haswell" : NULL;
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 0);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
#endif
}

/* Denormal floats make x86 arithmetic (and OpenBLAS's sgemm) up to ~100x slower through microcode
 * assists; they appear in training (tiny attention probabilities, decaying gradients). Flush them to
 * zero (FTZ) and treat denormal inputs as zero (DAZ) on every thread, as -ffast-math builds and most
 * inference engines do; the effect on results is below 1e-38 in absolute value. */
static void flush_denormals(void) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

void t_init(void) {
    flush_denormals();
#pragma omp parallel
    flush_denormals();
    blas_fix_core();
    const char *s = getenv("DACLIP_THREADS");
    if (!s || !*s) s = getenv("OMP_NUM_THREADS");
    int n = s && *s ? atoi(s) : 0;
    if (n <= 0) {
#ifdef _OPENMP
        n = omp_get_num_procs();
#else
        n = 1;
#endif
    }
    t_set_threads(n);
}

/* ---------------------------------------------------------------- creation */

static int check_shape(const char *op, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > T_MAX_DIMS) {
        t_error(op, "rank %d is outside 0..%d", ndim, T_MAX_DIMS);
        return -1;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            t_error(op, "negative size %lld on axis %d", (long long)shape[i], i);
            return -1;
        }
    return 0;
}

Tensor *t_header(int ndim, const int64_t *shape) {
    Tensor *t = t_arena_calloc(sizeof *t);
    if (!t) return NULL;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t_contig_strides(ndim, shape, t->stride);
    return t;
}

Tensor *t_new(int ndim, const int64_t *shape) {
    if (check_shape("new", ndim, shape)) return NULL;
    Tensor *t = t_header(ndim, shape);
    if (!t || !(t->data = t_arena_alloc(sizeof(float) * (size_t)t_numel(t)))) return NULL;
    return t;
}

Tensor *t_zeros(int ndim, const int64_t *shape) {
    Tensor *t = t_new(ndim, shape);
    if (t) memset(t->data, 0, sizeof(float) * (size_t)t_numel(t));
    return t;
}

Tensor *t_full(int ndim, const int64_t *shape, float value) {
    Tensor *t = t_new(ndim, shape);
    if (!t) return NULL;
    int64_t n = t_numel(t);
    for (int64_t i = 0; i < n; i++) t->data[i] = value;
    return t;
}

Tensor *t_from(int ndim, const int64_t *shape, const float *src) {
    Tensor *t = t_new(ndim, shape);
    if (t) memcpy(t->data, src, sizeof(float) * (size_t)t_numel(t));
    return t;
}

Tensor *t_scalar(float value) { return t_full(0, NULL, value); }

Tensor *t_new_like(const Tensor *x) { return x ? t_new(x->ndim, x->shape) : NULL; }

Tensor *t_wrap(float *data, int ndim, const int64_t *shape) {
    if (check_shape("wrap", ndim, shape)) return NULL;
    Tensor *t = t_header(ndim, shape);
    if (t) t->data = data;
    return t;
}

/* Zeroed memory for a parameter or its gradient (released with free). For large ones the 2 MiB-aligned
 * interior is marked for transparent huge pages: the GEMM streams every weight matrix once per product, and
 * with 4 KiB pages a 768×3072 matrix spans 2,304 pages, more than the TLB holds. calloc maps large blocks
 * fresh, so untouched gradients still cost no memory. */
static void *param_alloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : sizeof(float));
    if (p) t_advise_huge_pages(p, bytes);
    return p;
}

void t_advise_huge_pages(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) / huge * huge, hi = ((uintptr_t)p + bytes) / huge * huge;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

Tensor *t_param_new(int ndim, const int64_t *shape, bool requires_grad) {
    if (check_shape("param_new", ndim, shape)) return NULL;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    size_t bytes = sizeof(float) * (size_t)n;
    Tensor *t = calloc(1, sizeof *t);
    if (t) {
        t->ndim = ndim;
        for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
        t_contig_strides(ndim, shape, t->stride);
        t->persistent = true;
        t->requires_grad = requires_grad;
        t->data = param_alloc(bytes);
        if (requires_grad && t->data) t->grad = param_alloc(bytes);
        if (t->data && (t->grad || !requires_grad)) return t;
        free(t->data);
        free(t);
    }
    t_error("param_new", "out of memory allocating a %zu-byte parameter", bytes);
    return NULL;
}

void t_free(Tensor *t) {
    if (!t || !t->persistent) return;
    t_grad_forget(t);
    t_sgemm_forget(t->data);
    free(t->data);
    free(t->grad);
    free(t);
}

Tensor *t_arena_keep(size_t mark, Tensor *x) {
    if (!x || t_grad_enabled() || x->node || x->persistent || x->offset != 0 || !t_is_contiguous(x)) return x;
    int nd = x->ndim;
    int64_t shape[T_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)nd);
    float *d = t_arena_release_keep(mark, x->data, sizeof(float) * (size_t)t_numel(x));
    return d ? t_wrap(d, nd, shape) : NULL;   /* the header after the data: x's old header is gone */
}

bool t_prepack_weight(Tensor *w) {
    if (!w || !w->persistent || w->ndim != 2 || w->offset != 0 || !t_is_contiguous(w) || !w->data) return false;
    if ((uintptr_t)w->data % 64 != 0) {   /* the kernels read packed panels with aligned loads */
        size_t bytes = sizeof(float) * (size_t)t_numel(w);
        float *aligned = NULL;
        if (posix_memalign((void **)&aligned, 64, bytes) != 0) return false;
        memcpy(aligned, w->data, bytes);
        free(w->data);
        w->data = aligned;
    }
    return t_sgemm_prepack(w->data, w->shape[0], w->shape[1]);
}

bool t_unpack_weight(Tensor *w) { return !w || !w->data || t_sgemm_unpack(w->data); }

void t_zero_grad(Tensor *t) {
    if (!t || !t->grad) return;
    t_grad_forget(t);
    int64_t n = t_numel(t), chunk = (int64_t)1 << 18;
    float *g = t->grad;
    /* a ViT-B/32 has 88M gradient floats to clear per step: one core's memset leaves the other idle */
#pragma omp parallel for if (n > 4 * chunk) schedule(static)
    for (int64_t i = 0; i < n; i += chunk) memset(g + i, 0, sizeof(float) * (size_t)(n - i < chunk ? n - i : chunk));
}
