/* nn transformer layers against PyTorch (tests/reference/gen_nn_transformer.py, float64 reference):
 * Linear, LayerNorm, Embedding, nn.MultiheadAttention (plain and causal), open_clip's
 * ResidualAttentionBlock and a 2-block Transformer with DA-CLIP control additions. Each fixture's
 * state dict is loaded into our ParamSet by name (strict), which proves the parameter names; then
 * the output, the input gradient(s) and every parameter gradient are compared.
 * Tolerances (float32 against float64): |a - b| <= atol + rtol |b| with atol 1e-5 / rtol 1e-4 for the
 * single layers and atol 2e-5 / rtol 2e-4 for attention, the block and the stack. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nn/embedding.h"
#include "nn/layernorm.h"
#include "nn/linear.h"
#include "nn/mha.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/transformer.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"

#define ATOL_LAYER 1e-5
#define RTOL_LAYER 1e-4
#define ATOL_ATTN 2e-5
#define RTOL_ATTN 2e-4

/* Loads every non-"@" array of the fixture into ps by name, strictly. */
static void load_state_dict(ParamSet *ps, const Fixture *fx) {
    NamedArray *arr = calloc((size_t)fx->count, sizeof *arr);
    assert_non_null(arr);
    int n = 0;
    for (int i = 0; i < fx->count; i++) {
        if (fx->names[i][0] == '@') continue;
        arr[n++] = (NamedArray){fx->names[i], fx->ndim[i], fx->shape[i], fx->data[i]};
    }
    LoadReport rep;
    int rc = params_load_arrays(ps, n, arr, true, &rep);
    if (rc != 0) fail_msg("state dict does not match by name: %s", t_errmsg());
    assert_int_equal(rep.loaded, ps->n);
    free(arr);
}

/* Compares every parameter's gradient with "@grad.<name>". */
static void check_param_grads(const ParamSet *ps, const Fixture *fx, double atol, double rtol) {
    char key[300];
    for (int i = 0; i < ps->n; i++) {
        snprintf(key, sizeof key, "@grad.%s", ps->items[i].name);
        int64_t n;
        const float *want = fixture_get(fx, key, &n);
        assert_int_equal(n, t_numel(ps->items[i].t));
        assert_non_null(ps->items[i].t->grad);
        check_close(ps->items[i].t->grad, want, n, atol, rtol, key);
    }
}

/* An input leaf from the fixture that collects a gradient. */
static Tensor *input(const Fixture *fx, const char *name) {
    Tensor *x = fixture_tensor(fx, name);
    t_requires_grad(x);
    return x;
}

static void check_output_and_backward(Tensor *y, const Fixture *fx, double atol, double rtol) {
    assert_non_null(y);
    int64_t n;
    check_tensor_close(y, fixture_get(fx, "@y", &n), atol, rtol, "output");
    assert_int_equal(n, t_numel(y));
    t_backward_with(y, fixture_get(fx, "@dy", NULL));
}

static void check_input_grad(const Tensor *x, const Fixture *fx, const char *key, double atol, double rtol) {
    int64_t n;
    const float *want = fixture_get(fx, key, &n);
    assert_int_equal(n, t_numel(x));
    assert_non_null(x->grad);
    check_close(x->grad, want, n, atol, rtol, key);
}

/* ---------------------------------------------------------------- single layers */

static void test_linear(void **state) {
    (void)state;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        Fixture fx;
        if (!fixture_load(&fx, with_bias ? "nn_tf_linear.bin" : "nn_tf_linear_nobias.bin")) return;
        ParamSet ps;
        params_init(&ps);
        TRng r;
        rng_seed(&r, 1);
        Linear l;
        if (with_bias)
            linear_init(&l, &ps, "", 7, 5, true, &r);
        else
            linear_init(&l, &ps, NULL, 6, 4, false, &r);
        assert_int_equal(ps.n, with_bias ? 2 : 1);
        assert_null(with_bias ? NULL : l.bias);
        load_state_dict(&ps, &fx);
        Tensor *x = input(&fx, "@x");
        check_output_and_backward(linear_forward(&l, x), &fx, ATOL_LAYER, RTOL_LAYER);
        check_input_grad(x, &fx, "@grad.x", ATOL_LAYER, RTOL_LAYER);
        check_param_grads(&ps, &fx, ATOL_LAYER, RTOL_LAYER);
        t_arena_reset();
        params_free(&ps);
        fixture_free(&fx);
    }
}

