/* The degradation dispatcher: names, the parameter table (ranges, defaults), random/severity parameters,
 * degrade_apply and the mixed mode. The degradations themselves live in data/degrade_<family>.c. */
#include "data/degrade.h"
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/assets.h"
#include "data/degrade_internal.h"

static const char *const NAMES[DEGRADE_N] = {
    "motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy",
    "raindrop", "rainy", "shadowed", "snowy", "uncompleted",
};

static const DegradeFn FNS[DEGRADE_N] = {
    degrade_motion_blurry, degrade_hazy, degrade_jpeg, degrade_low_light, degrade_noisy,
    degrade_raindrop, degrade_rainy, degrade_shadowed, degrade_snowy, degrade_uncompleted,
};

const char *degrade_name(int type) { return type >= 0 && type < DEGRADE_N ? NAMES[type] : NULL; }

int degrade_type_from_name(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < DEGRADE_N; t++)
        if (!strcmp(name, NAMES[t])) return t;
    return -1;
}

#define F(field, type, lo, hi, def, harsh) { #field, type, 0, lo, hi, def, harsh, offsetof(DegradeParams, field) }
#define I(field, type, lo, hi, def, harsh) { #field, type, 1, lo, hi, def, harsh, offsetof(DegradeParams, field) }
/* The ranges are documented in data/degrade.h and motivated in docs/degradations.md. */
static const DegradeParamInfo PARAMS[] = {
    I(blur_size, DEG_MOTION_BLURRY, 9, 31, 17, 1),
    F(blur_shake, DEG_MOTION_BLURRY, 0.0f, 1.0f, 0.5f, 1),
    F(haze_beta, DEG_HAZY, 0.5f, 2.0f, 1.2f, 1),
    F(haze_airlight, DEG_HAZY, 0.75f, 1.0f, 0.9f, 1),
    I(jpeg_quality, DEG_JPEG, 5, 60, 10, 0),
    F(lowlight_exposure, DEG_LOW_LIGHT, 0.03f, 0.25f, 0.08f, 0),
    F(lowlight_gamma, DEG_LOW_LIGHT, 1.0f, 2.0f, 1.4f, 1),
    F(lowlight_noise, DEG_LOW_LIGHT, 0.0f, 0.04f, 0.015f, 1),
    F(noise_sigma, DEG_NOISY, 5.0f / 255.0f, 75.0f / 255.0f, 50.0f / 255.0f, 1),
    I(drop_count, DEG_RAINDROP, 5, 50, 20, 1),
    F(drop_radius, DEG_RAINDROP, 0.02f, 0.08f, 0.045f, 1),
    F(rain_density, DEG_RAINY, 0.003f, 0.02f, 0.009f, 1),
    F(rain_angle, DEG_RAINY, -40.0f, 40.0f, 10.0f, 1),
    F(rain_length, DEG_RAINY, 10.0f, 45.0f, 26.0f, 1),
    I(rain_layers, DEG_RAINY, 1, 4, 3, 1),
    F(shadow_factor, DEG_SHADOWED, 0.3f, 0.6f, 0.45f, 0),
    F(shadow_coverage, DEG_SHADOWED, 0.1f, 0.5f, 0.3f, 1),
    F(snow_density, DEG_SNOWY, 4.0f, 40.0f, 16.0f, 1),
    F(snow_size, DEG_SNOWY, 1.5f, 6.0f, 3.5f, 1),
    F(mask_coverage, DEG_UNCOMPLETED, 0.05f, 0.5f, 0.35f, 1),
    I(mask_index, DEG_UNCOMPLETED, -1, 99, -1, 1),
};
#undef F
#undef I
#define N_PARAMS (int)(sizeof PARAMS / sizeof PARAMS[0])

const DegradeParamInfo *degrade_param_table(int *n_out) {
    if (n_out) *n_out = N_PARAMS;
    return PARAMS;
}

static float get_field(const DegradeParams *p, const DegradeParamInfo *pi) {
    const char *base = (const char *)p + pi->offset;
    if (pi->is_int) { int v; memcpy(&v, base, sizeof v); return (float)v; }
    float v; memcpy(&v, base, sizeof v); return v;
}

static void put_field(DegradeParams *p, const DegradeParamInfo *pi, double value) {
    char *base = (char *)p + pi->offset;
    if (pi->is_int) { int v = (int)(value < 0 ? value - 0.5 : value + 0.5); memcpy(base, &v, sizeof v); }
    else { float v = (float)value; memcpy(base, &v, sizeof v); }
}

void degrade_default_params(int type, DegradeParams *p) {
    (void)type;   /* every field gets its default, whatever the type */
    memset(p, 0, sizeof *p);
    for (int i = 0; i < N_PARAMS; i++) put_field(p, &PARAMS[i], PARAMS[i].def);
}

