#ifndef DACLIP_DATA_DEGRADE_H
#define DACLIP_DATA_DEGRADE_H
/* The ten DA-CLIP degradations (reference §2.5, §3.4): (clean image, severity parameters, seed) -> degraded image.
 * Every function is deterministic for a given seed. Images are interleaved HWC floats in [0,1] (data/image.h);
 * channels 1..3 are processed as grey/RGB, a 4th (alpha) channel is copied unchanged.
 * The look of each degradation and the reasoning behind every range is in docs/degradations.md. */
#include <stddef.h>
#include <stdint.h>
#include "data/image.h"

#define DEGRADE_N 10
/* Official order (class indices 0..9 of DA-CLIP's degradation head). */
enum { DEG_MOTION_BLURRY, DEG_HAZY, DEG_JPEG, DEG_LOW_LIGHT, DEG_NOISY, DEG_RAINDROP, DEG_RAINY, DEG_SHADOWED,
       DEG_SNOWY, DEG_UNCOMPLETED };

/* "motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy", "raindrop", "rainy", "shadowed", "snowy",
 * "uncompleted"; NULL for an out-of-range type. */
const char *degrade_name(int type);
/* Inverse of degrade_name (exact, case-sensitive match); -1 if unknown. */
int degrade_type_from_name(const char *name);

/* Severity parameters of all ten degradations. Only the fields of the type being applied are read.
 * Ranges are [min, max] as accepted by degrade_apply; "default" is degrade_default_params().
 * Lengths in pixels are relative to a 256-px short side and scale with the image (so a 512×512 crop and its
 * 256×256 resize look alike), except where said otherwise. */
typedef struct {
    /* motion-blurry (GoPro-like camera shake) */
    int   blur_size;        /* kernel support in px at 256 px short side, odd, [9, 31], default 17 */
    float blur_shake;       /* trajectory irregularity: 0 = straight line, 1 = jittery curved path, [0, 1], 0.5 */
    /* hazy (RESIDE-like, atmospheric scattering I = J·t + A·(1−t), t = exp(−β·d)) */
    float haze_beta;        /* scattering coefficient for depth d in [0,1], [0.5, 2.0], default 1.2 */
    float haze_airlight;    /* atmospheric light A (grey level), [0.75, 1.0], default 0.9 */
    /* jpeg-compressed (libjpeg-turbo encode/decode, 4:2:0 chroma) */
    int   jpeg_quality;     /* [5, 60], default 10 (the official setting) */
    /* low-light (LOL-like) */
    float lowlight_exposure;/* multiplicative exposure (linear light), [0.03, 0.25], default 0.08 */
    float lowlight_gamma;   /* extra gamma on top of the exposure cut, [1.0, 2.0], default 1.4 */
    float lowlight_noise;   /* read-noise std at [0,1] scale; shot noise scales with it, [0, 0.04], default 0.015 */
    /* noisy (official: clean + N(0,1)·σ, clipped to [0,1], no rounding) */
    float noise_sigma;      /* σ in [0,1] units, [5/255, 75/255], default 50/255 (the official setting) */
    /* raindrop (RainDrop-like adherent droplets on the lens/glass) */
    int   drop_count;       /* number of drops at 256×256 (scales with area), [5, 50], default 20 */
    float drop_radius;      /* mean drop radius, fraction of the short side, [0.02, 0.08], default 0.045 */
    /* rainy (Rain100H-like heavy streaks) */
    float rain_density;     /* fraction of pixels seeding a streak per layer, [0.003, 0.02], default 0.009 */
    float rain_angle;       /* mean streak angle from vertical, degrees, [-40, 40], default 10 */
    float rain_length;      /* mean streak length in px at 256 px, [10, 45], default 26 */
    int   rain_layers;      /* number of streak layers (depths), [1, 4], default 3 */
    /* shadowed (SRD-like cast shadows) */
    float shadow_factor;    /* remaining light inside the shadow, [0.3, 0.6], default 0.45 */
    float shadow_coverage;  /* target fraction of the image in shadow, [0.1, 0.5], default 0.3 */
    /* snowy (Snow100K-like) */
    float snow_density;     /* flakes per 1000 px² at 256 px scale, all layers, [4, 40], default 16 */
    float snow_size;        /* size of the largest flakes in px at 256 px, [1.5, 6], default 3.5 */
    /* uncompleted (inpainting; LQ = mask·img + (1 − mask), holes white) */
    float mask_coverage;    /* target hole fraction of the synthetic brush mask, [0.05, 0.5], default 0.35
                             * (the official masks hole about 35%) */
    int   mask_index;       /* official mask number 0..99 when the mask folder exists; -1 = chosen by the seed */
} DegradeParams;

