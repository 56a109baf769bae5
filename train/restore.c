/* The tiled, batched IR-SDE sampler (see restore.h). */
#include "train/restore.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/rng.h"

RestoreOptions restore_options_default(void) {
    return (RestoreOptions){.mode = IRSDE_SAMPLE_POSTERIOR, .seed = 0, .tile = 0, .overlap = 0, .batch_pixels = 0};
}

void restore_auto_tile(int h, int w, int *tile, int *overlap) {
    bool small = (int64_t)h * w <= RESTORE_UNTILED_MAX_PIXELS;
    *tile = small ? 0 : RESTORE_DEFAULT_TILE;
    *overlap = small ? 0 : RESTORE_DEFAULT_OVERLAP;
}

int restore_tile_starts(int size, int tile, int overlap, int *starts, int max) {
    if (size <= tile) {
        if (max > 0) starts[0] = 0;
        return 1;
    }
    if (tile <= overlap || overlap < 0) return -1;
    int step = tile - overlap, n = (size - overlap + step - 1) / step;
    for (int i = 0; i < n && i < max; i++)   /* evenly spread: the first at 0, the last ending at size */
        starts[i] = (int)(((int64_t)i * (size - tile) + (n - 1) / 2) / (n - 1));
    return n;
}

/* sin² from 0 to 1 over `fade` px starting `start` px from the edge; 0 before, 1 after */
static double edge_weight(int d, int start, int fade) {
    if (d < start) return 0.0;
    if (d >= start + fade) return 1.0;
    double s = sin(0.5 * M_PI * (d - start + 0.5) / fade);
    return s * s;
}

float restore_blend_weight(int i, int n, int fade, int lo, int hi) {
    double w = 1.0;
    if (lo > 0) {
        int f = fade < lo ? fade : lo;
        w *= edge_weight(i, (lo - f) / 2, f);
    }
    if (hi > 0) {
        int f = fade < hi ? fade : hi;
        w *= edge_weight(n - 1 - i, (hi - f + 1) / 2, f);
    }
    return (float)w;
}