/* res + linear(x) is one node and gives the same values and gradients as the unfused pair. */
static void test_linear_add_matches_unfused(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 3);
    Linear l;
    linear_init(&l, &ps, "p", 9, 6, true, &r);
    float *ref[5];
    for (int fused = 0; fused < 2; fused++) {
        t_arena_reset();   /* a fresh tape each time */
        params_zero_grad(&ps);
        Tensor *x = t_new(T_SHAPE(2, 4, 9)), *res = t_new(T_SHAPE(2, 4, 6)), *dy = t_new(T_SHAPE(2, 4, 6));
        fill_uniform(x, 1, -1, 1);
        fill_uniform(res, 2, -1, 1);
        fill_uniform(dy, 3, -1, 1);
        t_requires_grad(x);
        t_requires_grad(res);
        size_t before = t_tape_len();
        Tensor *y = fused ? linear_forward_add(&l, x, res) : t_add(res, linear_forward(&l, x));
        assert_int_equal(t_tape_len() - before, fused ? 1 : 2);
        t_backward_with(y, dy->data);
        const float *got[5] = {y->data, x->grad, res->grad, l.weight->grad, l.bias->grad};
        const int64_t n[5] = {48, 72, 48, 54, 6};
        for (int i = 0; i < 5; i++) {
            if (!fused) {
                ref[i] = malloc(sizeof(float) * (size_t)n[i]);
                memcpy(ref[i], got[i], sizeof(float) * (size_t)n[i]);
            } else {
                check_close(got[i], ref[i], n[i], 1e-6, 1e-5, "linear_add vs add(linear)");
                free(ref[i]);
            }
        }
    }
    params_free(&ps);
}

static void test_layernorm(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "nn_tf_layernorm.bin")) return;
    ParamSet ps;
    params_init(&ps);
    LayerNorm ln;
    layernorm_init(&ln, &ps, "", 8);
    assert_float_close(ln.eps, 1e-5, 0);
    load_state_dict(&ps, &fx);
    Tensor *x = input(&fx, "@x");
    check_output_and_backward(layernorm_forward(&ln, x), &fx, ATOL_LAYER, RTOL_LAYER);
    check_input_grad(x, &fx, "@grad.x", ATOL_LAYER, RTOL_LAYER);
    check_param_grads(&ps, &fx, ATOL_LAYER, RTOL_LAYER);
    params_free(&ps);
    fixture_free(&fx);
}

static void test_embedding(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "nn_tf_embedding.bin")) return;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 2);
    Embedding e;
    embedding_init(&e, &ps, "", 10, 6, &r);
    load_state_dict(&ps, &fx);
    int64_t n;
    const float *fid = fixture_get(&fx, "@ids", &n);
    assert_int_equal(n, 8);
    int32_t ids[8];
    for (int i = 0; i < 8; i++) ids[i] = (int32_t)fid[i];
    Tensor *y = embedding_forward(&e, ids, 2, (const int64_t[]){2, 4});
    assert_non_null(y);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 6);
    check_output_and_backward(y, &fx, 0, 0);               /* a gather: exact */
    check_param_grads(&ps, &fx, ATOL_LAYER, RTOL_LAYER);  /* id 4 appears three times: summed */
    params_free(&ps);
    fixture_free(&fx);
}

/* ---------------------------------------------------------------- attention and blocks */

