/* IR-SDE schedule, marginal, reverse steps and training loss (reference §4). The schedule is built in
 * float32 with the operation order of the official torch code (each op rounds to float), so the arrays
 * match the PyTorch ones to a few ulp rather than differing by float32-vs-float64 cancellation, which at
 * small t (1 − e^{−2θ̄dt} ≈ 1e-3) is visible in the 5th digit. */
#include "irsde/sde.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

#define IRSDE_MAX_STEPS 100000
#define IRSDE_PAR_MIN 65536   /* elements before an elementwise step is worth threads */

IrSdeOptions irsde_options_default(void) {
    return (IrSdeOptions){IRSDE_COSINE, 50.0, 100, 100, 0.005};
}

static const char *const schedule_names[] = {"cosine", "linear", "constant"};

int irsde_schedule_parse(const char *name, IrSdeSchedule *out) {
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, schedule_names[i])) {
            *out = (IrSdeSchedule)i;
            return 0;
        }
    return -1;
}

const char *irsde_schedule_name(IrSdeSchedule s) {
    return (unsigned)s < 3 ? schedule_names[s] : "?";
}

/* cosine_theta_schedule: ᾱ(x) = cos(((x/K) + s)/(1 + s)·π/2)² over x = 0..K, K = n + 2, normalised by ᾱ(0);
 * θ = 1 − ᾱ[1 .. K−1]  (n + 1 values). */
static void cosine_thetas(float *theta, int n) {
    int K = n + 2;
    float a0 = 0;
    for (int i = 0; i <= K - 1; i++) {
        float v = (float)i / (float)K;   /* linspace(0, K, K+1) is exact on integers */
        v = (v + 0.008f) / 1.008f * (float)M_PI * 0.5f;
        float c = cosf(v);
        float ac = c * c;
        if (i == 0) a0 = ac;
        else theta[i - 1] = 1.0f - ac / a0;
    }
}

/* linear_theta_schedule: linspace(β0, β1, n + 1) with β = (1000/(n+1))·{1e-4, 2e-2}, as torch's float
 * linspace evaluates it (from the start for the first half, from the end for the second). */
static void linear_thetas(float *theta, int n) {
    double scale = 1000.0 / (n + 1);
    float start = (float)(scale * 0.0001), end = (float)(scale * 0.02);
    int64_t steps = n + 1, half = steps / 2;
    float step = steps > 1 ? (end - start) / (float)(steps - 1) : 0.0f;
    for (int64_t i = 0; i < steps; i++)
        theta[i] = i < half ? start + step * (float)i : end - step * (float)(steps - i - 1);
}

static int check_options(const IrSdeOptions *o) {
    if ((unsigned)o->schedule > IRSDE_CONSTANT) {
        t_set_errmsg("irsde: unknown schedule %d (cosine, linear or constant)", (int)o->schedule);
        return -1;
    }
    if (!(o->max_sigma > 0 && o->max_sigma <= 1000)) {
        t_set_errmsg("irsde: max_sigma %g outside (0, 1000] (values >= 1 are divided by 255)", o->max_sigma);
        return -1;
    }
    if (o->T < 1 || o->T > IRSDE_MAX_STEPS) {
        t_set_errmsg("irsde: T %d outside 1..%d", o->T, IRSDE_MAX_STEPS);
        return -1;
    }
    if (o->sample_T > IRSDE_MAX_STEPS) {
        t_set_errmsg("irsde: sample_T %d above %d", o->sample_T, IRSDE_MAX_STEPS);
        return -1;
    }
    if (!(o->eps > 0 && o->eps < 1)) {
        t_set_errmsg("irsde: eps %g outside (0, 1)", o->eps);
        return -1;
    }
    return 0;
}

