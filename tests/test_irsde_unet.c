/* ConditionalUNet (irsde/unet.h) against tests/reference/gen_irsde.py, a PyTorch model with the official
 * module structure and names evaluated in float64.
 *   - Two small configs: "ctx" (nf 8, ch_mult 1,1,4,4, context 16, prompt and content on: SpatialTransformers
 *     at down/up level 3 and mid; 13×10 padded to 16×16, B 2) and "plain" (nf 8, ch_mult 1,2, no context;
 *     11×6 padded to 12×8). Parameters are derived from their names by a hash both sides implement (so the
 *     fixtures stay small); every parameter of ours must have a gradient entry in the fixture and vice versa
 *     (the names match exactly).
 *   - Tolerances ("1e-4 relative", normwise per tensor): the output and every input gradient within
 *     1e-4·max|ref| + 1e-4·|ref| elementwise. Every parameter gradient: whole when it has <= 400 values,
 *     otherwise at 96 hashed positions, both within 1e-4·max|ref| + 1e-4·|ref|; plus, over ALL its values,
 *     two random ±1 projections within 1e-4·Σ|ref|, and Σ|g| and max|g| within 1e-4 relative.
 *   - The universal config: 224 tensors, 48,975,747 values, names and shapes in state_dict order equal the
 *     list generated from the PyTorch model (tests/fixtures/irsde_unet_universal_names.txt).
 *   - Config JSON round trip, and bad configs / inputs / files give clear errors, never a crash.
 *   - The IR-SDE loss on the network's output reaches every parameter through the tape.
 *   - irsde_sample equals the sampling loop written out, in both modes, and releases its memory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "irsde/sample.h"
#include "irsde/sde.h"
#include "irsde/unet.h"
#include "nn/module.h"
#include "tensor/ops.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "tests/util_check.h"
#include "tests/util_tmpdir.h"

#define RTOL 1e-4

/* ---------------------------------------------------------------- gen_irsde.py's hashes */

static uint64_t name_seed(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;   /* FNV-1a 64 */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

static double hash_unit(uint64_t seed, int64_t i) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 40) / 16777216.0;
}

/* gen_irsde.py param_value: norm gains 1 ± 0.1, norm biases ± 0.1, other biases ± 0.3, weights
 * ± 1/sqrt(fan_in), prompt U[0,1). */
static void fill_param(const char *name, Tensor *t) {
    const char *last = strrchr(name, '.'), *owner = name;
    if (last)
        for (const char *p = name; p < last; p++)
            if (*p == '.') owner = p + 1;
    size_t owner_len = last ? (size_t)(last - owner) : 0;
    bool is_norm = owner_len >= 4 && !strncmp(owner, "norm", 4);
    const char *leaf = last ? last + 1 : name;
    int64_t n = t_numel(t);
    uint64_t seed = name_seed(name);
    for (int64_t i = 0; i < n; i++) {
        double u = hash_unit(seed, i), v = 2 * u - 1, x;
        if (!strcmp(name, "prompt")) x = u;
        else if (!strcmp(leaf, "g") || (is_norm && !strcmp(leaf, "weight"))) x = 1 + 0.1 * v;
        else if (is_norm && !strcmp(leaf, "bias")) x = 0.1 * v;
        else if (t->ndim >= 2) x = v / sqrt((double)n / (double)t->shape[0]);
        else x = 0.3 * v;
        t->data[i] = (float)x;
    }
}

#define N_SAMPLES 96

static int64_t probe_index(const char *name, int j, int64_t n) {
    int64_t k = (int64_t)(hash_unit(name_seed(name) ^ 0x5A5A5A5A5A5A5A5Aull, j) * (double)n);
    return k < n - 1 ? k : n - 1;
}

static double probe_sign(const char *name, int k, int64_t i) {
    return hash_unit(name_seed(name) + 0x1000003ull * (uint64_t)(k + 1), i) < 0.5 ? -1.0 : 1.0;
}

