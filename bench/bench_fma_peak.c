/* FMA peak of this machine: every thread runs 12 independent chains of 512-bit (then 256-bit) FMAs from
 * registers, no memory traffic. Prints GFLOP/s, best of 5, for the zmm and ymm forms. The GEMM kernel's
 * efficiency (docs/benchmarks.md) is quoted against the zmm figure.
 * Usage: bench_fma_peak   (threads: DACLIP_THREADS, else OMP_NUM_THREADS) */
#include <omp.h>
#include <stdio.h>

#include "tensor/tensor.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static float chains512(long n) {
    __m512 a[12], x = _mm512_set1_ps(0.9999f), y = _mm512_set1_ps(1e-4f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i * 1e-3f);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 12; j++) a[j] = _mm512_fmadd_ps(a[j], x, y);
    for (int i = 1; i < 12; i++) a[0] = _mm512_add_ps(a[0], a[i]);
    return _mm512_reduce_add_ps(a[0]);
}

__attribute__((target("avx2,fma"))) static float chains256(long n) {
    __m256 a[12], x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(1e-4f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i * 1e-3f);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 12; j++) a[j] = _mm256_fmadd_ps(a[j], x, y);
    for (int i = 1; i < 12; i++) a[0] = _mm256_add_ps(a[0], a[i]);
    float s[8];
    _mm256_storeu_ps(s, a[0]);
    return s[0] + s[7];
}

static double best_gflops(int width) {
    const long n = 20000000;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        float sink = 0;
        double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
        sink += width == 16 ? chains512(n) : chains256(n);
        double g = (double)n * 12 * width * 2 * omp_get_max_threads() / (omp_get_wtime() - t0) / 1e9;
        if (g > best) best = g;
        if (sink == 12345.0f) printf(" ");   /* keeps the chains live */
    }
    return best;
}

int main(void) {
    t_init();
    __builtin_cpu_init();
    printf("threads %d\n", omp_get_max_threads());
    if (__builtin_cpu_supports("avx512f")) printf("zmm FMA peak: %.1f GFLOP/s\n", best_gflops(16));
    if (__builtin_cpu_supports("fma")) printf("ymm FMA peak: %.1f GFLOP/s\n", best_gflops(8));
    return 0;
}
#else
int main(void) {
    printf("bench_fma_peak: x86-64 only\n");
    return 0;
}
#endif