/* Value at position u in [0,1] of the parameter's range, rounded for integer fields. Some fields have a special
 * meaning that must not be randomised: blur_size stays odd, mask_index stays "chosen by the seed" (-1). */
static void put_in_range(DegradeParams *p, const DegradeParamInfo *pi, float u) {
    if (pi->offset == offsetof(DegradeParams, mask_index)) return;
    double v = pi->min + (double)u * (pi->max - pi->min);
    if (pi->offset == offsetof(DegradeParams, blur_size)) v = 2.0 * (int)(v * 0.5) + 1.0;
    put_field(p, pi, v);
}

void degrade_random_params(int type, uint64_t seed, DegradeParams *p) {
    degrade_default_params(type, p);
    Pcg32 rng;
    pcg_seed(&rng, seed, 0x70a7a5u);   /* own stream: the degradation's structures use other streams */
    for (int i = 0; i < N_PARAMS; i++)
        if (PARAMS[i].type == type) put_in_range(p, &PARAMS[i], pcg_uniform(&rng));
}

void degrade_severity_params(int type, float severity, DegradeParams *p) {
    degrade_default_params(type, p);
    float s = deg_clamp01(severity);
    for (int i = 0; i < N_PARAMS; i++) {
        const DegradeParamInfo *pi = &PARAMS[i];
        /* rain_angle is a direction, not a severity: keep its default */
        if (pi->type != type || pi->offset == offsetof(DegradeParams, rain_angle)) continue;
        put_in_range(p, pi, pi->harsher_high ? s : 1.0f - s);
    }
}

int degrade_param_set(DegradeParams *p, const char *key, double value) {
    for (int i = 0; i < N_PARAMS; i++) {
        const DegradeParamInfo *pi = &PARAMS[i];
        if (strcmp(key, pi->key)) continue;
        if (!(value >= pi->min && value <= pi->max)) {
            data_set_error("degrade: %s = %g is outside its range [%g, %g]", key, value, pi->min, pi->max);
            return -1;
        }
        put_field(p, pi, value);
        return 0;
    }
    data_set_error("degrade: unknown parameter '%s'", key);
    return -1;
}

int degrade_params_check(int type, const DegradeParams *p) {
    if (type < 0 || type >= DEGRADE_N) {
        data_set_error("degrade: unknown degradation type %d", type);
        return -1;
    }
    for (int i = 0; i < N_PARAMS; i++) {
        const DegradeParamInfo *pi = &PARAMS[i];
        if (pi->type != type) continue;
        float v = get_field(p, pi);
        /* float ranges are stored as float: compare with the float bounds, NaN fails */
        if (!(v >= pi->min && v <= pi->max)) {
            data_set_error("degrade: %s: %s = %g is outside its range [%g, %g]", NAMES[type], pi->key, v,
                           pi->min, pi->max);
            return -1;
        }
    }
    return 0;
}

static int masks_ready(void);   /* below, with the mask source */

int degrade_apply(const Image *clean, int type, const DegradeParams *p, uint64_t seed, Image *out) {
    memset(out, 0, sizeof *out);
    if (type < 0 || type >= DEGRADE_N) {
        data_set_error("degrade: unknown degradation type %d (expected 0..%d)", type, DEGRADE_N - 1);
        return -1;
    }
    if (!clean || !clean->px || clean->w <= 0 || clean->h <= 0 || clean->c < 1 || clean->c > 4) {
        data_set_error("degrade: %s: invalid input image", NAMES[type]);
        return -1;
    }
    DegradeParams drawn;
    if (!p) {
        degrade_random_params(type, seed, &drawn);
        p = &drawn;
    } else if (degrade_params_check(type, p)) {
        return -1;
    }
    if (type == DEG_UNCOMPLETED && masks_ready()) return -1;
    if (image_clone(out, clean)) return -1;
    Pcg32 rng;
    pcg_seed(&rng, seed, 1u + (uint64_t)type);
    if (FNS[type](out, p, &rng)) {
        image_free(out);
        return -1;
    }
    return 0;
}

/* Position of each type in the physical imaging chain; lower applies first. */
static int chain_rank(int type) {
    switch (type) {
    case DEG_SHADOWED: return 0;   /* shadows lie on the scene; haze, rain and snow are in front of them */
    case DEG_HAZY: return 1;
    case DEG_RAINY: return 2;
    case DEG_SNOWY: return 3;
    case DEG_LOW_LIGHT: return 4;
    case DEG_RAINDROP: return 5;
    case DEG_MOTION_BLURRY: return 6;
    case DEG_NOISY: return 7;
    case DEG_JPEG: return 8;
    default: return 9;   /* DEG_UNCOMPLETED: holes are drawn on the final image */
    }
}