/* ---------------------------------------------------------------- helpers */

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* |a − ref| <= rtol·(max|ref| + |ref|) elementwise; returns the worst |a − ref| / max|ref|. */
static double check_normwise(const float *a, const float *ref, int64_t n, double scale, const char *what) {
    double worst = 0;
    check_close(a, ref, n, RTOL * scale, RTOL, what);
    for (int64_t i = 0; i < n; i++) worst = worst_of(worst, fabs((double)a[i] - ref[i]) / (scale > 0 ? scale : 1));
    return worst;
}

static bool fixture_has(const Fixture *fx, const char *name) {
    for (int i = 0; i < fx->count; i++)
        if (!strcmp(fx->names[i], name)) return true;
    return false;
}

static int fixture_count_prefix(const Fixture *fx, const char *prefix) {
    int n = 0;
    for (int i = 0; i < fx->count; i++) n += !strncmp(fx->names[i], prefix, strlen(prefix));
    return n;
}

/* One parameter's gradient against the fixture (whole, or sampled + probes). Returns the worst normwise
 * error seen. */
static double check_param_grad(const Fixture *fx, const Param *p) {
    char key[512], what[600];
    int64_t n = t_numel(p->t);
    const float *g = p->t->grad;
    float *zeros = NULL;
    if (!g) g = zeros = calloc((size_t)n, sizeof(float));   /* not reached by backward: exactly zero */
    double worst;
    snprintf(key, sizeof key, "grad.%s", p->name);
    snprintf(what, sizeof what, "d/d %s", p->name);
    if (fixture_has(fx, key)) {
        int64_t m;
        const float *ref = fixture_get(fx, key, &m);
        assert_int_equal(m, n);
        worst = check_normwise(g, ref, n, max_abs(ref, n), what);
    } else {
        snprintf(key, sizeof key, "gsamp.%s", p->name);
        const float *samp = fixture_get(fx, key, NULL);
        snprintf(key, sizeof key, "gprobe.%s", p->name);
        const float *probe = fixture_get(fx, key, NULL);   /* proj0, proj1, Σ|g|, max|g| */
        float ours[N_SAMPLES];
        for (int j = 0; j < N_SAMPLES; j++) ours[j] = g[probe_index(p->name, j, n)];
        worst = check_normwise(ours, samp, N_SAMPLES, probe[3], what);
        double proj[2] = {0, 0}, l1 = 0, mx = 0;
        for (int64_t i = 0; i < n; i++) {
            proj[0] += probe_sign(p->name, 0, i) * g[i];
            proj[1] += probe_sign(p->name, 1, i) * g[i];
            l1 += fabs(g[i]);
            mx = worst_of(mx, fabs(g[i]));
        }
        for (int k = 0; k < 2; k++)
            if (!(fabs(proj[k] - probe[k]) <= RTOL * probe[2]))
                fail_msg("%s: projection %d is %.9g, expected %.9g (tolerance %.3g)", what, k, proj[k], probe[k],
                         RTOL * probe[2]);
        if (!(fabs(l1 - probe[2]) <= RTOL * probe[2]) || !(fabs(mx - probe[3]) <= RTOL * probe[3]))
            fail_msg("%s: sum |g| %.9g (expected %.9g), max |g| %.9g (expected %.9g)", what, l1, probe[2], mx, probe[3]);
        worst = worst_of(worst, fabs(proj[0] - probe[0]) / fmax(probe[2], 1e-30));
    }
    free(zeros);
    return worst;
}

static Tensor *input_leaf(const Fixture *fx, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "input.%s", name);
    Tensor *t = fixture_tensor(fx, key);
    t_requires_grad(t);
    return t;
}

/* Field by field (the struct has padding). */
static void assert_config_equal(const UNetConfig *a, const UNetConfig *b) {
    assert_int_equal(a->in_nc, b->in_nc);
    assert_int_equal(a->out_nc, b->out_nc);
    assert_int_equal(a->nf, b->nf);
    assert_int_equal(a->depth, b->depth);
    for (int i = 0; i < a->depth; i++) assert_int_equal(a->ch_mult[i], b->ch_mult[i]);
    assert_int_equal(a->context_dim, b->context_dim);
    assert_int_equal(a->use_degra_context, b->use_degra_context);
    assert_int_equal(a->use_image_context, b->use_image_context);
}