static void check_mha_fixture(const char *file, int64_t L, bool causal) {
    Fixture fx;
    if (!fixture_load(&fx, file)) return;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 4);
    MultiheadAttention m;
    assert_int_equal(mha_init(&m, &ps, "", 16, 4, &r), 0);
    load_state_dict(&ps, &fx);
    Tensor *x = input(&fx, "@x");
    assert_int_equal(x->shape[1], L);
    Tensor *mask = causal ? mha_causal_mask(L) : NULL;
    size_t before = t_tape_len();
    Tensor *y = mha_forward(&m, x, mask);
    /* in-projection, ONE attention node for all heads, out-projection */
    assert_int_equal(t_tape_len() - before, 3);
    assert_string_equal(y->node->op, "mha_out_proj");
    assert_string_equal(y->node->in[0]->node->op, "attention");
    check_output_and_backward(y, &fx, ATOL_ATTN, RTOL_ATTN);
    check_input_grad(x, &fx, "@grad.x", ATOL_ATTN, RTOL_ATTN);
    check_param_grads(&ps, &fx, ATOL_ATTN, RTOL_ATTN);
    params_free(&ps);
    fixture_free(&fx);
}

static void test_mha(void **state) {
    (void)state;
    check_mha_fixture("nn_tf_mha.bin", 5, false);
}

static void test_mha_causal(void **state) {
    (void)state;
    check_mha_fixture("nn_tf_mha_causal.bin", 6, true);
    Tensor *m = mha_causal_mask(3);
    assert_true(m->data[1] == -INFINITY);
    assert_float_close(m->data[3], 0.0f, 0);
    assert_float_close(m->data[8], 0.0f, 0);
}

static void test_resblock(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "nn_tf_block.bin")) return;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 5);
    ResidualAttentionBlock blk;
    assert_int_equal(res_attn_block_init(&blk, &ps, "", 16, 4, 4.0, &r), 0);
    load_state_dict(&ps, &fx);
    Tensor *x = input(&fx, "@x");
    check_output_and_backward(res_attn_block_forward(&blk, x, NULL), &fx, ATOL_ATTN, RTOL_ATTN);
    check_input_grad(x, &fx, "@grad.x", ATOL_ATTN, RTOL_ATTN);
    check_param_grads(&ps, &fx, ATOL_ATTN, RTOL_ATTN);
    params_free(&ps);
    fixture_free(&fx);
}

static void test_stack_with_control(void **state) {
    (void)state;
    Fixture fx;
    if (!fixture_load(&fx, "nn_tf_stack.bin")) return;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 6);
    Transformer tf;
    assert_int_equal(transformer_init(&tf, &ps, "", 16, 2, 4, 4.0, &r), 0);
    assert_non_null(params_find(&ps, "resblocks.1.mlp.c_proj.bias"));
    load_state_dict(&ps, &fx);
    Tensor *x = input(&fx, "@x");
    Tensor *control[2] = {input(&fx, "@control.0"), input(&fx, "@control.1")};
    Tensor *hidden[2] = {NULL, NULL};
    Tensor *y = transformer_forward(&tf, x, mha_causal_mask(6), control, hidden);
    check_tensor_close(hidden[0], fixture_get(&fx, "@hidden.0", NULL), ATOL_ATTN, RTOL_ATTN, "hidden.0");
    check_tensor_close(hidden[1], fixture_get(&fx, "@hidden.1", NULL), ATOL_ATTN, RTOL_ATTN, "hidden.1");
    assert_ptr_equal(hidden[1], y);
    check_output_and_backward(y, &fx, ATOL_ATTN, RTOL_ATTN);
    check_input_grad(x, &fx, "@grad.x", ATOL_ATTN, RTOL_ATTN);
    check_input_grad(control[0], &fx, "@grad.control.0", ATOL_ATTN, RTOL_ATTN);
    check_input_grad(control[1], &fx, "@grad.control.1", ATOL_ATTN, RTOL_ATTN);
    check_param_grads(&ps, &fx, ATOL_ATTN, RTOL_ATTN);
    transformer_free(&tf);
    params_free(&ps);
    fixture_free(&fx);
}

/* The fused MLP's vectorised GELU against t_gelu (libm erff), values and derivatives, including the
 * tails where exp underflows: c_fc = c_proj = identity makes y = gelu(x). */
