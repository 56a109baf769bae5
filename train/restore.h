#ifndef DACLIP_TRAIN_RESTORE_H
#define DACLIP_TRAIN_RESTORE_H
/* The tiled IR-SDE sampler behind `daclip restore` and `daclip eval-ir` (reference §4.5): x_T = μ + λ·z, then
 * for t = steps..1 one U-Net evaluation and one reverse step (posterior by default, or Euler–Maruyama), for
 * any number of images of any sizes at once.
 *
 * Bounded memory: an image larger than the tile is covered by overlapping tiles. At EVERY step the U-Net runs
 * on each tile of the current x_t (with the matching tile of μ), the predicted noise of the tiles is blended
 * into one full-image ε̂ with smooth weights, and the step is taken on the full image. Neighbouring tiles
 * thus always agree on x_t, so no seam can form; the U-Net only sees tile-sized inputs. The weights
 * (restore_blend_weight) cross-fade over the middle overlap/2 px of each overlap and give no weight to the
 * overlap/4 px next to a tile's inner edge, whose ε̂ the U-Net computes without the context beyond it.
 *
 * Noise is a function of the global pixel position: z(seed, tag, c, y, x) = Box–Muller of one Philox4x32-10
 * block (key = seed, counter = {x, y, c, tag}), tag 0 for the start state and t for the step from t. Tiled and
 * untiled runs, any batch composition and any thread count therefore draw the same noise, and an image gets
 * the same noise whether it is restored alone or with others.
 *
 * Batching: tiles of the same size (of one image or of several images, which all share the step) go through
 * the U-Net together, up to batch_pixels pixels per call. */
#include <stdint.h>

#include "irsde/sample.h"
#include "irsde/sde.h"
#include "irsde/unet.h"

/* Images up to this many pixels are restored whole by default; larger ones in tiles. */
#define RESTORE_UNTILED_MAX_PIXELS ((int64_t)512 * 512)
#define RESTORE_DEFAULT_TILE 384
#define RESTORE_DEFAULT_OVERLAP 48
/* Default pixels per U-Net call (two 384² tiles, four 256² tiles, one 512² image). */
#define RESTORE_BATCH_PIXELS ((int64_t)320 * 1024)

typedef struct {
    const float *lq;        /* [in_nc, h, w] planar (CHW), values in [0, 1]: μ and the condition */
    int h, w;
    const float *degra;     /* [context_dim] degradation embedding, or NULL */
    const float *content;   /* [context_dim] content embedding, or NULL (required with use_image_context) */
    float *out;             /* [in_nc, h, w]: receives x_0 (not clamped; may not alias lq) */
} RestoreImage;

typedef struct {
    IrSdeSampleMode mode;
    uint64_t seed;
    int tile;               /* tile edge in px: 0 = automatic (restore_auto_tile); >= the image = untiled */
    int overlap;            /* px between neighbouring tiles (at least; 0 = automatic) */
    int64_t batch_pixels;   /* most pixels per U-Net call (0 = RESTORE_BATCH_PIXELS; one tile at least) */
    /* called after every step and every U-Net batch inside a step (may be NULL): steps done of the total,
     * and the tiles of the current step done of the tiles per step */
    void (*progress)(void *ctx, int done, int total, int tiles_done, int tiles);
    void *progress_ctx;
} RestoreOptions;

RestoreOptions restore_options_default(void);

/* The automatic tiling for an h×w image: tile 0 (untiled) up to RESTORE_UNTILED_MAX_PIXELS, else
 * RESTORE_DEFAULT_TILE with RESTORE_DEFAULT_OVERLAP. */
void restore_auto_tile(int h, int w, int *tile, int *overlap);

/* Tile starts along one axis of `size` px: one tile of the whole axis when size <= tile, else
 * n = ceil((size − overlap)/(tile − overlap)) tiles of `tile` px spread evenly from 0 to size − tile (so
 * neighbours overlap by at least `overlap`). Writes up to max starts; returns n, or -1 for tile <= overlap. */
int restore_tile_starts(int size, int tile, int overlap, int *starts, int max);

/* Blend weight of position i in a tile of n px along one axis; lo / hi are the overlaps (px) with the
 * neighbouring tiles before / after it, 0 where there is none. Inside an overlap of V px the weight crosses
 * over from 0 to 1 (sin²) in the middle min(fade, V) px and is 0 in the (V − fade)/2 px next to the tile's
 * edge, where the U-Net's output is disturbed by the edge; the two neighbours' weights sum to 1. */
float restore_blend_weight(int i, int n, int fade, int lo, int hi);

/* Standard-normal noise of one global position (see above). */
float restore_noise(uint64_t seed, int tag, int c, int y, int x);

/* Restores n images with the U-Net u under the schedule s. Every image must have u's in_nc channels; tile
 * sizes are rounded down to a multiple of the U-Net's padding multiple. 0, or -1 with t_errmsg() (bad
 * arguments, out of memory, the U-Net refusing its inputs). */
int restore_images(const IrSde *s, const ConditionalUNet *u, RestoreImage *images, int n, const RestoreOptions *o);

#endif
