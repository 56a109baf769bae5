/* ConditionalUNet (reference §5.2): construction in state_dict order, the forward pass, model files. */
#include "irsde/unet.h"

#include <stdio.h>
#include <string.h>

#include "tensor/ops.h"

static void attention_init(UNetAttention *a, ParamSet *ps, const char *prefix, int64_t dim, bool spatial,
                           int64_t context_dim, TRng *r) {
    a->spatial = spatial;
    if (spatial)
        spatial_transformer_block_init(&a->st, ps, prefix, dim, (int)(dim / UNET_HEAD_CHANNELS), UNET_HEAD_CHANNELS,
                                       context_dim, r);
    else
        linear_attn_block_init(&a->linear, ps, prefix, dim, r);
}

/* context: [B, 1, context_dim] or NULL */
static Tensor *attention_forward(const UNetAttention *a, Tensor *x, Tensor *context) {
    return a->spatial ? spatial_transformer_block_forward(&a->st, x, context) : linear_attn_block_forward(&a->linear, x);
}

/* downs.L / ups.L: the ResBlocks' widths, the attention width and the resampling (.3) */
static void level_init(UNetLevel *l, ParamSet *ps, const char *prefix, int64_t res_in, int64_t width, int64_t out,
                       UNetResample resample, bool spatial, const UNetConfig *c, TRng *r) {
    char p[256];
    int64_t tdim = unet_time_dim(c);
    resblock_init(&l->block1, ps, nn_join(p, sizeof p, prefix, "0"), res_in, width, tdim, r);
    resblock_init(&l->block2, ps, nn_join(p, sizeof p, prefix, "1"), res_in, width, tdim, r);
    attention_init(&l->attn, ps, nn_join(p, sizeof p, prefix, "2"), width, spatial, c->context_dim, r);
    l->resample = resample;
    nn_join(p, sizeof p, prefix, "3");
    if (resample == UNET_RESAMPLE_DOWN) downsample_init(&l->down, ps, p, width, out, r);
    else if (resample == UNET_RESAMPLE_UP) upsample_init(&l->up, ps, p, width, out, r);
    else conv2d_init(&l->conv, ps, p, width, out, 3, 1, 1, false, r);   /* default_conv */
}

static Tensor *level_resample(const UNetLevel *l, Tensor *x) {
    if (l->resample == UNET_RESAMPLE_DOWN) return downsample_forward(&l->down, x);
    if (l->resample == UNET_RESAMPLE_UP) return upsample_forward(&l->up, x);
    return conv2d_forward(&l->conv, x);
}

int unet_init(ConditionalUNet *u, ParamSet *ps, const char *prefix, const UNetConfig *cfg, TRng *rng) {
    memset(u, 0, sizeof *u);
    if (unet_config_validate(cfg)) return -1;
    u->cfg = *cfg;
    const UNetConfig *c = &u->cfg;
    char p[256], q[64];
    int64_t nf = c->nf, tdim = unet_time_dim(c), cd = c->context_dim;
    bool prompt = c->use_degra_context && cd > 0, spatial = c->use_image_context && cd > 0;

    /* state_dict order: the module's own parameter (prompt) first, then the submodules as registered */
    if (prompt) {
        u->prompt = params_new(ps, prefix, "prompt", T_SHAPE(1, tdim));
        t_fill_uniform(u->prompt, rng, 0.0f, 1.0f);   /* torch.rand */
    }
    conv2d_init(&u->init_conv, ps, nn_join(p, sizeof p, prefix, "init_conv"), 2 * c->in_nc, nf, 7, 1, 3, false, rng);
    time_mlp_init(&u->time_mlp, ps, nn_join(p, sizeof p, prefix, "time_mlp"), (int)nf, tdim, rng);
    if (prompt) {
        linear_init(&u->text_mlp0, ps, nn_join(p, sizeof p, prefix, "text_mlp.0"), cd, tdim, true, rng);
        linear_init(&u->text_mlp2, ps, nn_join(p, sizeof p, prefix, "text_mlp.2"), tdim, tdim, true, rng);
        linear_init(&u->prompt_mlp, ps, nn_join(p, sizeof p, prefix, "prompt_mlp"), tdim, tdim, true, rng);
    }
    int D = c->depth;
    for (int i = 0; i < D; i++) {
        int64_t din = nf * (i ? c->ch_mult[i - 1] : 1), dout = nf * c->ch_mult[i];
        snprintf(q, sizeof q, "downs.%d", i);
        level_init(&u->downs[i], ps, nn_join(p, sizeof p, prefix, q), din, din, dout,
                   i == D - 1 ? UNET_RESAMPLE_CONV : UNET_RESAMPLE_DOWN, spatial && i >= UNET_FIRST_SPATIAL_LEVEL, c,
                   rng);
    }
    for (int j = 0; j < D; j++) {   /* ups.j is level D−1−j */
        int i = D - 1 - j;
        int64_t din = nf * (i ? c->ch_mult[i - 1] : 1), dout = nf * c->ch_mult[i];
        snprintf(q, sizeof q, "ups.%d", j);
        level_init(&u->ups[j], ps, nn_join(p, sizeof p, prefix, q), dout + din, dout, din,
                   i == 0 ? UNET_RESAMPLE_CONV : UNET_RESAMPLE_UP, spatial && i >= UNET_FIRST_SPATIAL_LEVEL, c, rng);
    }
    int64_t mid = nf * c->ch_mult[D - 1];
    resblock_init(&u->mid_block1, ps, nn_join(p, sizeof p, prefix, "mid_block1"), mid, mid, tdim, rng);
    attention_init(&u->mid_attn, ps, nn_join(p, sizeof p, prefix, "mid_attn"), mid, spatial, cd, rng);
    resblock_init(&u->mid_block2, ps, nn_join(p, sizeof p, prefix, "mid_block2"), mid, mid, tdim, rng);
    resblock_init(&u->final_res_block, ps, nn_join(p, sizeof p, prefix, "final_res_block"), 2 * nf, nf, tdim, rng);
    conv2d_init(&u->final_conv, ps, nn_join(p, sizeof p, prefix, "final_conv"), nf, c->out_nc, 3, 1, 1, true, rng);
    return ps->failed ? -1 : 0;   /* out of memory or a name clash: the message is in t_errmsg() */
}

