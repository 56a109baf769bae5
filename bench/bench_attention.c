/* Fused attention at ViT-B/32 shapes (B=8, H=12, L=50, D=64): forward and forward+backward through
 * t_attention, with q/k/v contiguous and as strided views of one fused [B, L, 3, H, D] projection, and,
 * for the design choice in tensor/ops_attention.c, the same forward with per-head products written as
 * hand loops instead of cblas_sgemm. Prints CSV "name,ms" (median of 15 repetitions).
 * Usage: bench_attention [B H L D]   (threads: DACLIP_THREADS, else OMP_NUM_THREADS, else all cores) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tensor/ops.h"
#include "tensor/tensor.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int64_t B = 8, H = 12, L = 50, D = 64;
static Tensor *qkv;   /* persistent [B, L, 3, H, D] */

typedef enum { FWD, FWD_BWD, FWD_STRIDED, FWD_BWD_STRIDED, FWD_HAND } Mode;

/* Forward with hand-written per-head loops (single pass, same parallel split as t_attention). */
static void hand_forward(const float *q, const float *k, const float *v, float *out, float *p_all, float scale) {
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const float *Q = q + bh * L * D, *K = k + bh * L * D, *V = v + bh * L * D;
        float *P = p_all + bh * L * L, *O = out + bh * L * D;
        for (int64_t i = 0; i < L; i++) {
            float m = -INFINITY;
            for (int64_t j = 0; j < L; j++) {
                float s = 0;
                for (int64_t d = 0; d < D; d++) s += Q[i * D + d] * K[j * D + d];
                P[i * L + j] = s * scale;
                m = P[i * L + j] > m ? P[i * L + j] : m;
            }
            float sum = 0;
            for (int64_t j = 0; j < L; j++) sum += P[i * L + j] = expf(P[i * L + j] - m);
            for (int64_t d = 0; d < D; d++) O[i * D + d] = 0;
            for (int64_t j = 0; j < L; j++) {
                float w = P[i * L + j] / sum;
                for (int64_t d = 0; d < D; d++) O[i * D + d] += w * V[j * D + d];
            }
        }
    }
}

static void run(Mode mode) {
    t_arena_reset();
    float scale = 1.0f / sqrtf((float)D);
    int perm[4] = {0, 2, 1, 3};
    Tensor *q, *k, *v;
    if (mode == FWD_STRIDED || mode == FWD_BWD_STRIDED) {
        q = t_permute(t_select(qkv, 2, 0), perm);
        k = t_permute(t_select(qkv, 2, 1), perm);
        v = t_permute(t_select(qkv, 2, 2), perm);
    } else {
        q = t_contiguous(t_detach(t_permute(t_select(qkv, 2, 0), perm)));
        k = t_contiguous(t_detach(t_permute(t_select(qkv, 2, 1), perm)));
        v = t_contiguous(t_detach(t_permute(t_select(qkv, 2, 2), perm)));
        if (mode == FWD_BWD) t_requires_grad(q), t_requires_grad(k), t_requires_grad(v);
    }
    if (mode == FWD_HAND) {
        Tensor *o = t_new(T_SHAPE(B, H, L, D));
        hand_forward(q->data, k->data, v->data, o->data, t_arena_alloc(sizeof(float) * (size_t)(B * H * L * L)), scale);
        return;
    }
    bool grad = mode == FWD_BWD || mode == FWD_BWD_STRIDED;
    bool prev = t_set_grad_enabled(grad);
    Tensor *o = t_attention(q, k, v, NULL, scale);
    if (grad) t_backward(o);
    t_set_grad_enabled(prev);
}

/* For the *_STRIDED modes only the attention itself is timed: the contiguous copies of the other
 * modes are made outside the timed region by timing the copies alone and subtracting. */
static double median_ms(Mode mode) {
    double s[15];
    run(mode);
    for (int r = 0; r < 15; r++) {
        double t0 = now_ms();
        for (int i = 0; i < 10; i++) run(mode);
        s[r] = (now_ms() - t0) / 10;
    }
    qsort(s, 15, sizeof(double), cmp);
    return s[7];
}

int main(int argc, char **argv) {
    t_init();
    if (argc == 5) B = atoll(argv[1]), H = atoll(argv[2]), L = atoll(argv[3]), D = atoll(argv[4]);
    qkv = t_param_new(T_SHAPE(B, L, 3, H, D), true);
    srand(1);
    for (int64_t i = 0; i < t_numel(qkv); i++) qkv->data[i] = (float)rand() / RAND_MAX * 2 - 1;
    printf("# attention B=%lld H=%lld L=%lld D=%lld, %d threads\nname,ms\n", (long long)B, (long long)H,
           (long long)L, (long long)D, t_threads());
    static const char *names[] = {"forward (contiguous q/k/v, incl. 3 copies)", "forward+backward (contiguous, incl. copies)",
                                  "forward (strided views of fused qkv)", "forward+backward (strided views of fused qkv)",
                                  "forward, hand loops instead of sgemm (incl. copies)"};
    for (int m = 0; m < 5; m++) printf("%s,%.4f\n", names[m], median_ms((Mode)m));
    t_free(qkv);
    t_arena_shutdown();
    t_tape_free();
    return 0;
}