static void test_mlp_gelu_matches_exact(void **state) {
    (void)state;
    enum { N = 64 };
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 10);
    Linear fc, proj;
    linear_init(&fc, &ps, "c_fc", N, N, true, &r);
    linear_init(&proj, &ps, "c_proj", N, N, true, &r);
    init_const(fc.weight, 0.0f);
    init_const(proj.weight, 0.0f);
    init_const(fc.bias, 0.0f);
    init_const(proj.bias, 0.0f);
    for (int i = 0; i < N; i++) fc.weight->data[i * N + i] = proj.weight->data[i * N + i] = 1.0f;
    static float xs[40 * N];
    for (int64_t i = 0; i < 40 * N; i++) xs[i] = -12.0f + 24.0f * (float)i / (40 * N);  /* dense in [-12, 12) */
    const float tails[] = {-1e30f, -1e4f, -90.0f, -30.0f, -13.5f, 13.5f, 30.0f, 1e4f, 1e30f, -0.0f};
    for (int i = 0; i < 10; i++) xs[i * 7] = tails[i];
    float *got[2];
    for (int pass = 0; pass < 2; pass++) {
        t_arena_reset();
        Tensor *xi = t_from(T_SHAPE(40, N), xs);
        t_requires_grad(xi);
        Tensor *y = pass ? t_gelu(xi) : mlp_gelu_forward_add(&fc, &proj, xi, NULL);
        t_backward(y);
        got[pass] = malloc(sizeof(float) * 2 * 40 * N);
        memcpy(got[pass], y->data, sizeof(float) * 40 * N);
        memcpy(got[pass] + 40 * N, xi->grad, sizeof(float) * 40 * N);
    }
    check_close(got[0], got[1], 40 * N, 1e-6, 1e-6, "gelu value");
    check_close(got[0] + 40 * N, got[1] + 40 * N, 40 * N, 2e-6, 1e-6, "gelu derivative");
    free(got[0]);
    free(got[1]);
    params_free(&ps);
}

/* Without grad: same output, nothing on the tape, and the arena scratch of the fused ops is returned. */
static void test_no_grad_forward(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 7);
    Transformer tf;
    assert_int_equal(transformer_init(&tf, &ps, "visual.transformer", 32, 2, 4, 4.0, &r), 0);
    Tensor *x = t_new(T_SHAPE(3, 7, 32));
    fill_uniform(x, 9, -2, 2);
    Tensor *y = transformer_forward(&tf, x, NULL, NULL, NULL);
    bool prev = t_set_grad_enabled(false);
    size_t tape = t_tape_len();
    Tensor *z = transformer_forward(&tf, x, NULL, NULL, NULL);
    assert_int_equal(t_tape_len(), tape);
    assert_null(z->node);
    t_set_grad_enabled(prev);
    check_close(z->data, y->data, t_numel(y), 0, 0, "no-grad forward");
    transformer_free(&tf);
    params_free(&ps);
}

/* Every parameter's gradient, in ParamSet order, in one malloc'd buffer. */
static float *grad_snapshot(const ParamSet *ps) {
    float *g = malloc(sizeof(float) * (size_t)params_count(ps, "", false)), *p = g;
    for (int i = 0; i < ps->n; i++) {
        memcpy(p, ps->items[i].t->grad, sizeof(float) * (size_t)t_numel(ps->items[i].t));
        p += t_numel(ps->items[i].t);
    }
    return g;
}

/* transformer_forward_first (the last block computes only the first rows) gives those rows of the full
 * forward, and the same gradients for x, the controls and every parameter, with a causal mask. */