/* Shapes of the forward's inputs; false after t_error. */
static bool check_inputs(const ConditionalUNet *u, Tensor *xt, Tensor *cond, const float *time, Tensor *degra,
                         Tensor *content) {
    const UNetConfig *c = &u->cfg;
    char a[96], b[96];
    if (!time) {
        t_error("unet", "no time input");
        return false;
    }
    if (xt->ndim != 4 || !t_same_shape(xt, cond) || xt->shape[1] != c->in_nc || xt->shape[0] < 1 ||
        xt->shape[2] < 1 || xt->shape[3] < 1) {
        t_error("unet", "x_t %s and cond %s must both be [B, %d, H, W]", t_shape_str(xt, a, sizeof a),
                t_shape_str(cond, b, sizeof b), c->in_nc);
        return false;
    }
    int64_t B = xt->shape[0], H = xt->shape[2], W = xt->shape[3], s = unet_pad_multiple(c);
    int64_t ph = (s - H % s) % s, pw = (s - W % s) % s;
    if (ph >= H || pw >= W) {
        t_error("unet", "a %lldx%lld image is too small: reflect padding to a multiple of %lld adds %lldx%lld, "
                        "which must be smaller than the image",
                (long long)H, (long long)W, (long long)s, (long long)ph, (long long)pw);
        return false;
    }
    Tensor *ctx[2] = {c->use_degra_context ? degra : NULL, c->use_image_context ? content : NULL};
    const char *names[2] = {"degradation", "content"};
    for (int k = 0; k < 2; k++)
        if (ctx[k] && (ctx[k]->ndim != 2 || ctx[k]->shape[0] != B || ctx[k]->shape[1] != c->context_dim)) {
            t_error("unet", "%s embedding %s, expected [%lld, %d]", names[k], t_shape_str(ctx[k], a, sizeof a),
                    (long long)B, c->context_dim);
            return false;
        }
    if (c->use_image_context && !content) {
        t_error("unet", "the model uses the content embedding (use_image_context) and none was given");
        return false;
    }
    return true;
}

/* Without a tape, a block's intermediates are dead once it returns. The forward then keeps the arena as a
 * stack: `settle` moves a block's result down to a mark (releasing everything above it), so what stays is
 * the result, the skips and the stem, not every intermediate (a 256² forward: ≈2 GB of arena before).
 * With the tape on, settle does nothing (the tape holds the intermediates for backward). */
typedef struct {
    bool on;
} Compactor;

static Tensor *settle(const Compactor *k, Tensor *y, size_t mark) {
    if (!k->on || !y) return y;
    int64_t shape[T_MAX_DIMS];
    int nd = y->ndim;
    memcpy(shape, y->shape, sizeof shape);
    y = t_contiguous(y);
    if (!y) return NULL;
    size_t bytes = sizeof(float) * (size_t)t_numel(y);
    const float *src = y->data;
    t_arena_release(mark);
    /* the new block lies at or below src (the first fit above mark), so memmove may run over it */
    float *dst = t_arena_alloc(bytes);
    if (!dst) return NULL;
    memmove(dst, src, bytes);
    return t_wrap(dst, nd, shape);
}