int irsde_init(IrSde *s, const IrSdeOptions *o) {
    memset(s, 0, sizeof *s);
    if (check_options(o)) return -1;
    s->opt = *o;
    int n = o->sample_T > 0 ? o->sample_T : o->T;
    s->opt.sample_T = n;
    s->steps = n;
    s->time_scale = (double)o->T / n;
    s->lambda = (float)(o->max_sigma >= 1 ? o->max_sigma / 255.0 : o->max_sigma);
    size_t len = (size_t)n + 1;
    float **arrays[] = {&s->theta, &s->sigma, &s->theta_bar, &s->sigma_bar, &s->decay,
                        &s->growth, &s->term1, &s->term2, &s->post_std};
    size_t count = sizeof arrays / sizeof arrays[0];
    if (!(s->block = calloc(count * len, sizeof(float)))) {
        t_set_errmsg("irsde: out of memory for %d steps", n);
        return -1;
    }
    for (size_t i = 0; i < count; i++) *arrays[i] = s->block + i * len;

    if (o->schedule == IRSDE_COSINE) cosine_thetas(s->theta, n);
    else if (o->schedule == IRSDE_LINEAR) linear_thetas(s->theta, n);
    else
        for (int i = 0; i <= n; i++) s->theta[i] = 1.0f;

    /* torch scalars meet float tensors as float: λ²·2 and λ² are rounded once */
    double lam = o->max_sigma >= 1 ? o->max_sigma / 255.0 : o->max_sigma;
    float two_lam2 = (float)(lam * lam * 2), lam2 = (float)(lam * lam);
    double acc = 0;   /* torch's CPU cumsum accumulates float in double */
    for (int i = 0; i <= n; i++) {
        s->sigma[i] = sqrtf(two_lam2 * s->theta[i]);
        acc += s->theta[i];
        s->theta_bar[i] = (float)acc - s->theta[0];
    }
    s->dt = 1.0f / s->theta_bar[n] * -1.0f * (float)log(o->eps);   /* −1/θ̄_T·ln(eps): reciprocal, then products */
    float dt = s->dt, std_floor = 1e-20f * dt;
    for (int i = 0; i <= n; i++) {
        s->sigma_bar[i] = sqrtf(lam2 * (1.0f - expf(-2.0f * s->theta_bar[i] * dt)));
        s->decay[i] = expf(-s->theta_bar[i] * dt);
        s->growth[i] = expf(s->theta_bar[i] * dt);
    }
    for (int t = 1; t <= n; t++) {
        float A = expf(-s->theta[t] * dt), B = s->decay[t], C = s->decay[t - 1];
        s->term1[t] = A * (1.0f - C * C) / (1.0f - B * B);
        s->term2[t] = C * (1.0f - A * A) / (1.0f - B * B);
        /* reverse_optimum_std squares inside the exponent: e^{−2θdt}, not (e^{−θdt})² */
        float a2 = expf(-2.0f * s->theta[t] * dt), b2 = expf(-2.0f * s->theta_bar[t] * dt),
              c2 = expf(-2.0f * s->theta_bar[t - 1] * dt);
        float var = (1.0f - a2) * (1.0f - c2) / (1.0f - b2);
        s->post_std[t] = expf(0.5f * logf(var > std_floor ? var : std_floor)) * s->lambda;
    }
    return 0;
}

void irsde_free(IrSde *s) {
    free(s->block);
    memset(s, 0, sizeof *s);
}

float irsde_time_input(const IrSde *s, int t) {
    return (float)((double)t * s->time_scale);
}

int irsde_random_t(const IrSde *s, TRng *rng) {
    int t = 1 + (int)(rng_uniform(rng) * (float)s->steps);
    return t > s->steps ? s->steps : t;
}

float irsde_posterior_std(const IrSde *s, int t) {
    return t >= 1 && t <= s->steps ? s->post_std[t] : 0.0f;
}

/* ---------------------------------------------------------------- elementwise steps */

static int check_t(const IrSde *s, const char *fn, const int *t, int64_t B) {
    for (int64_t b = 0; b < B; b++)
        if (t[b] < 1 || t[b] > s->steps) {
            t_set_errmsg("%s: t[%lld] = %d outside 1..%d", fn, (long long)b, t[b], s->steps);
            return -1;
        }
    return 0;
}