static void test_stack_first_rows_match_full(void **state) {
    (void)state;
    enum { B = 3, L = 7, C = 32, NQ = 2 };
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 11);
    Transformer tf;
    assert_int_equal(transformer_init(&tf, &ps, "", C, 2, 4, 4.0, &r), 0);
    for (int i = 0; i < ps.n; i++) t_fill_uniform(ps.items[i].t, &r, -0.3f, 0.3f);   /* non-zero biases too */
    Tensor *x = t_new(T_SHAPE(B, L, C)), *weights = t_new(T_SHAPE(B, NQ, C));
    Tensor *control[2] = {t_new(T_SHAPE(B, L, C)), t_new(T_SHAPE(B, L, C))};
    fill_uniform(x, 12, -2, 2);
    fill_uniform(weights, 13, -1, 1);
    fill_uniform(control[0], 14, -0.5f, 0.5f);
    fill_uniform(control[1], 15, -0.5f, 0.5f);
    Tensor *leaves[3] = {x, control[0], control[1]};
    float *grads[2][3], *pgrads[2];
    float *out[2];
    int64_t np = params_count(&ps, "", false);
    for (int pass = 0; pass < 2; pass++) {
        params_zero_grad(&ps);
        for (int j = 0; j < 3; j++) {
            leaves[j]->grad = NULL;
            t_requires_grad(leaves[j]);
        }
        Tensor *y = pass ? transformer_forward_first(&tf, x, mha_causal_mask(L), control, NULL, NQ)
                         : t_contiguous(t_slice(transformer_forward(&tf, x, mha_causal_mask(L), control, NULL), 1, 0, NQ));
        assert_non_null(y);
        assert_int_equal(y->shape[1], NQ);
        out[pass] = malloc(sizeof(float) * B * NQ * C);
        memcpy(out[pass], y->data, sizeof(float) * B * NQ * C);
        t_backward(t_sum(t_mul(y, weights), 0, NULL, false));
        for (int j = 0; j < 3; j++) {
            assert_non_null(leaves[j]->grad);
            grads[pass][j] = malloc(sizeof(float) * B * L * C);
            memcpy(grads[pass][j], leaves[j]->grad, sizeof(float) * B * L * C);
        }
        pgrads[pass] = grad_snapshot(&ps);
    }
    check_close(out[1], out[0], B * NQ * C, 1e-6, 1e-5, "first rows");
    const char *names[3] = {"grad x", "grad control.0", "grad control.1"};
    for (int j = 0; j < 3; j++) check_close(grads[1][j], grads[0][j], B * L * C, 1e-6, 1e-5, names[j]);
    check_close(pgrads[1], pgrads[0], np, 1e-6, 1e-5, "parameter grads");
    for (int pass = 0; pass < 2; pass++) {
        free(out[pass]);
        free(pgrads[pass]);
        for (int j = 0; j < 3; j++) free(grads[pass][j]);
    }
    transformer_free(&tf);
    params_free(&ps);
}

/* params_zero_grad_lazy: gradients holding garbage (NaN) come out of the next backward exactly as after an
 * eager zero_grad, including weights whose gradient GEMM overwrites instead of adding and a weight used
 * twice; a parameter the backward does not reach ends up zero; the optimizer clears one never reached. */