/* A model with PyTorch-style random init into a fresh ParamSet. */
static void build_model(ConditionalUNet *u, ParamSet *ps, const UNetConfig *c) {
    TRng rng;
    rng_seed(&rng, 5);
    params_init(ps);
    assert_int_equal(unet_init(u, ps, "", c, &rng), 0);
}

/* ---------------------------------------------------------------- forward and gradients vs PyTorch */

static void run_reference_case(const char *file, const UNetConfig *expect) {
    Fixture fx;
    if (!fixture_load(&fx, file)) return;
    int64_t nc;
    const float *c = fixture_get(&fx, "config", &nc);
    UNetConfig cfg = {.in_nc = (int)c[0], .out_nc = (int)c[1], .nf = (int)c[2], .context_dim = (int)c[3],
                      .use_degra_context = c[4] != 0, .use_image_context = c[5] != 0, .depth = (int)nc - 6};
    for (int i = 0; i < cfg.depth; i++) cfg.ch_mult[i] = (int)c[6 + i];
    assert_config_equal(&cfg, expect);

    ParamSet ps;
    ConditionalUNet u;
    build_model(&u, &ps, &cfg);
    for (int i = 0; i < ps.n; i++) fill_param(ps.items[i].name, ps.items[i].t);
    params_zero_grad(&ps);
    /* the names match exactly: each of ours has a gradient entry, and there are no others */
    int with_entry = 0;
    for (int i = 0; i < ps.n; i++) {
        char k1[512], k2[512];
        snprintf(k1, sizeof k1, "grad.%s", ps.items[i].name);
        snprintf(k2, sizeof k2, "gsamp.%s", ps.items[i].name);
        if (fixture_has(&fx, k1) || fixture_has(&fx, k2)) with_entry++;
        else fail_msg("%s: parameter %s is not in the PyTorch model", file, ps.items[i].name);
    }
    assert_int_equal(with_entry, ps.n);
    assert_int_equal(fixture_count_prefix(&fx, "grad.") + fixture_count_prefix(&fx, "gsamp."), ps.n);

    Tensor *xt = input_leaf(&fx, "xt"), *cond = input_leaf(&fx, "cond"), *degra = input_leaf(&fx, "degra"),
           *content = input_leaf(&fx, "content");
    const float *time = fixture_get(&fx, "input.time", NULL);
    Tensor *out = unet_forward(&u, xt, cond, time, cfg.use_degra_context ? degra : NULL,
                               cfg.use_image_context ? content : NULL);
    assert_non_null(out);
    int64_t n;
    const float *ref = fixture_get(&fx, "out", &n);
    assert_int_equal(t_numel(out), n);
    assert_int_equal(out->shape[2], xt->shape[2]);
    assert_int_equal(out->shape[3], xt->shape[3]);
    double w_out = check_normwise(out->data, ref, n, max_abs(ref, n), "output");

    t_backward_with(out, fixture_get(&fx, "dout", NULL));
    double w_in = 0;
    Tensor *ins[4] = {xt, cond, degra, content};
    const char *in_names[4] = {"xt", "cond", "degra", "content"};
    for (int k = 0; k < 4; k++) {
        char key[64];
        snprintf(key, sizeof key, "grad_in.%s", in_names[k]);
        if (!fixture_has(&fx, key)) {
            assert_null(ins[k]->grad);   /* an input the model ignores */
            continue;
        }
        int64_t m;
        const float *g = fixture_get(&fx, key, &m);
        assert_non_null(ins[k]->grad);
        w_in = worst_of(w_in, check_normwise(ins[k]->grad, g, m, max_abs(g, m), key));
    }
    double w_par = 0;
    for (int i = 0; i < ps.n; i++) w_par = worst_of(w_par, check_param_grad(&fx, &ps.items[i]));
    print_message("%s: %d tensors, %lld values; worst error / max|ref|: output %.2g, input grads %.2g, "
                  "parameter grads %.2g\n",
                  file, ps.n, (long long)params_count(&ps, "", false), w_out, w_in, w_par);
    params_free(&ps);
    fixture_free(&fx);
    t_arena_reset();
}