/* The caller's noise, or `count` standard normals drawn from rng into *owned (freed by the caller). */
static const float *noise_or_draw(const char *fn, const float *noise, TRng *rng, int64_t count, float **owned) {
    *owned = NULL;
    if (noise) return noise;
    if (!rng) {
        t_set_errmsg("%s: neither noise nor an rng given", fn);
        return NULL;
    }
    if (!(*owned = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1)))) {
        t_set_errmsg("%s: out of memory", fn);
        return NULL;
    }
    for (int64_t i = 0; i < count; i++) (*owned)[i] = rng_normal(rng);
    return *owned;
}

int irsde_marginal(const IrSde *s, float *xt, const float *x0, const float *mu, const int *t, int64_t B, int64_t n,
                   const float *noise, TRng *rng) {
    float *owned;
    if (check_t(s, "irsde_marginal", t, B)) return -1;
    const float *z = noise_or_draw("irsde_marginal", noise, rng, B * n, &owned);
    if (!z) return -1;
    for (int64_t b = 0; b < B; b++) {
        float d = s->decay[t[b]], sb = s->sigma_bar[t[b]];
        int64_t o = b * n;
#pragma omp parallel for if (n > IRSDE_PAR_MIN) schedule(static)
        for (int64_t i = o; i < o + n; i++) {
            float mean = mu[i] + (x0[i] - mu[i]) * d;
            xt[i] = z[i] * sb + mean;
        }
    }
    free(owned);
    return 0;
}

int irsde_noise_state(const IrSde *s, float *x, const float *mu, int64_t count, const float *noise, TRng *rng) {
    float *owned;
    const float *z = noise_or_draw("irsde_noise_state", noise, rng, count, &owned);
    if (!z) return -1;
    float lam = s->lambda;
#pragma omp parallel for if (count > IRSDE_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < count; i++) x[i] = mu[i] + z[i] * lam;
    free(owned);
    return 0;
}

/* (x_t − μ − σ̄·ε̂)·e^{θ̄dt} + μ, as get_init_state_from_noise orders it */
static inline float x0_hat(float x, float m, float e, float sb, float g) {
    return (x - m - sb * e) * g + m;
}

int irsde_x0_from_noise(const IrSde *s, float *x0, const float *xt, const float *mu, const float *eps_hat,
                        const int *t, int64_t B, int64_t n) {
    if (check_t(s, "irsde_x0_from_noise", t, B)) return -1;
    for (int64_t b = 0; b < B; b++) {
        float sb = s->sigma_bar[t[b]], g = s->growth[t[b]];
        int64_t o = b * n;
#pragma omp parallel for if (n > IRSDE_PAR_MIN) schedule(static)
        for (int64_t i = o; i < o + n; i++) x0[i] = x0_hat(xt[i], mu[i], eps_hat[i], sb, g);
    }
    return 0;
}

int irsde_posterior_mean(const IrSde *s, float *out, const float *xt, const float *x0, const float *mu, const int *t,
                         int64_t B, int64_t n) {
    if (check_t(s, "irsde_posterior_mean", t, B)) return -1;
    for (int64_t b = 0; b < B; b++) {
        float c1 = s->term1[t[b]], c2 = s->term2[t[b]];
        int64_t o = b * n;
#pragma omp parallel for if (n > IRSDE_PAR_MIN) schedule(static)
        for (int64_t i = o; i < o + n; i++) out[i] = c1 * (xt[i] - mu[i]) + c2 * (x0[i] - mu[i]) + mu[i];
    }
    return 0;
}

int irsde_posterior_step(const IrSde *s, float *out, const float *xt, const float *mu, const float *eps_hat,
                         const int *t, int64_t B, int64_t n, const float *noise, TRng *rng) {
    float *owned;
    if (check_t(s, "irsde_posterior_step", t, B)) return -1;
    const float *z = noise_or_draw("irsde_posterior_step", noise, rng, B * n, &owned);
    if (!z) return -1;
    for (int64_t b = 0; b < B; b++) {
        int tb = t[b];
        float sb = s->sigma_bar[tb], g = s->growth[tb], c1 = s->term1[tb], c2 = s->term2[tb], sd = s->post_std[tb];
        int64_t o = b * n;
#pragma omp parallel for if (n > IRSDE_PAR_MIN) schedule(static)
        for (int64_t i = o; i < o + n; i++) {
            float m = mu[i], x0 = x0_hat(xt[i], m, eps_hat[i], sb, g);
            float mean = c1 * (xt[i] - m) + c2 * (x0 - m) + m;
            out[i] = mean + sd * z[i];
        }
    }
    free(owned);
    return 0;
}

