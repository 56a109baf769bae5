#ifndef DACLIP_IRSDE_SDE_H
#define DACLIP_IRSDE_SDE_H
/* The mean-reverting SDE of IR-SDE (reference §4; daclip-uir utils/sde_utils.py:IRSDE):
 *   dx = θ_t (μ − x) dt + σ_t dw,   μ = the degraded (LQ) image, x_0 = the clean (GT) image, both RGB in [0, 1].
 * Steps t = 1..steps; state 0 only appears as t − 1.
 *
 * The schedule arrays are float32 and built with the official float32 operation order (cosine θ, cumulative
 * sum, dt = −ln(eps)/θ̄_T, σ̄), so they equal what the PyTorch code uses, not a float64 idealisation.
 *
 * Images are batches of B samples of n floats each (n = C·H·W, contiguous); t[b] is sample b's step.
 * Functions that need Gaussian noise take it from the caller (`noise`, B·n standard-normal floats, so a
 * tiled sampler can draw it per global pixel) or, when noise is NULL, draw it from `rng` in element order.
 * Outputs may alias any input (every function is elementwise). They return 0, or -1 with t_errmsg() set
 * (t outside 1..steps, noise and rng both NULL).
 *
 * Fewer sampling steps than trained (the official sample_T): IrSdeOptions.sample_T < T rebuilds the whole
 * schedule with sample_T steps, and the network's time input becomes t·T/sample_T (irsde_time_input). */
#include <stdint.h>

#include "tensor/rng.h"
#include "tensor/tensor.h"

typedef enum { IRSDE_COSINE = 0, IRSDE_LINEAR = 1, IRSDE_CONSTANT = 2 } IrSdeSchedule;

typedef struct {
    IrSdeSchedule schedule;
    double max_sigma;   /* λ; values >= 1 are 8-bit units and divided by 255 (50 -> 0.196078) */
    int T;              /* training steps (the network's time scale) */
    int sample_T;       /* steps of this schedule; <= 0 means T */
    double eps;         /* e^{−θ̄_T dt}: 0.005 in the universal-IR config (the class default is 0.01) */
} IrSdeOptions;

/* The universal-IR settings: cosine, max_sigma 50, T 100, sample_T = T, eps 0.005. */
IrSdeOptions irsde_options_default(void);
/* "cosine" / "linear" / "constant" <-> IrSdeSchedule; parse returns -1 for another name. */
int irsde_schedule_parse(const char *name, IrSdeSchedule *out);
const char *irsde_schedule_name(IrSdeSchedule s);

typedef struct {
    IrSdeOptions opt;
    float lambda;        /* max_sigma after the /255 rule */
    int steps;           /* t runs over 1..steps (= sample_T) */
    double time_scale;   /* T / steps */
    float dt;
    /* [steps + 1], index t */
    float *theta, *sigma, *theta_bar, *sigma_bar;
    float *decay;        /* e^{−θ̄_t dt}: weight of x_0 − μ in the marginal mean */
    float *growth;       /* e^{+θ̄_t dt}: x̂_0 from predicted noise */
    float *term1, *term2, *post_std;   /* posterior (optimal reverse) coefficients; index 0 unused */
    float *block;        /* one allocation behind all arrays */
} IrSde;

/* Builds the schedule; -1 with t_errmsg() for options out of range (each named with its value). */
int irsde_init(IrSde *s, const IrSdeOptions *o);
void irsde_free(IrSde *s);

/* The U-Net's time input for step t: t·T/steps, as the official noise_fn(x, t, sample_scale). */
float irsde_time_input(const IrSde *s, int t);
/* A training step: uniform in 1..steps. */
int irsde_random_t(const IrSde *s, TRng *rng);
/* The posterior std λ·sqrt(max((1−A²)(1−C²)/(1−B²), 1e-20·dt)) of step t (0 for t out of range). */
float irsde_posterior_std(const IrSde *s, int t);

/* ---- elementwise steps on [B, n] buffers ---- */
/* x_t = μ + (x_0 − μ)·e^{−θ̄_t dt} + σ̄_t·ε  (generate_random_states with the given t). */
int irsde_marginal(const IrSde *s, float *xt, const float *x0, const float *mu, const int *t, int64_t B, int64_t n,
                   const float *noise, TRng *rng);
/* x_T = μ + λ·z: the sampler's start (noise_state), over `count` floats. */
int irsde_noise_state(const IrSde *s, float *x, const float *mu, int64_t count, const float *noise, TRng *rng);
/* x̂_0 = (x_t − μ − σ̄_t·ε̂)·e^{θ̄_t dt} + μ  (get_init_state_from_noise). */
int irsde_x0_from_noise(const IrSde *s, float *x0, const float *xt, const float *mu, const float *eps_hat,
                        const int *t, int64_t B, int64_t n);
/* The posterior mean term1·(x_t − μ) + term2·(x_0 − μ) + μ  (reverse_optimum_step). */
int irsde_posterior_mean(const IrSde *s, float *out, const float *xt, const float *x0, const float *mu, const int *t,
                         int64_t B, int64_t n);
/* The sampler's step (reverse_posterior_step): x_{t−1} = mean(x_t, x̂_0(ε̂)) + std_t·z. */
int irsde_posterior_step(const IrSde *s, float *out, const float *xt, const float *mu, const float *eps_hat,
                         const int *t, int64_t B, int64_t n, const float *noise, TRng *rng);
/* The Euler–Maruyama reverse step (reverse_sde_step with score −ε̂/σ̄_t):
 * x_{t−1} = x_t − (θ_t(μ − x_t) + σ_t²·ε̂/σ̄_t)·dt − σ_t·sqrt(dt)·z. */
int irsde_sde_step(const IrSde *s, float *out, const float *xt, const float *mu, const float *eps_hat, const int *t,
                   int64_t B, int64_t n, const float *noise, TRng *rng);

/* ---- the training loss (§4.4), differentiable in the predicted noise ----
 * mean |x_t − (θ_t(μ − x_t) + σ_t²·ε̂/σ̄_t)·dt − posterior_mean(x_t, x_0 = GT)|: L1 between the reverse-SDE
 * mean with the network's noise and the optimal x_{t−1}. eps_hat [B, ...] is the U-Net output (the tape
 * carries the gradient back into the network); xt, mu, x0 have its shape and are constants. Equal-size
 * samples make the official per-sample mean then batch mean the plain mean. Scalar; NULL on a shape or t
 * error (t_error). */
Tensor *irsde_loss(const IrSde *s, Tensor *eps_hat, Tensor *xt, Tensor *mu, Tensor *x0, const int *t);

#endif