static void test_lazy_zero_grad(void **state) {
    (void)state;
    enum { B = 2, L = 5, C = 32 };
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 21);
    Transformer tf;
    assert_int_equal(transformer_init(&tf, &ps, "", C, 2, 4, 4.0, &r), 0);
    Linear unused, twice;
    linear_init(&unused, &ps, "unused", C, C, true, &r);
    linear_init(&twice, &ps, "twice", C, C, true, &r);
    float *ref = NULL;   /* pass 0's gradients, every parameter in order */
    for (int pass = 0; pass < 4; pass++) {
        t_arena_reset();
        if (pass == 0) {
            params_zero_grad(&ps);
        } else if (pass == 3) {
            /* no zero_grad at all: every gradient accumulates onto the last one, so 2× the reference */
        } else {
            for (int i = 0; i < ps.n; i++)
                for (int64_t k = 0; k < t_numel(ps.items[i].t); k++) ps.items[i].t->grad[k] = NAN;
            params_zero_grad_lazy(&ps);
        }
        Tensor *x = t_new(T_SHAPE(B, L, C));   /* the arena was reset */
        fill_uniform(x, 22, -1, 1);
        Tensor *y = transformer_forward(&tf, x, NULL, NULL, NULL);
        y = linear_forward_add(&twice, linear_forward_add(&twice, y, y), y);
        t_backward(t_sum(t_mul(y, y), 0, NULL, false));
        if (pass == 0) ref = grad_snapshot(&ps);
        int64_t off = 0;
        for (int i = 0; i < ps.n; i++) {
            int64_t n = t_numel(ps.items[i].t);
            assert_false(ps.items[i].t->grad_stale);
            if (pass == 0) continue;
            if (pass < 3) check_close(ps.items[i].t->grad, ref + off, n, 0, 1e-6, ps.items[i].name);
            else
                for (int64_t k = 0; k < n; k++)
                    if (!close_enough(ps.items[i].t->grad[k], 2.0 * ref[off + k], 1e-5, 5e-6))   /* 1e-5·(1 + |ref|) */
                        fail_msg("%s[%lld]: %g after two backwards, want 2 × %g", ps.items[i].name, (long long)k,
                                 ps.items[i].t->grad[k], ref[off + k]);
            off += n;
        }
    }
    for (int64_t k = 0; k < t_numel(unused.weight); k++) assert_true(unused.weight->grad[k] == 0.0f);
    /* zeroed lazily, then an optimizer step with no backward: a zero gradient, not stale data */
    for (int64_t k = 0; k < t_numel(unused.bias); k++) unused.bias->grad[k] = NAN;
    params_zero_grad_lazy(&ps);
    assert_true(unused.bias->grad_stale);
    OptConfig oc = optim_sgd_config(0.1, 0.0, 0.0);
    Optim *opt = optim_new(&ps, &oc);
    assert_non_null(opt);
    float before = unused.bias->data[0];
    optim_step(opt);
    assert_false(unused.bias->grad_stale);
    assert_true(unused.bias->data[0] == before);
    optim_free(opt);
    free(ref);
    transformer_free(&tf);
    /* a view of a lazily zeroed parameter, used twice: its gradient is its own, not marked stale */
    Tensor *w = unused.bias;   /* [C] */
    for (int64_t k = 0; k < C; k++) w->grad[k] = NAN, w->data[k] = (float)k / C;
    params_zero_grad_lazy(&ps);
    t_arena_reset();
    Tensor *wv = t_reshape(w, T_SHAPE(4, C / 4));
    t_backward(t_add(t_sum(t_mul(wv, wv), 0, NULL, false), t_sum(t_mul_scalar(wv, 3.0f), 0, NULL, false)));
    for (int64_t k = 0; k < C; k++) assert_float_close(w->grad[k], 2.0f * w->data[k] + 3.0f, 1e-6);
    params_free(&ps);   /* frees tensors still marked stale: the pending list must forget them */
    t_arena_reset();
    Tensor *z = t_new(T_SHAPE(1));
    z->data[0] = 1;
    t_requires_grad(z);
    t_backward(t_mul(z, z));   /* a later backward must not touch the freed parameters */
}

/* Names, order and counts of a block match open_clip's state dict; init follows PyTorch's defaults. */
static void test_names_and_init(void **state) {
    (void)state;
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 8);
    Transformer tf;
    assert_int_equal(transformer_init(&tf, &ps, "visual.transformer", 64, 2, 4, 4.0, &r), 0);
    static const char *names[] = {"ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                                  "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
                                  "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
    assert_int_equal(ps.n, 24);
    char want[200];
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 12; i++) {
            snprintf(want, sizeof want, "visual.transformer.resblocks.%d.%s", b, names[i]);
            assert_string_equal(ps.items[b * 12 + i].name, want);
        }
    /* 12 C^2 + 13 C per block */
    assert_int_equal(params_count(&ps, "", false), 2 * (12 * 64 * 64 + 13 * 64));
    const ResidualAttentionBlock *blk = &tf.resblocks[1];
    struct {
        const Tensor *t;
        float lo, hi;     /* every value must lie in [lo, hi] and the range must be mostly used */
    } cases[] = {
        {blk->ln_1.weight, 1, 1},
        {blk->ln_1.bias, 0, 0},
        {blk->attn.in_proj_weight, -sqrtf(6.0f / 256), sqrtf(6.0f / 256)},
        {blk->attn.in_proj_bias, 0, 0},
        {blk->attn.out_proj.weight, -1 / 8.0f, 1 / 8.0f},
        {blk->attn.out_proj.bias, 0, 0},
        {blk->mlp.c_fc.weight, -1 / 8.0f, 1 / 8.0f},
        {blk->mlp.c_fc.bias, -1 / 8.0f, 1 / 8.0f},
        {blk->mlp.c_proj.weight, -1 / 16.0f, 1 / 16.0f},
        {blk->mlp.c_proj.bias, -1 / 16.0f, 1 / 16.0f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float mn = INFINITY, mx = -INFINITY;
        for (int64_t i = 0; i < t_numel(cases[c].t); i++) {
            assert_true(isfinite(cases[c].t->data[i]));   /* fminf/fmaxf below would drop a NaN */
            mn = fminf(mn, cases[c].t->data[i]);
            mx = fmaxf(mx, cases[c].t->data[i]);
        }
        assert_true(mn >= cases[c].lo && mx <= cases[c].hi);
        assert_true(mx - mn >= 0.8f * (cases[c].hi - cases[c].lo));
    }
    Embedding e;
    embedding_init(&e, &ps, "token_embedding", 100, 50, &r);
    double s = 0, s2 = 0;
    for (int i = 0; i < 5000; i++) s += e.weight->data[i], s2 += (double)e.weight->data[i] * e.weight->data[i];
    assert_true(fabs(s / 5000) < 0.05 && fabs(s2 / 5000 - 1) < 0.1);   /* N(0, 1) */
    transformer_free(&tf);
    params_free(&ps);
}