Tensor *unet_forward(const ConditionalUNet *u, Tensor *xt, Tensor *cond, const float *time, Tensor *degra,
                     Tensor *content) {
    if (!xt || !cond) return NULL;
    if (!check_inputs(u, xt, cond, time, degra, content)) return NULL;
    const UNetConfig *c = &u->cfg;
    int64_t B = xt->shape[0], H = xt->shape[2], W = xt->shape[3], s = unet_pad_multiple(c);
    const Compactor k = {.on = !t_grad_enabled()};
    const size_t start = t_arena_mark();

    Tensor *in[2] = {t_sub(xt, cond), cond};
    Tensor *x = t_concat(2, in, 1);                                   /* [B, 2·in_nc, H, W] */
    x = t_pad2d(x, 0, (int)((s - W % s) % s), 0, (int)((s - H % s) % s), T_PAD_REFLECT);
    x = settle(&k, conv2d_forward(&u->init_conv, x), start);          /* [B, nf, H', W'] */
    Tensor *stem = x;

    Tensor *temb = time_mlp_forward(&u->time_mlp, time, B);           /* [B, time_dim] */
    if (c->use_degra_context && degra) {
        /* the degradation prompt: softmax over the time_dim features, weighting the learned prompt */
        Tensor *w = linear_forward(&u->text_mlp2, t_silu(linear_forward(&u->text_mlp0, degra)));
        temb = t_add(temb, linear_forward(&u->prompt_mlp, t_mul(t_softmax(w, 1), u->prompt)));
    }
    /* The content embedding is the cross-attention context: ONE token per image. The softmax over a single
     * key is exactly 1, so every pixel's attn2 output is to_out(to_v(context)): nn/spatial_transformer
     * computes that vector once per image per call ([B, 1, C]) and adds it by broadcasting, never per pixel
     * (to_q, to_k and norm2 get their exact zero gradients by not being used). */
    Tensor *ctx = c->use_image_context ? t_reshape(content, T_SHAPE(B, 1, c->context_dim)) : NULL;

    /* x_mark: where x starts when x is dead after its next block (the stem is not: it is the long skip) */
    size_t x_mark = t_arena_mark(), skip_mark[2 * UNET_MAX_DEPTH];
    bool x_dead_after = false;
    Tensor *skips[2 * UNET_MAX_DEPTH];
    int ns = 0;
    for (int i = 0; i < c->depth; i++) {
        const UNetLevel *l = &u->downs[i];
        size_t m = x_dead_after ? x_mark : t_arena_mark();
        skip_mark[ns] = m;
        x = settle(&k, resblock_forward(&l->block1, x, temb), m);
        skips[ns++] = x;
        m = skip_mark[ns] = t_arena_mark();
        x = settle(&k, attention_forward(&l->attn, resblock_forward(&l->block2, x, temb), ctx), m);
        skips[ns++] = x;
        x_mark = t_arena_mark();
        x = settle(&k, level_resample(l, x), x_mark);
        x_dead_after = true;
    }
    x = settle(&k, resblock_forward(&u->mid_block1, x, temb), x_mark);
    x = settle(&k, attention_forward(&u->mid_attn, x, ctx), x_mark);
    x = settle(&k, resblock_forward(&u->mid_block2, x, temb), x_mark);
    for (int j = 0; j < c->depth; j++) {
        const UNetLevel *l = &u->ups[j];
        /* each skip lies just below x: once consumed, both are dead */
        Tensor *skip = skips[--ns];
        x = settle(&k, resblock_forward_cat(&l->block1, x, skip, temb), skip_mark[ns]);
        skip = skips[--ns];
        x_mark = skip_mark[ns];
        x = settle(&k, resblock_forward_cat(&l->block2, x, skip, temb), x_mark);
        x = settle(&k, level_resample(l, attention_forward(&l->attn, x, ctx)), x_mark);
    }
    x = resblock_forward_cat(&u->final_res_block, x, stem, temb);
    x = conv2d_forward(&u->final_conv, x);                            /* [B, out_nc, H', W'] */
    if (x && (x->shape[2] != H || x->shape[3] != W)) x = t_contiguous(t_slice(t_slice(x, 2, 0, H), 3, 0, W));
    return settle(&k, x, start);
}

/* ---------------------------------------------------------------- model files */

int unet_save_file(const ParamSet *ps, const UNetConfig *cfg, const char *path) {
    char meta[512];
    if (unet_config_validate(cfg)) return -1;
    if (unet_config_to_json(cfg, meta, sizeof meta)) {
        t_set_errmsg("%s: U-Net metadata too long", path);
        return -1;
    }
    return params_save_file(ps, path, meta);
}

int unet_load_file(const char *path, ConditionalUNet *u, ParamSet *ps) {
    StFile *f = st_open(path);
    if (!f) return -1;
    UNetConfig cfg;
    int rc = unet_config_from_file(f, &cfg);
    st_close(f);
    if (rc) return -1;
    if (unet_init(u, ps, "", &cfg, NULL)) {   /* no random start: the strict load overwrites every value */
        char why[512];
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("%s: %s", path, why);
        return -1;
    }
    LoadReport rep;
    if (params_load_file(ps, path, true, NULL, &rep)) {
        char why[900];   /* already names the file */
        snprintf(why, sizeof why, "%s", t_errmsg());
        t_set_errmsg("%s (the tensors do not match the U-Net configuration in the file's metadata)", why);
        return -1;
    }
    return 0;
}