float restore_noise(uint64_t seed, int tag, int c, int y, int x) {
    uint32_t ctr[4] = {(uint32_t)x, (uint32_t)y, (uint32_t)c, (uint32_t)tag}, key[2] = {(uint32_t)seed,
                                                                                        (uint32_t)(seed >> 32)};
    uint32_t r[4];
    philox4x32_10(ctr, key, r);
    double u1 = ((r[0] >> 8) + 1.0) * (1.0 / 16777216.0);   /* (0, 1]: log never sees 0 */
    double u2 = (r[1] >> 8) * (1.0 / 16777216.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* ---- tiles -------------------------------------------------------------------------------------------------- */

typedef struct {
    int image;
    int y, x, h, w;      /* the region of the image it covers */
    int bh, bw;          /* the U-Net input: h×w, or extended by edge clamping where the U-Net's reflect
                            padding would be larger than the region (axes shorter than about 2^depth/2) */
    int ov_top, ov_bottom, ov_left, ov_right;   /* overlap with the neighbour on that side, 0 for none */
    float *wy, *wx;      /* [h], [w]: blend weights along each axis (restore_blend_weight) */
} Tile;

typedef struct {
    RestoreImage *im;
    float *eps;          /* [C, h, w] blended ε̂ of the current step */
    float *inv_wsum;     /* [h, w] 1/Σ tile weights, NULL for an untiled image */
    int fade;
} ImageState;

static int extent(int n, int m) { return ((n + m - 1) / m) * m - n >= n ? m : n; }

/* Tiles of one image; appends to *tiles. Returns 0 or -1. */
static int tile_image(int index, const RestoreImage *im, int tile, int overlap, int m, Tile **tiles, int *nt,
                      int *cap) {
    int ny = restore_tile_starts(im->h, tile, overlap, NULL, 0), nx = restore_tile_starts(im->w, tile, overlap, NULL, 0);
    if (ny < 0 || nx < 0) {
        t_set_errmsg("restore: tile %d px must be larger than the overlap %d px", tile, overlap);
        return -1;
    }
    int *ys = malloc(sizeof(int) * (size_t)ny), *xs = malloc(sizeof(int) * (size_t)nx);
    if (ys && xs && *nt + ny * nx > *cap) {
        int grown_cap = 2 * (*nt + ny * nx);
        Tile *grown = realloc(*tiles, sizeof(Tile) * (size_t)grown_cap);
        if (grown) *tiles = grown, *cap = grown_cap;
    }
    if (!ys || !xs || *nt + ny * nx > *cap) {
        free(ys), free(xs);
        t_set_errmsg("restore: out of memory");
        return -1;
    }
    restore_tile_starts(im->h, tile, overlap, ys, ny);
    restore_tile_starts(im->w, tile, overlap, xs, nx);
    for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
            Tile t = {.image = index, .y = ys[i], .x = xs[j]};
            t.h = ny == 1 ? im->h : tile, t.w = nx == 1 ? im->w : tile;
            t.bh = extent(t.h, m), t.bw = extent(t.w, m);
            t.ov_top = i > 0 ? ys[i - 1] + tile - ys[i] : 0, t.ov_bottom = i < ny - 1 ? ys[i] + tile - ys[i + 1] : 0;
            t.ov_left = j > 0 ? xs[j - 1] + tile - xs[j] : 0, t.ov_right = j < nx - 1 ? xs[j] + tile - xs[j + 1] : 0;
            (*tiles)[(*nt)++] = t;
        }
    free(ys), free(xs);
    return 0;
}

/* The weights of image `index`'s tiles along both axes, and 1/Σ weights per pixel. */
static int tile_weights(ImageState *st, int index, Tile *tiles, int nt) {
    const RestoreImage *im = st->im;
    float *ws = calloc((size_t)im->h * im->w, sizeof(float));
    if (!ws) return -1;
    for (int k = 0; k < nt; k++) {
        Tile *t = &tiles[k];
        if (t->image != index) continue;
        if (!(t->wy = malloc(sizeof(float) * (size_t)(t->h + t->w)))) {
            free(ws);
            return -1;
        }
        t->wx = t->wy + t->h;
        for (int yy = 0; yy < t->h; yy++) t->wy[yy] = restore_blend_weight(yy, t->h, st->fade, t->ov_top, t->ov_bottom);
        for (int xx = 0; xx < t->w; xx++) t->wx[xx] = restore_blend_weight(xx, t->w, st->fade, t->ov_left, t->ov_right);
        for (int yy = 0; yy < t->h; yy++)
            for (int xx = 0; xx < t->w; xx++) ws[(size_t)(t->y + yy) * im->w + t->x + xx] += t->wy[yy] * t->wx[xx];
    }
    for (size_t i = 0; i < (size_t)im->h * im->w; i++) ws[i] = 1.0f / ws[i];
    st->inv_wsum = ws;
    return 0;
}

/* Copies a tile of a planar [C, h, w] image into dst [C, bh, bw], clamping reads to the tile's region. */
static void gather(const float *src, const RestoreImage *im, const Tile *t, int C, float *dst) {
    for (int c = 0; c < C; c++)
        for (int yy = 0; yy < t->bh; yy++) {
            const float *row = src + ((size_t)c * im->h + t->y + (yy < t->h ? yy : t->h - 1)) * im->w + t->x;
            float *d = dst + ((size_t)c * t->bh + yy) * t->bw;
            memcpy(d, row, sizeof(float) * (size_t)t->w);
            for (int xx = t->w; xx < t->bw; xx++) d[xx] = row[t->w - 1];
        }
}

/* Adds the tile's weighted ε̂ into the image's blend buffer (weights 1 for an untiled image). */
static void scatter(ImageState *st, const Tile *t, int C, const float *eps) {
    const RestoreImage *im = st->im;
    for (int c = 0; c < C; c++)
        for (int yy = 0; yy < t->h; yy++) {
            float *d = st->eps + ((size_t)c * im->h + t->y + yy) * im->w + t->x;
            const float *e = eps + ((size_t)c * t->bh + yy) * t->bw;
            if (!st->inv_wsum) {
                memcpy(d, e, sizeof(float) * (size_t)t->w);
                continue;
            }
            const float *inv = st->inv_wsum + (size_t)(t->y + yy) * im->w + t->x;
            for (int xx = 0; xx < t->w; xx++) d[xx] += t->wy[yy] * t->wx[xx] * inv[xx] * e[xx];
        }
}

/* ---- the U-Net over batches of equal-size tiles ----------------------------------------------------------- */

static char unet_error[512];
static void keep_error(const char *msg) { snprintf(unet_error, sizeof unet_error, "%s", msg); }

/* Runs the U-Net on tiles[0..nb) (all bh×bw) at step t and scatters the results. */
static int run_batch(const IrSde *s, const ConditionalUNet *u, ImageState *st, const Tile *const *tiles, int nb,
                     int t) {
    const UNetConfig *cfg = &u->cfg;
    int C = cfg->in_nc, E = cfg->context_dim, bh = tiles[0]->bh, bw = tiles[0]->bw;
    size_t per = (size_t)C * bh * bw, mark = t_arena_mark();
    Tensor *x = t_new(T_SHAPE(nb, C, bh, bw)), *mu = t_new(T_SHAPE(nb, C, bh, bw));
    bool use_d = cfg->use_degra_context && st[tiles[0]->image].im->degra, use_c = cfg->use_image_context;
    Tensor *degra = use_d ? t_new(T_SHAPE(nb, E)) : NULL, *content = use_c ? t_new(T_SHAPE(nb, E)) : NULL;
    float *time = t_arena_alloc(sizeof(float) * (size_t)nb);
    for (int b = 0; b < nb; b++) {
        const RestoreImage *im = st[tiles[b]->image].im;
        gather(im->out, im, tiles[b], C, x->data + per * b);
        gather(im->lq, im, tiles[b], C, mu->data + per * b);
        if (degra) memcpy(degra->data + (size_t)E * b, im->degra, sizeof(float) * (size_t)E);
        if (content) memcpy(content->data + (size_t)E * b, im->content, sizeof(float) * (size_t)E);
        time[b] = irsde_time_input(s, t);
    }
    Tensor *eps = unet_forward(u, x, mu, time, degra, content);
    if (!eps) {
        t_set_errmsg("restore: %s", unet_error[0] ? unet_error : "U-Net forward failed");
        t_arena_release(mark);
        return -1;
    }
    eps = t_contiguous(eps);
    for (int b = 0; b < nb; b++) scatter(&st[tiles[b]->image], tiles[b], C, eps->data + per * b);
    t_arena_release(mark);
    return 0;
}

/* Orders tiles by U-Net input size so that equal sizes are adjacent (then by image and position: stable). */
static int tile_cmp(const void *pa, const void *pb) {
    const Tile *a = *(const Tile *const *)pa, *b = *(const Tile *const *)pb;
    if (a->bh != b->bh) return a->bh < b->bh ? -1 : 1;
    if (a->bw != b->bw) return a->bw < b->bw ? -1 : 1;
    if (a->image != b->image) return a->image < b->image ? -1 : 1;
    if (a->y != b->y) return a->y < b->y ? -1 : 1;
    return (a->x > b->x) - (a->x < b->x);
}

/* ---- full-image steps ------------------------------------------------------------------------------------ */

/* Row by row with the noise of each row: tag 0 = the start state x_T = μ + λz, else the step from t = tag. */
static int image_step(const IrSde *s, const ImageState *st, int C, IrSdeSampleMode mode, uint64_t seed, int tag) {
    const RestoreImage *im = st->im;
    int64_t rows = (int64_t)C * im->h;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *z = malloc(sizeof(float) * (size_t)im->w);
        if (!z) failed = 1;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!z) continue;
            int c = (int)(r / im->h), y = (int)(r % im->h), t = tag;
            size_t off = (size_t)r * im->w;
            for (int x = 0; x < im->w; x++) z[x] = restore_noise(seed, tag, c, y, x);
            if (tag == 0)
                failed |= irsde_noise_state(s, im->out + off, im->lq + off, im->w, z, NULL) != 0;
            else if (mode == IRSDE_SAMPLE_SDE)
                failed |= irsde_sde_step(s, im->out + off, im->out + off, im->lq + off, st->eps + off, &t, 1, im->w, z,
                                         NULL) != 0;
            else
                failed |= irsde_posterior_step(s, im->out + off, im->out + off, im->lq + off, st->eps + off, &t, 1,
                                               im->w, z, NULL) != 0;
        }
        free(z);
    }
    if (failed) t_set_errmsg("restore: step %d failed (out of memory or step out of range)", tag);
    return failed ? -1 : 0;
}