/* Fixed mid-range defaults of `type` (official values for noisy and jpeg). Fields of other types get their
 * defaults too, so a DegradeParams is always fully initialised. */
void degrade_default_params(int type, DegradeParams *p);
/* Parameters of `type` drawn uniformly from their ranges by `seed` (what degrade_apply does with p = NULL). */
void degrade_random_params(int type, uint64_t seed, DegradeParams *p);
/* Parameters of `type` at a severity in [0,1]: 0 = mildest end of every range, 1 = harshest. */
void degrade_severity_params(int type, float severity, DegradeParams *p);

/* Named access to the parameters, e.g. for `daclip degrade --param jpeg_quality=20`. */
typedef struct {
    const char *key;        /* field name, e.g. "jpeg_quality" */
    int type;               /* the degradation it belongs to */
    int is_int;
    float min, max, def;
    int harsher_high;       /* 1 if larger values are harsher */
    size_t offset;          /* offsetof(DegradeParams, field) */
} DegradeParamInfo;
const DegradeParamInfo *degrade_param_table(int *n_out);
/* Sets one field by key; -1 (data_error) if the key is unknown or the value out of range. */
int degrade_param_set(DegradeParams *p, const char *key, double value);
/* Checks every field of `type` against its range; -1 (data_error naming the field) if out of range. */
int degrade_params_check(int type, const DegradeParams *p);

/* Degrades `clean` into `out`, which this function allocates (free with image_free; on error out is empty).
 * p = NULL: parameters randomised within their ranges by `seed`. The seed also drives every random structure
 * (kernel, drops, streaks, masks, noise). `out` must not be `clean`. Returns 0, or -1 with data_error set. */
int degrade_apply(const Image *clean, int type, const DegradeParams *p, uint64_t seed, Image *out);

/* A random chain of 2 or 3 distinct degradations with random parameters, applied in a physically sensible
 * order (scene: shadow/haze/rain/snow/low-light, then lens: raindrop/motion blur, then sensor: noise, then
 * storage: JPEG, then inpainting holes last). types_out (room for 3, may be NULL) receives the types in the
 * order applied, n_types_out their count. Returns 0, or -1 with data_error set. */
int degrade_mixed(const Image *clean, uint64_t seed, Image *out, int *types_out, int *n_types_out);

/* Folder with the 100 official inpainting masks (reference §3.4, 000000.png .. 000099.png). Default (and NULL):
 * the project's copy, data/assets/inpainting_masks, found next to the binary whatever the working directory
 * (data/assets.h); "" selects the synthetic brush masks. A folder lacking any of the masks is an error for
 * "uncompleted" (degrade_apply fails), never a silent switch to synthetic masks. Not thread-safe: set it once
 * at start-up. */
void degrade_set_mask_dir(const char *dir);

/* Checks the mask source "uncompleted" will use and describes it in buf for the user ("inpainting masks: the 100
 * official masks in DIR" or "... synthetic brush strokes"); commands print it once on stderr. Returns 0, or -1
 * with data_error set (no buf) when the masks are missing. */
int degrade_mask_source(char *buf, size_t n);

#endif
