/* t_attention's forward values against a double-precision reference at the shapes this project runs and
 * their edges: the ViT-B/32 head (50 × 50 × 64), one query row (CLIP's class token in the last block),
 * the text tower's 77 with a causal-style mask, odd row counts, masks with -inf, q/k/v as strided views
 * of one fused projection, Dv ≠ D. Gradients: tests/test_ops_grad.c (test_attention_grad). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

/* out[b,h,i,:] = softmax_j(scale·q_i·k_j + mask[i,j]) v_j in double */
static void reference(const Tensor *q, const Tensor *k, const Tensor *v, const float *mask, float scale, double *out) {
    int64_t B = q->shape[0], H = q->shape[1], Lq = q->shape[2], D = q->shape[3], Lk = k->shape[2], Dv = v->shape[3];
    double *s = malloc(sizeof(double) * (size_t)Lk);
#define AT(t, b, h, i, d) ((t)->data[(b) * (t)->stride[0] + (h) * (t)->stride[1] + (i) * (t)->stride[2] + (d) * (t)->stride[3]])
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Lq; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Lk; j++) {
                    double acc = 0;
                    for (int64_t d = 0; d < D; d++) acc += (double)AT(q, b, h, i, d) * AT(k, b, h, j, d);
                    s[j] = scale * acc + (mask ? mask[i * Lk + j] : 0.0);
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < Lk; j++) sum += s[j] = exp(s[j] - mx);
                for (int64_t e = 0; e < Dv; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Lk; j++) acc += s[j] / sum * AT(v, b, h, j, e);
                    out[((b * H + h) * Lq + i) * Dv + e] = acc;
                }
            }
#undef AT
    free(s);
}

static void check_case(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, bool fused, bool masked) {
    t_arena_reset();
    Tensor *q, *k, *v;
    if (fused) { /* one [B, L, 3, H, D] projection, each of q/k/v a strided [B, H, L, D] view; Lq ≤ L */
        Tensor *qkv = t_new(T_SHAPE(B, Lk, 3, H, D));
        fill_uniform(qkv, (uint64_t)(Lq * 131 + Lk * 7 + D), -1, 1);
        int perm[4] = {0, 2, 1, 3};
        q = t_slice(t_permute(t_select(qkv, 2, 0), perm), 2, 0, Lq);
        k = t_permute(t_select(qkv, 2, 1), perm);
        v = t_permute(t_select(qkv, 2, 2), perm);
    } else {
        q = t_new(T_SHAPE(B, H, Lq, D)), k = t_new(T_SHAPE(B, H, Lk, D)), v = t_new(T_SHAPE(B, H, Lk, Dv));
        fill_uniform(q, 1 + (uint64_t)Lq, -1, 1);
        fill_uniform(k, 2 + (uint64_t)Lk, -1, 1);
        fill_uniform(v, 3 + (uint64_t)Dv, -1, 1);
    }
    Tensor *mask = NULL;
    if (masked) {
        mask = t_new(T_SHAPE(Lq, Lk));
        fill_uniform(mask, 4, -2, 2);
        mask->data[0] = -INFINITY;   /* a masked-out key (row 0 keeps others when Lk > 1) */
        if (Lk == 1) mask->data[0] = 0.5f;
    }
    float scale = 1.0f / sqrtf((float)D);
    Tensor *out = t_attention(q, k, v, mask, scale);
    assert_non_null(out);
    int64_t n = t_numel(out);
    double *ref = malloc(sizeof(double) * (size_t)n);
    reference(q, k, v, mask ? mask->data : NULL, scale, ref);
    for (int64_t i = 0; i < n; i++)
        if (!close_enough(out->data[i], ref[i], 1e-5, 1e-4))
            fail_msg("B%lld H%lld Lq%lld Lk%lld D%lld Dv%lld%s%s: out[%lld] = %.7g, want %.7g", (long long)B,
                     (long long)H, (long long)Lq, (long long)Lk, (long long)D, (long long)Dv, fused ? " fused" : "",
                     masked ? " masked" : "", (long long)i, out->data[i], ref[i]);
    free(ref);
}

static void test_vit_heads(void **state) {
    (void)state;
    /* the ViT-B/32 head (50 × 50 × 64), its class-token-only last block (Lq 1), and nearby shapes */
    check_case(2, 3, 50, 50, 64, 64, true, false);
    check_case(2, 3, 1, 50, 64, 64, true, false);
    check_case(1, 2, 7, 64, 128, 128, true, true);
    check_case(1, 2, 3, 1, 16, 16, false, true);
    check_case(2, 1, 17, 17, 16, 48, false, true);
    check_case(1, 1, 64, 33, 32, 112, false, false);
}

static void test_other_heads(void **state) {
    (void)state;
    /* longer keys, head widths not multiples of 16, the text tower's 77 */
    check_case(1, 2, 5, 65, 16, 16, false, true);
    check_case(1, 2, 77, 77, 64, 64, true, true);
    check_case(2, 2, 9, 12, 8, 8, false, false);
    check_case(1, 1, 4, 20, 144, 16, false, false);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_vit_heads, arena_teardown),
        cmocka_unit_test_teardown(test_other_heads, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    return rc;
}