static char seen[512];
static void record_error(const char *msg) { snprintf(seen, sizeof seen, "%s", msg); }

static void test_errors(void **state) {
    (void)state;
    t_set_error_handler(record_error);
    ParamSet ps;
    params_init(&ps);
    TRng r;
    rng_seed(&r, 9);
    MultiheadAttention m;
    assert_int_equal(mha_init(&m, &ps, "attn", 10, 4, &r), -1);
    assert_non_null(strstr(seen, "heads"));
    assert_int_equal(mha_init(&m, &ps, "attn", 8, 2, &r), 0);
    assert_null(mha_forward(&m, t_new(T_SHAPE(2, 3, 6)), NULL));
    assert_non_null(strstr(seen, "[2, 3, 6]"));
    assert_null(mha_forward(&m, t_new(T_SHAPE(2, 3, 8)), t_new(T_SHAPE(4, 4))));
    assert_non_null(strstr(seen, "mask"));
    Linear l;
    linear_init(&l, &ps, "fc", 8, 3, true, &r);
    assert_null(linear_forward_add(&l, t_new(T_SHAPE(2, 8)), t_new(T_SHAPE(2, 4))));
    assert_null(mlp_gelu_forward_add(&l, &l, t_new(T_SHAPE(2, 8)), NULL));   /* 8 -> 3 -> (8 -> 3) */
    Embedding e;
    embedding_init(&e, &ps, "emb", 5, 4, &r);
    assert_null(embedding_forward(&e, (const int32_t[]){1, 5}, 1, (const int64_t[]){2}));
    assert_non_null(strstr(seen, "id 5"));
    LayerNorm ln;
    layernorm_init(&ln, &ps, "ln", 4);
    assert_null(layernorm_forward(&ln, t_new(T_SHAPE(3, 5))));
    t_set_error_handler(NULL);
    params_free(&ps);
}

int main(void) {
    t_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_linear, arena_teardown),
        cmocka_unit_test_teardown(test_linear_add_matches_unfused, arena_teardown),
        cmocka_unit_test_teardown(test_layernorm, arena_teardown),
        cmocka_unit_test_teardown(test_embedding, arena_teardown),
        cmocka_unit_test_teardown(test_mha, arena_teardown),
        cmocka_unit_test_teardown(test_mha_causal, arena_teardown),
        cmocka_unit_test_teardown(test_resblock, arena_teardown),
        cmocka_unit_test_teardown(test_stack_with_control, arena_teardown),
        cmocka_unit_test_teardown(test_stack_first_rows_match_full, arena_teardown),
        cmocka_unit_test_teardown(test_lazy_zero_grad, arena_teardown),
        cmocka_unit_test_teardown(test_mlp_gelu_matches_exact, arena_teardown),
        cmocka_unit_test_teardown(test_no_grad_forward, arena_teardown),
        cmocka_unit_test_teardown(test_names_and_init, arena_teardown),
        cmocka_unit_test_teardown(test_errors, arena_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    t_arena_shutdown();
    t_tape_free();
    return rc;
}