static void test_ctx_config_matches_pytorch(void **state) {
    (void)state;
    UNetConfig expect = {3, 3, 8, 4, {1, 1, 4, 4}, 16, true, true};
    run_reference_case("irsde_unet_ctx.bin", &expect);
}

static void test_plain_config_matches_pytorch(void **state) {
    (void)state;
    UNetConfig expect = {3, 3, 8, 2, {1, 2}, 16, false, false};
    run_reference_case("irsde_unet_plain.bin", &expect);
}

/* ---------------------------------------------------------------- the universal config */

static void test_universal_names_and_count(void **state) {
    (void)state;
    FILE *f = fopen("tests/fixtures/irsde_unet_universal_names.txt", "r");
    assert_non_null(f);
    UNetConfig cfg;
    assert_int_equal(unet_config_preset("universal", &cfg), 0);
    ParamSet ps;
    ConditionalUNet u;
    build_model(&u, &ps, &cfg);
    assert_int_equal(ps.n, 224);
    assert_int_equal(params_count(&ps, "", false), 48975747);
    char line[512];
    int i = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char name[400], dims[100];
        assert_int_equal(sscanf(line, "%399s %99s", name, dims), 2);
        assert_true(i < ps.n);
        if (strcmp(ps.items[i].name, name)) fail_msg("tensor %d: ours %s, official %s", i, ps.items[i].name, name);
        char ours[100];
        size_t k = 0;
        for (int d = 0; d < ps.items[i].t->ndim; d++)
            k += (size_t)snprintf(ours + k, sizeof ours - k, "%s%lld", d ? "," : "", (long long)ps.items[i].t->shape[d]);
        if (strcmp(ours, dims)) fail_msg("%s: shape %s, official %s", name, ours, dims);
        i++;
    }
    fclose(f);
    assert_int_equal(i, 224);
    /* the prompt is U[0,1) and proj_out starts at zero, as in PyTorch */
    Param *p = params_find(&ps, "prompt");
    assert_non_null(p);
    for (int64_t j = 0; j < t_numel(p->t); j++) assert_true(p->t->data[j] >= 0 && p->t->data[j] < 1);
    p = params_find(&ps, "mid_attn.fn.fn.proj_out.weight");
    assert_non_null(p);
    assert_true(max_abs(p->t->data, t_numel(p->t)) == 0);
    params_free(&ps);
}

static void test_presets(void **state) {
    (void)state;
    const char *names[] = {"universal", "small", "plain"};
    for (int i = 0; i < 3; i++) {
        UNetConfig c;
        assert_int_equal(unet_config_preset(names[i], &c), 0);
        assert_int_equal(unet_config_validate(&c), 0);
    }
    UNetConfig c;
    assert_int_equal(unet_config_preset("huge", &c), -1);
    assert_int_equal(unet_config_preset("small", &c), 0);
    ParamSet ps;
    ConditionalUNet u;
    build_model(&u, &ps, &c);
    print_message("small preset: %d tensors, %lld parameters\n", ps.n, (long long)params_count(&ps, "", false));
    assert_int_equal(ps.n, 224);   /* the same layout as the universal model */
    params_free(&ps);
}

/* ---------------------------------------------------------------- config JSON and errors */

