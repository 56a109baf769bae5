#ifndef DACLIP_TENSOR_SIMD_H
#define DACLIP_TENSOR_SIMD_H
/* Runtime dispatch for hot loops. The portable build targets x86-64-v2 (SSE4.2, no FMA); a function
 * marked T_SIMD is compiled three times (AVX-512, AVX2+FMA, baseline) and the loader picks the best
 * clone for the CPU. Put T_SIMD on small leaf kernels (a row, a tile), not on functions containing
 * `#pragma omp parallel`: the outlined parallel body would not be cloned. With NATIVE=1 (or any build
 * whose baseline already has AVX-512) the clones would add nothing, so only the contraction part stays.
 * -std=c11 implies -ffp-contract=off, which would leave every a*b+c as two instructions even on FMA
 * hardware; T_SIMD kernels allow contraction (results change within float rounding). clang (used only for the
 * libFuzzer build) gets the baseline.  */
#if defined(__x86_64__) && !defined(__AVX512F__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define T_SIMD \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
#else
#define T_SIMD __attribute__((optimize("fp-contract=fast")))
#endif

#endif