int irsde_sde_step(const IrSde *s, float *out, const float *xt, const float *mu, const float *eps_hat, const int *t,
                   int64_t B, int64_t n, const float *noise, TRng *rng) {
    float *owned;
    if (check_t(s, "irsde_sde_step", t, B)) return -1;
    const float *z = noise_or_draw("irsde_sde_step", noise, rng, B * n, &owned);
    if (!z) return -1;
    float dt = s->dt, sqrt_dt = (float)sqrt((double)s->dt);
    for (int64_t b = 0; b < B; b++) {
        int tb = t[b];
        float th = s->theta[tb], sg = s->sigma[tb], sg2 = sg * sg, sb = s->sigma_bar[tb];
        int64_t o = b * n;
#pragma omp parallel for if (n > IRSDE_PAR_MIN) schedule(static)
        for (int64_t i = o; i < o + n; i++) {
            float x = xt[i], score = -eps_hat[i] / sb;
            float drift = (th * (mu[i] - x) - sg2 * score) * dt;
            out[i] = x - drift - sg * (z[i] * sqrt_dt);
        }
    }
    free(owned);
    return 0;
}

/* ---------------------------------------------------------------- loss */

Tensor *irsde_loss(const IrSde *s, Tensor *eps_hat, Tensor *xt, Tensor *mu, Tensor *x0, const int *t) {
    if (!eps_hat || !xt || !mu || !x0) return NULL;
    char a[96], b[96];
    if (!t_same_shape(eps_hat, xt) || !t_same_shape(eps_hat, mu) || !t_same_shape(eps_hat, x0) || eps_hat->ndim < 1) {
        t_error("irsde_loss", "eps_hat %s, x_t/mu/x0 must have its shape (x_t %s)",
                t_shape_str(eps_hat, a, sizeof a), t_shape_str(xt, b, sizeof b));
        return NULL;
    }
    int64_t B = eps_hat->shape[0], n = B ? t_numel(eps_hat) / B : 0;
    if (check_t(s, "irsde_loss", t, B)) {
        t_error("irsde_loss", "%s", t_errmsg());
        return NULL;
    }
    /* x_t − pred = (θ_t(μ − x_t) + k·ε̂)·dt with k = σ_t²/σ̄_t, so pred − target = a − k·dt·ε̂ with the
     * constant a = x_t − θ_t(μ − x_t)dt − posterior_mean(x_t, x0): the loss is mean|kdt·ε̂ − a|. */
    Tensor *ac = t_new(eps_hat->ndim, eps_hat->shape);
    if (!ac) return NULL;
    int64_t kshape[T_MAX_DIMS];
    for (int d = 0; d < eps_hat->ndim; d++) kshape[d] = d ? 1 : B;
    Tensor *k = t_new(eps_hat->ndim, kshape);
    if (!k) return NULL;
    const float *X = t_contiguous(xt)->data, *M = t_contiguous(mu)->data, *G = t_contiguous(x0)->data;
    float dt = s->dt;
    for (int64_t bi = 0; bi < B; bi++) {
        int tb = t[bi];
        float th = s->theta[tb], sg = s->sigma[tb], c1 = s->term1[tb], c2 = s->term2[tb];
        k->data[bi] = sg * sg / s->sigma_bar[tb] * dt;
        for (int64_t i = bi * n; i < (bi + 1) * n; i++) {
            float target = c1 * (X[i] - M[i]) + c2 * (G[i] - M[i]) + M[i];
            ac->data[i] = X[i] - th * (M[i] - X[i]) * dt - target;
        }
    }
    return t_l1_loss(t_mul(eps_hat, k), ac);
}