static void test_config_json(void **state) {
    (void)state;
    UNetConfig a, b;
    char buf[512];
    assert_int_equal(unet_config_preset("universal", &a), 0);
    assert_int_equal(unet_config_to_json(&a, buf, sizeof buf), 0);
    assert_string_equal(buf, "{\"format\":\"daclip-irsde-unet\",\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"64\","
                             "\"ch_mult\":\"[1, 2, 4, 8]\",\"context_dim\":\"512\",\"use_degra_context\":\"true\","
                             "\"use_image_context\":\"true\"}");
    assert_int_equal(unet_config_from_json(buf, "m.safetensors", &b), 0);
    assert_config_equal(&a, &b);
    assert_int_equal(unet_config_to_json(&a, buf, 20), -1);
    UNetConfig huge = {3, 3, 64, UNET_MAX_DEPTH, {-2000000000, -2000000000, -2000000000, -2000000000, -2000000000,
                                                  -2000000000, -2000000000, -2000000000}, 512, true, true};
    assert_int_equal(unet_config_to_json(&huge, buf, sizeof buf), 0);   /* no overflow, still parseable text */
    assert_int_equal(unet_config_from_json(buf, "huge", &b), -1);
    /* other spellings, key order, escapes and extra keys */
    assert_int_equal(unet_config_from_json("{ \"step\" : \"7\", \"use_image_context\":\"False\", \"nf\":\"16\","
                                           "\"ch_mult\":\" 1,2 ,\\u0034 \",\"in_nc\":\"1\",\"out_nc\":\"1\","
                                           "\"context_dim\":\"null\",\"use_degra_context\":\"0\"}",
                                           "x", &b),
                     0);
    UNetConfig expect = {1, 1, 16, 3, {1, 2, 4}, 0, false, false};
    assert_config_equal(&b, &expect);

    const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"0\",\"ch_mult\":\"[1,2]\",\"context_dim\":\"512\","
         "\"use_degra_context\":\"true\",\"use_image_context\":\"false\"}", "nf = 0"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"64\",\"ch_mult\":\"[]\",\"context_dim\":\"512\","
         "\"use_degra_context\":\"true\",\"use_image_context\":\"false\"}", "ch_mult"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"99999999999999999999\",\"ch_mult\":\"[1]\",\"context_dim\":\"8\","
         "\"use_degra_context\":\"true\",\"use_image_context\":\"false\"}", "not an integer"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"2000000\",\"ch_mult\":\"[1]\",\"context_dim\":\"8\","
         "\"use_degra_context\":\"true\",\"use_image_context\":\"false\"}", "nf = 2000000"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"64\",\"ch_mult\":\"[1,2,4,1000]\",\"context_dim\":\"8\","
         "\"use_degra_context\":\"true\",\"use_image_context\":\"false\"}", "ch_mult[3] = 1000"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"64\",\"ch_mult\":\"[1,2,4,8]\",\"context_dim\":\"0\","
         "\"use_degra_context\":\"false\",\"use_image_context\":\"true\"}", "use_image_context needs context_dim"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"8\",\"ch_mult\":\"[1,2,2,2]\",\"context_dim\":\"16\","
         "\"use_degra_context\":\"false\",\"use_image_context\":\"true\"}", "multiple of 32"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"7\",\"ch_mult\":\"[1]\",\"context_dim\":\"16\","
         "\"use_degra_context\":\"false\",\"use_image_context\":\"false\"}", "even"},
        {"{\"in_nc\":\"-3\",\"out_nc\":\"3\",\"nf\":\"8\",\"ch_mult\":\"[1]\",\"context_dim\":\"16\","
         "\"use_degra_context\":\"false\",\"use_image_context\":\"false\"}", "in_nc = -3"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"8\",\"ch_mult\":\"[1,1,1,1,1,1,1,1,1]\",\"context_dim\":\"16\","
         "\"use_degra_context\":\"false\",\"use_image_context\":\"false\"}", "ch_mult"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"8\",\"ch_mult\":\"[1]\",\"context_dim\":\"16\","
         "\"use_degra_context\":\"yes\",\"use_image_context\":\"false\"}", "boolean"},
        {"{\"in_nc\":\"3\",\"out_nc\":\"3\",\"nf\":\"8\",\"ch_mult\":\"[1]\",\"context_dim\":\"16\"}",
         "use_degra_context"},
        {"{\"in_nc\":3}", "in_nc"},
        {"{\"in_nc\":\"3\"", "in_nc"},
        {"not json", "in_nc"},
        {"{\"format\":\"daclip-train-state\",\"in_nc\":\"3\"}", "not a U-Net"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(unet_config_from_json(bad[i].json, "bad.safetensors", &b), -1);
        if (!strstr(t_errmsg(), bad[i].msg) || !strstr(t_errmsg(), "bad.safetensors"))
            fail_msg("case %zu: message '%s' lacks '%s' or the file name", i, t_errmsg(), bad[i].msg);
    }
    assert_int_equal(unet_config_from_json(NULL, "none.safetensors", &b), -1);

    /* unet_init refuses an invalid config without touching the ParamSet */
    UNetConfig z = {3, 3, 0, 2, {1, 2}, 512, true, true};
    ParamSet ps;
    params_init(&ps);
    TRng rng;
    rng_seed(&rng, 1);
    ConditionalUNet u;
    assert_int_equal(unet_init(&u, &ps, "", &z, &rng), -1);
    assert_int_equal(ps.n, 0);
    z.nf = 8;
    z.depth = 0;
    assert_int_equal(unet_init(&u, &ps, "", &z, &rng), -1);
    z.depth = UNET_MAX_DEPTH + 1;
    assert_int_equal(unet_init(&u, &ps, "", &z, &rng), -1);
    assert_int_equal(ps.n, 0);
    params_free(&ps);
}