static int check_images(const ConditionalUNet *u, const RestoreImage *images, int n) {
    for (int i = 0; i < n; i++) {
        const RestoreImage *im = &images[i];
        if (!im->lq || !im->out || im->h < 1 || im->w < 1) {
            t_set_errmsg("restore: image %d: no pixels or no output buffer", i);
            return -1;
        }
        if (u->cfg.use_image_context && !im->content) {
            t_set_errmsg("restore: image %d: the U-Net needs a content embedding (DA-CLIP) and none was given", i);
            return -1;
        }
        if (u->cfg.use_degra_context && (!im->degra) != (!images[0].degra)) {
            t_set_errmsg("restore: images in one run must all have a degradation embedding or none");
            return -1;
        }
    }
    return 0;
}

int restore_images(const IrSde *s, const ConditionalUNet *u, RestoreImage *images, int n, const RestoreOptions *o) {
    if (n <= 0 || !images || !o) {
        t_set_errmsg("restore: no images");
        return -1;
    }
    if (check_images(u, images, n)) return -1;
    int C = u->cfg.in_nc, m = unet_pad_multiple(&u->cfg), nt = 0, cap = 0, rc = -1;
    int64_t budget = o->batch_pixels > 0 ? o->batch_pixels : RESTORE_BATCH_PIXELS;
    Tile *tiles = NULL;
    const Tile **order = NULL, **batch = NULL;
    ImageState *st = calloc((size_t)n, sizeof *st);
    if (!st) {
        t_set_errmsg("restore: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        RestoreImage *im = &images[i];
        int tile = o->tile, overlap = RESTORE_DEFAULT_OVERLAP;
        if (tile <= 0) restore_auto_tile(im->h, im->w, &tile, &overlap);
        if (tile <= 0) tile = im->h > im->w ? im->h : im->w;   /* untiled */
        else tile = tile < m ? m : tile / m * m;
        if (o->overlap > 0) overlap = o->overlap;
        else if (overlap > tile / 4) overlap = tile / 4;       /* a small --tile keeps most of each tile its own */
        st[i].im = im;
        st[i].fade = overlap / 2 > 0 ? overlap / 2 : 1;
        int before = nt;
        if (tile_image(i, im, tile, overlap, m, &tiles, &nt, &cap)) goto done;
        st[i].eps = malloc(sizeof(float) * (size_t)C * im->h * im->w);
        if (!st[i].eps || (nt - before > 1 && tile_weights(&st[i], i, tiles, nt))) {
            t_set_errmsg("restore: out of memory for a %dx%d image", im->w, im->h);
            goto done;
        }
    }
    order = malloc(sizeof *order * (size_t)nt);
    batch = malloc(sizeof *batch * (size_t)nt);
    if (!order || !batch) {
        t_set_errmsg("restore: out of memory");
        goto done;
    }
    for (int k = 0; k < nt; k++) order[k] = &tiles[k];
    qsort(order, (size_t)nt, sizeof *order, tile_cmp);
    bool grad = t_set_grad_enabled(false);
    TErrorHandler prev = t_set_error_handler(keep_error);
    unet_error[0] = 0;
    rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = image_step(s, &st[i], C, o->mode, o->seed, 0);
    for (int t = s->steps; t >= 1 && !rc; t--) {
        for (int i = 0; i < n; i++)
            if (st[i].inv_wsum) memset(st[i].eps, 0, sizeof(float) * (size_t)C * st[i].im->h * st[i].im->w);
        for (int k = 0; k < nt && !rc;) {
            /* a batch: following tiles of the same U-Net input size, within the pixel budget */
            int nb = 0;
            int64_t px = (int64_t)order[k]->bh * order[k]->bw;
            do batch[nb++] = order[k++];
            while (k < nt && order[k]->bh == batch[0]->bh && order[k]->bw == batch[0]->bw && (nb + 1) * px <= budget);
            rc = run_batch(s, u, st, batch, nb, t);
            if (!rc && o->progress && k < nt) o->progress(o->progress_ctx, s->steps - t, s->steps, k, nt);
        }
        for (int i = 0; i < n && !rc; i++) rc = image_step(s, &st[i], C, o->mode, o->seed, t);
        if (!rc && o->progress) o->progress(o->progress_ctx, s->steps - t + 1, s->steps, nt, nt);
    }
    t_set_error_handler(prev);
    t_set_grad_enabled(grad);
done:
    for (int i = 0; i < n; i++) free(st[i].eps), free(st[i].inv_wsum);
    for (int k = 0; k < nt; k++) free(tiles[k].wy);
    free(st), free(tiles), free(order), free(batch);
    return rc;
}
