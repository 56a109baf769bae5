#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tensor/tensor.h"
#include "tests/util_check.h"

void check_close(const float *a, const float *b, int64_t n, double atol, double rtol, const char *what) {
    int64_t worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim) && (worst < 0 || d - lim > worst_excess || isnan(d))) {
            worst = i;
            worst_excess = isnan(d) ? INFINITY : d - lim;
        }
    }
    if (worst >= 0)
        fail_msg("%s: mismatch at %lld of %lld: got %.9g, expected %.9g (atol %g, rtol %g)", what,
                 (long long)worst, (long long)n, a[worst], b[worst], atol, rtol);
}

void check_tensor_close(const Tensor *a, const float *expect, double atol, double rtol, const char *what) {
    assert_non_null(a);
    int64_t n = t_numel(a);
    float *buf = malloc(sizeof(float) * (size_t)(n ? n : 1));
    t_copy_to(a, buf);
    check_close(buf, expect, n, atol, rtol, what);
    free(buf);
}

bool close_enough(double got, double want, double atol, double rtol) {
    return isfinite(got) && isfinite(want) && fabs(got - want) <= atol + rtol * fabs(want);
}

double worst_of(double m, double x) { return isnan(m) || isnan(x) ? NAN : x > m ? x : m; }

bool float_equal_finite(float a, float b, float eps) {
    if (!isfinite(a) || !isfinite(b)) return false;
    float d = fabsf(a - b), larger = fabsf(a) > fabsf(b) ? fabsf(a) : fabsf(b);
    return d <= eps || d <= larger * FLT_EPSILON;
}

static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fill_uniform(Tensor *t, uint64_t seed, float lo, float hi) {
    uint64_t s = seed * 7919 + 1;
    int64_t n = t_numel(t);
    for (int64_t i = 0; i < n; i++) t->data[i] = lo + (hi - lo) * (float)((mix(&s) >> 40) * (1.0 / 16777216.0));
}

static double eval_dot(GradFn f, Tensor **inputs, void *ctx, const float *r, int64_t n_out) {
    size_t mark = t_arena_mark();
    bool prev = t_set_grad_enabled(false);
    Tensor *y = f(inputs, ctx);
    t_set_grad_enabled(prev);
    assert_non_null(y);
    assert_int_equal(t_numel(y), n_out);
    float *buf = malloc(sizeof(float) * (size_t)n_out);
    t_copy_to(y, buf);
    double s = 0;
    for (int64_t i = 0; i < n_out; i++) s += (double)r[i] * buf[i];
    free(buf);
    t_arena_release(mark);
    return s;
}

int gradcheck(GradFn f, int n_inputs, Tensor **inputs, void *ctx, float eps, double atol, double rtol,
               int max_checks, const char *what) {
    for (int i = 0; i < n_inputs; i++) {
        inputs[i]->grad = NULL;
        inputs[i]->requires_grad = true;
    }
    Tensor *y = f(inputs, ctx);
    assert_non_null(y);
    int64_t n_out = t_numel(y);
    float *r = malloc(sizeof(float) * (size_t)(n_out ? n_out : 1));
    uint64_t s = 12345;
    for (int64_t i = 0; i < n_out; i++) r[i] = (float)((mix(&s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    t_backward_with(y, r);
    int checked = 0;
    for (int i = 0; i < n_inputs; i++) {
        Tensor *x = inputs[i];
        int64_t n = t_numel(x);
        float *g = x->grad;
        assert_non_null(g);
        int64_t step = n > max_checks ? n / max_checks : 1;
        for (int64_t j = 0; j < n; j += step, checked++) {
            float keep = x->data[j];
            x->data[j] = keep + eps;
            double fp = eval_dot(f, inputs, ctx, r, n_out);
            x->data[j] = keep - eps;
            double fm = eval_dot(f, inputs, ctx, r, n_out);
            x->data[j] = keep;
            double num = (fp - fm) / (2.0 * eps);
            double d = fabs(num - g[j]);
            if (!(d <= atol + rtol * fabs(num))) {
                free(r);
                fail_msg("%s: gradient of input %d at %lld: autograd %.7g, finite difference %.7g", what, i,
                         (long long)j, g[j], num);
            }
        }
    }
    free(r);
    return checked;
}

/* ------------------------------------------------------------------ fixtures */

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n ? 0 : -1; }

bool fixture_load(Fixture *fx, const char *file) {
    memset(fx, 0, sizeof *fx);
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/%s", file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail_msg("fixture %s is missing (run tests/reference/ scripts)", path);
        return false;
    }
    char magic[4];
    uint32_t version, count;
    if (rd(f, magic, 4) || memcmp(magic, "DCFX", 4) || rd(f, &version, 4) || version != 1 || rd(f, &count, 4) ||
        count > 100000) {
        fclose(f);
        fail_msg("fixture %s: bad header", path);
        return false;
    }
    fx->count = (int)count;
    fx->names = calloc(count, sizeof(char *));
    fx->ndim = calloc(count, sizeof(int));
    fx->shape = calloc(count, sizeof *fx->shape);
    fx->data = calloc(count, sizeof(float *));
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len, nd;
        if (rd(f, &len, 4) || len > 4096) goto bad;
        fx->names[i] = calloc(1, len + 1);
        if (rd(f, fx->names[i], len) || rd(f, &nd, 4) || nd > T_MAX_DIMS) goto bad;
        fx->ndim[i] = (int)nd;
        int64_t n = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if (rd(f, &fx->shape[i][d], 8) || fx->shape[i][d] < 0) goto bad;
            n *= fx->shape[i][d];
        }
        if (n > ((int64_t)1 << 28)) goto bad;
        fx->data[i] = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (rd(f, fx->data[i], sizeof(float) * (size_t)n)) goto bad;
    }
    fclose(f);
    return true;
bad:
    fclose(f);
    fixture_free(fx);
    fail_msg("fixture %s: truncated or corrupt", path);
    return false;
}

void fixture_free(Fixture *fx) {
    for (int i = 0; i < fx->count; i++) {
        if (fx->names) free(fx->names[i]);
        if (fx->data) free(fx->data[i]);
    }
    free(fx->names);
    free(fx->ndim);
    free(fx->shape);
    free(fx->data);
    memset(fx, 0, sizeof *fx);
}

static int find(const Fixture *fx, const char *name) {
    for (int i = 0; i < fx->count; i++)
        if (!strcmp(fx->names[i], name)) return i;
    fail_msg("fixture has no array named '%s'", name);
    return -1;
}

float *fixture_get(const Fixture *fx, const char *name, int64_t *n) {
    int i = find(fx, name);
    if (n) {
        *n = 1;
        for (int d = 0; d < fx->ndim[i]; d++) *n *= fx->shape[i][d];
    }
    return fx->data[i];
}

Tensor *fixture_tensor(const Fixture *fx, const char *name) {
    int i = find(fx, name);
    return t_from(fx->ndim[i], fx->shape[i], fx->data[i]);
}

Tensor *rand_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi) {
    Tensor *t = t_new(ndim, shape);
    fill_uniform(t, seed, lo, hi);
    return t;
}

int arena_teardown(void **state) {
    (void)state;
    t_arena_reset();
    return 0;
}

static char g_error_seen[512];
void error_record(const char *msg) {
    strncpy(g_error_seen, msg, sizeof g_error_seen - 1);
    g_error_seen[sizeof g_error_seen - 1] = '\0';
}
const char *error_seen(void) { return g_error_seen; }