static const char *last_error;
static void record_error(const char *msg) { last_error = msg; }

static void build_tiny(ConditionalUNet *u, ParamSet *ps) {
    UNetConfig c = {3, 3, 8, 4, {1, 1, 4, 4}, 16, true, true};
    build_model(u, ps, &c);
}

/* build_tiny with both contexts and nonzero proj_out: PyTorch's zero init would stop every gradient into
 * the transformer blocks and make the SpatialTransformers identities. */
static void build_tiny_live(ConditionalUNet *u, ParamSet *ps) {
    build_tiny(u, ps);
    for (int i = 0; i < ps->n; i++)
        if (strstr(ps->items[i].name, "proj_out")) fill_param(ps->items[i].name, ps->items[i].t);
}

static void test_forward_bad_inputs(void **state) {
    (void)state;
    ConditionalUNet u;
    ParamSet ps;
    build_tiny(&u, &ps);
    Tensor *x = t_zeros(T_SHAPE(2, 3, 16, 16)), *x1 = t_zeros(T_SHAPE(2, 1, 16, 16)),
           *small = t_zeros(T_SHAPE(2, 3, 8, 16)), *ok_ctx = t_zeros(T_SHAPE(2, 16)),
           *bad_ctx = t_zeros(T_SHAPE(2, 512)), *bad_b = t_zeros(T_SHAPE(3, 16));
    float time[2] = {1, 2};
    t_set_error_handler(record_error);
    struct {
        Tensor *xt, *cond, *d, *c;
        const float *time;
        const char *msg;
    } cases[] = {
        {x, x, ok_ctx, NULL, time, "content embedding"},
        {x, x, bad_ctx, ok_ctx, time, "degradation embedding"},
        {x, x, ok_ctx, bad_b, time, "content embedding"},
        {x1, x1, ok_ctx, ok_ctx, time, "[B, 3, H, W]"},
        {x, x1, ok_ctx, ok_ctx, time, "[B, 3, H, W]"},
        {small, small, ok_ctx, ok_ctx, time, "too small"},
        {x, x, ok_ctx, ok_ctx, NULL, "time"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        last_error = NULL;
        assert_null(unet_forward(&u, cases[i].xt, cases[i].cond, cases[i].time, cases[i].d, cases[i].c));
        assert_non_null(last_error);
        if (!strstr(last_error, cases[i].msg)) fail_msg("case %zu: '%s' lacks '%s'", i, last_error, cases[i].msg);
    }
    t_set_error_handler(NULL);
    /* without a degradation embedding the prompt is skipped (official: text_context None) */
    Tensor *out = unet_forward(&u, x, x, time, NULL, ok_ctx);
    assert_non_null(out);
    params_free(&ps);
    t_arena_reset();
}

/* ---------------------------------------------------------------- model files */

static void test_model_file_roundtrip(void **state) {
    (void)state;
    char dir[256], path[512], path2[512];
    assert_int_equal(test_tmpdir_create(dir, sizeof dir, "unet"), 0);
    snprintf(path, sizeof path, "%s/u.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/mismatch.safetensors", dir);
    ConditionalUNet u, v;
    ParamSet ps, ps2;
    build_tiny(&u, &ps);
    assert_int_equal(unet_save_file(&ps, &u.cfg, path), 0);
    params_init(&ps2);
    assert_int_equal(unet_load_file(path, &v, &ps2), 0);
    assert_config_equal(&u.cfg, &v.cfg);
    assert_int_equal(ps2.n, ps.n);
    for (int i = 0; i < ps.n; i++) {
        assert_string_equal(ps.items[i].name, ps2.items[i].name);
        assert_memory_equal(ps.items[i].t->data, ps2.items[i].t->data, sizeof(float) * (size_t)t_numel(ps.items[i].t));
    }
    params_free(&ps2);

    /* a file whose metadata says something else than its tensors: image context off in the metadata */
    UNetConfig lie = u.cfg;
    lie.use_image_context = false;
    assert_int_equal(unet_save_file(&ps, &lie, path2), 0);
    params_init(&ps2);
    assert_int_equal(unet_load_file(path2, &v, &ps2), -1);
    assert_non_null(strstr(t_errmsg(), path2));
    assert_non_null(strstr(t_errmsg(), "do not match"));
    params_free(&ps2);
    /* a file without U-Net metadata */
    assert_int_equal(params_save_file(&ps, path2, NULL), 0);
    params_init(&ps2);
    assert_int_equal(unet_load_file(path2, &v, &ps2), -1);
    assert_non_null(strstr(t_errmsg(), "no metadata"));
    params_free(&ps2);
    params_init(&ps2);
    snprintf(path2, sizeof path2, "%s/absent.safetensors", dir);
    assert_int_equal(unet_load_file(path2, &v, &ps2), -1);
    assert_non_null(strstr(t_errmsg(), path2));
    params_free(&ps2);
    params_free(&ps);
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* ---------------------------------------------------------------- the training loss reaches the network */

static void test_loss_backward_reaches_unet(void **state) {
    (void)state;
    ConditionalUNet u;
    ParamSet ps;
    build_tiny_live(&u, &ps);
    params_zero_grad(&ps);
    IrSdeOptions o = irsde_options_default();
    IrSde sde;
    assert_int_equal(irsde_init(&sde, &o), 0);
    TRng rng;
    rng_seed(&rng, 9);
    enum { B = 2, H = 12, W = 9, N = 3 * H * W };
    Tensor *gt = t_new(T_SHAPE(B, 3, H, W)), *lq = t_new(T_SHAPE(B, 3, H, W)), *xt = t_new(T_SHAPE(B, 3, H, W));
    t_fill_uniform(gt, &rng, 0, 1);
    t_fill_uniform(lq, &rng, 0, 1);
    int t[B] = {irsde_random_t(&sde, &rng), irsde_random_t(&sde, &rng)};
    assert_int_equal(irsde_marginal(&sde, xt->data, gt->data, lq->data, t, B, N, NULL, &rng), 0);
    float time[B] = {irsde_time_input(&sde, t[0]), irsde_time_input(&sde, t[1])};
    Tensor *d = t_new(T_SHAPE(B, 16)), *c = t_new(T_SHAPE(B, 16));
    t_fill_normal(d, &rng, 0, 1);
    t_fill_normal(c, &rng, 0, 1);
    Tensor *eps = unet_forward(&u, xt, lq, time, d, c);
    Tensor *loss = irsde_loss(&sde, eps, xt, lq, gt, t);
    assert_non_null(loss);
    assert_true(loss->data[0] > 0 && isfinite(loss->data[0]));
    t_backward(loss);
    int nonzero = 0;
    for (int i = 0; i < ps.n; i++) {
        const Param *p = &ps.items[i];
        /* with one context token, attn2's query side and norm2 have exactly zero gradient (as in PyTorch) */
        bool zero_expected = strstr(p->name, "attn2.to_q") || strstr(p->name, "attn2.to_k") ||
                             strstr(p->name, "norm2");
        double m = p->t->grad ? max_abs(p->t->grad, t_numel(p->t)) : 0;
        if (zero_expected) assert_true(m == 0);
        else if (m > 0) nonzero++;
        else fail_msg("no gradient reached %s", p->name);
    }
    assert_true(nonzero > 150);
    irsde_free(&sde);
    params_free(&ps);
    t_arena_reset();
}

/* ---------------------------------------------------------------- the sampler */

/* irsde_sample equals the loop written out (same rng draws), with sample_T = 4 of T = 100, and gives
 * its memory back after each step. */
static void test_sampler_equals_manual_loop(void **state) {
    (void)state;
    ConditionalUNet u;
    ParamSet ps;
    build_tiny_live(&u, &ps);
    IrSdeOptions o = irsde_options_default();
    o.sample_T = 4;
    IrSde sde;
    assert_int_equal(irsde_init(&sde, &o), 0);
    enum { B = 2, H = 13, W = 10, N = 3 * H * W };
    TRng rng;
    rng_seed(&rng, 4);
    Tensor *lq = t_new(T_SHAPE(B, 3, H, W)), *d = t_new(T_SHAPE(B, 16)), *c = t_new(T_SHAPE(B, 16));
    t_fill_uniform(lq, &rng, 0, 1);
    t_fill_normal(d, &rng, 0, 1);
    t_fill_normal(c, &rng, 0, 1);
    float *a = malloc(sizeof(float) * B * N), *b = malloc(sizeof(float) * B * N);
    for (int mode = 0; mode < 2; mode++) {
        TRng r1, r2;
        rng_seed(&r1, 77);
        rng_seed(&r2, 77);
        size_t used = t_arena_used();
        assert_int_equal(irsde_sample(&sde, &u, lq, d, c, (IrSdeSampleMode)mode, &r1, a), 0);
        assert_int_equal(t_arena_used(), used);
        bool grad = t_set_grad_enabled(false);
        assert_int_equal(irsde_noise_state(&sde, b, lq->data, B * N, NULL, &r2), 0);
        for (int step = 4; step >= 1; step--) {
            int t[B] = {step, step};
            float time[B] = {25.0f * step, 25.0f * step};   /* t·T/sample_T */
            Tensor *eps = unet_forward(&u, t_wrap(b, T_SHAPE(B, 3, H, W)), lq, time, d, c);
            assert_non_null(eps);
            if (mode == IRSDE_SAMPLE_SDE)
                assert_int_equal(irsde_sde_step(&sde, b, b, lq->data, eps->data, t, B, N, NULL, &r2), 0);
            else
                assert_int_equal(irsde_posterior_step(&sde, b, b, lq->data, eps->data, t, B, N, NULL, &r2), 0);
        }
        t_set_grad_enabled(grad);
        assert_memory_equal(a, b, sizeof(float) * B * N);
        for (int i = 0; i < B * N; i++) assert_true(isfinite(a[i]));
    }
    /* a U-Net input error comes back as -1 with the reason */
    assert_int_equal(irsde_sample(&sde, &u, lq, d, NULL, IRSDE_SAMPLE_POSTERIOR, &rng, a), -1);
    assert_non_null(strstr(t_errmsg(), "content embedding"));
    free(a);
    free(b);
    irsde_free(&sde);
    params_free(&ps);
    t_arena_reset();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_config_matches_pytorch),
        cmocka_unit_test(test_plain_config_matches_pytorch),
        cmocka_unit_test(test_universal_names_and_count),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_forward_bad_inputs),
        cmocka_unit_test(test_model_file_roundtrip),
        cmocka_unit_test(test_loss_backward_reaches_unet),
        cmocka_unit_test(test_sampler_equals_manual_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