int degrade_mixed(const Image *clean, uint64_t seed, Image *out, int *types_out, int *n_types_out) {
    memset(out, 0, sizeof *out);
    uint64_t s = seed;
    Pcg32 rng;
    pcg_seed(&rng, seed, 0x313eedu);
    int n = 2 + (int)pcg_below(&rng, 2), types[3];
    /* n distinct types: a partial Fisher–Yates shuffle of 0..9 */
    int pool[DEGRADE_N];
    for (int t = 0; t < DEGRADE_N; t++) pool[t] = t;
    for (int i = 0; i < n; i++) {
        int j = i + (int)pcg_below(&rng, (uint32_t)(DEGRADE_N - i));
        int tmp = pool[i]; pool[i] = pool[j]; pool[j] = tmp;
        types[i] = pool[i];
    }
    for (int i = 1; i < n; i++)   /* insertion sort by chain rank */
        for (int j = i; j > 0 && chain_rank(types[j]) < chain_rank(types[j - 1]); j--) {
            int tmp = types[j]; types[j] = types[j - 1]; types[j - 1] = tmp;
        }
    Image cur = {0};
    const Image *src = clean;
    for (int i = 0; i < n; i++) {
        Image next;
        if (degrade_apply(src, types[i], NULL, pcg_splitmix64(&s), &next)) {
            image_free(&cur);
            return -1;
        }
        image_free(&cur);
        cur = next;
        src = &cur;
    }
    *out = cur;
    if (types_out) memcpy(types_out, types, (size_t)n * sizeof(int));
    if (n_types_out) *n_types_out = n;
    return 0;
}

/* ---- inpainting mask source ------------------------------------------------------------------------------ */

#define MASKS_ASSET "inpainting_masks"   /* data/assets/inpainting_masks: the project's copy of the official masks */
#define N_OFFICIAL_MASKS 100             /* 000000.png .. 000099.png, as data/degrade_inpaint.c draws them */

/* A folder chosen with degrade_set_mask_dir, else the project's copy found next to the binary at first use
 * (once, so worker threads see one answer). */
static char user_mask_dir[4096];
static int user_mask_dir_set;
static char default_mask_dir[4096];
static int default_mask_dir_found;
static pthread_once_t default_mask_once = PTHREAD_ONCE_INIT;

static void find_default_mask_dir(void) {
    default_mask_dir_found = daclip_asset_path(MASKS_ASSET, default_mask_dir, sizeof default_mask_dir) != NULL;
}

void degrade_set_mask_dir(const char *dir) {
    user_mask_dir_set = dir != NULL;
    snprintf(user_mask_dir, sizeof user_mask_dir, "%s", dir ? dir : "");
}

const char *degrade_mask_dir(void) {
    if (user_mask_dir_set) return user_mask_dir;
    pthread_once(&default_mask_once, find_default_mask_dir);
    return default_mask_dir;
}

/* 0 when "uncompleted" can run as configured: synthetic masks, or a folder holding every official mask.
 * Otherwise -1 with data_error naming what is missing: a missing mask is an error, never a silent switch to
 * synthetic masks (that would change the dataset a seed produces depending on where the command runs). */
static int masks_ready(void) {
    const char *dir = degrade_mask_dir();
    if (!dir[0]) return 0;
    if (!user_mask_dir_set && !default_mask_dir_found) {
        const char *env = getenv("DACLIP_ASSETS");
        data_set_error("the official inpainting masks are not found: no %s%s; set DACLIP_ASSETS to the project's "
                       "data/assets folder, pass --mask-dir DIR, or --mask-dir '' for synthetic masks", dir,
                       env && *env ? " (DACLIP_ASSETS is set)" : " next to the binary, nor ./data/assets/" MASKS_ASSET);
        return -1;
    }
    char path[4200];
    for (int i = 0; i < N_OFFICIAL_MASKS; i++) {
        snprintf(path, sizeof path, "%s/%06d.png", dir, i);
        if (access(path, R_OK) != 0) {
            data_set_error("inpainting masks: %s is missing or unreadable (the mask folder must hold the %d "
                           "official masks 000000.png .. %06d.png; --mask-dir '' selects synthetic masks)",
                           path, N_OFFICIAL_MASKS, N_OFFICIAL_MASKS - 1);
            return -1;
        }
    }
    return 0;
}

int degrade_mask_source(char *buf, size_t n) {
    if (masks_ready()) return -1;
    const char *dir = degrade_mask_dir();
    if (!dir[0]) snprintf(buf, n, "inpainting masks: synthetic brush strokes (--mask-dir '')");
    else snprintf(buf, n, "inpainting masks: the %d official masks in %s", N_OFFICIAL_MASKS, dir);
    return 0;
}
