#include "data/shapes.h"

#include <math.h>
#include <stdio.h>

#include "data/rng_pcg.h"

static const char *colour_names[SHAPES_N_COLOURS] = {"red", "green", "blue", "yellow"};
static const float colour_rgb[SHAPES_N_COLOURS][3] = {{0.9f, 0.1f, 0.1f}, {0.1f, 0.8f, 0.2f}, {0.1f, 0.2f, 0.9f},
                                                      {0.95f, 0.9f, 0.1f}};
static const char *kind_names[SHAPES_N_KINDS] = {"circle", "square", "triangle", "cross"};

const char *shapes_colour_name(int c) { return c >= 0 && c < SHAPES_N_COLOURS ? colour_names[c] : "?"; }
const char *shapes_kind_name(int k) { return k >= 0 && k < SHAPES_N_KINDS ? kind_names[k] : "?"; }

/* Is (u, v), in shape-local coordinates scaled to [-1, 1], inside the shape? */
static int inside(int kind, float u, float v) {
    switch (kind) {
    case 0: return u * u + v * v <= 1.0f;
    case 1: return fabsf(u) <= 0.8f && fabsf(v) <= 0.8f;
    case 2: return v <= 0.9f && v >= -0.9f && fabsf(u) <= (v + 0.9f) * 0.55f;
    default: return (fabsf(u) <= 0.3f && fabsf(v) <= 1.0f) || (fabsf(v) <= 0.3f && fabsf(u) <= 1.0f);
    }
}

int shapes_render(int colour, int kind, uint64_t seed, int size, Image *out, char *caption, size_t cap) {
    if (colour < 0 || colour >= SHAPES_N_COLOURS || kind < 0 || kind >= SHAPES_N_KINDS) {
        data_set_error("shapes: class (%d, %d) out of range", colour, kind);
        return -1;
    }
    if (image_alloc(out, size, size, 3)) return -1;
    Pcg32 r;
    pcg_seed(&r, seed, 0x5A17E5);
    float bg[3];
    for (int c = 0; c < 3; c++) bg[c] = pcg_range(&r, 0.35f, 0.65f);
    float radius = pcg_range(&r, 0.28f, 0.40f) * (float)size;
    float cx = pcg_range(&r, radius, (float)size - radius), cy = pcg_range(&r, radius, (float)size - radius);
    float tint = pcg_range(&r, -0.08f, 0.08f);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float *p = image_at(out, x, y);
            int in = inside(kind, ((float)x + 0.5f - cx) / radius, ((float)y + 0.5f - cy) / radius);
            for (int c = 0; c < 3; c++) {
                float v = in ? colour_rgb[colour][c] + tint : bg[c];
                v += 0.05f * (pcg_uniform(&r) - 0.5f);
                p[c] = v < 0 ? 0 : (v > 1 ? 1 : v);
            }
        }
    snprintf(caption, cap, "a %s %s", colour_names[colour], kind_names[kind]);
    return 0;
}
