/* ResBlock with time-embedding scale/shift (fused into its convolutions), and the standalone fused
 * modulation + SiLU and SiLU + residual ops. */
#include "nn/resblock.h"

#include "tensor/conv_act.h"
#include "tensor/conv_fused.h"
#include "tensor/ops.h"

void resblock_init(ResBlock *b, ParamSet *ps, const char *prefix, int64_t dim_in, int64_t dim_out,
                   int64_t time_emb_dim, TRng *r) {
    char p[256];
    /* registration order follows the PyTorch module: mlp, block1, block2, res_conv */
    b->has_mlp = time_emb_dim > 0;
    if (b->has_mlp) linear_init(&b->mlp, ps, nn_join(p, sizeof p, prefix, "mlp.1"), time_emb_dim, 2 * dim_out, true, r);
    conv2d_init(&b->block1, ps, nn_join(p, sizeof p, prefix, "block1.proj"), dim_in, dim_out, 3, 1, 1, false, r);
    conv2d_init(&b->block2, ps, nn_join(p, sizeof p, prefix, "block2.proj"), dim_out, dim_out, 3, 1, 1, false, r);
    b->has_res_conv = dim_in != dim_out;
    if (b->has_res_conv)
        conv2d_init(&b->res_conv, ps, nn_join(p, sizeof p, prefix, "res_conv"), dim_in, dim_out, 1, 1, 0, false, r);
}

Tensor *resblock_forward(const ResBlock *b, Tensor *x, Tensor *temb) { return resblock_forward_cat(b, x, NULL, temb); }

/* Each convolution is one fused op (tensor/conv_fused.h): block1 reads cat(x, skip) in place and applies
 * the modulation + SiLU as it stores; block2 applies its SiLU and the residual add the same way. */
Tensor *resblock_forward_cat(const ResBlock *b, Tensor *x, Tensor *skip, Tensor *temb) {
    if (!x) return NULL;
    ConvFusedArgs c1 = {.x = x, .x2 = skip, .w = b->block1.weight, .stride = b->block1.stride, .pad = b->block1.pad};
    if (b->has_mlp && temb) {
        c1.act = CONV_ACT_SCALE_SHIFT_SILU;
        c1.ss = linear_forward(&b->mlp, t_silu(temb));   /* [N, 2·Cout]: scale, shift */
        if (!c1.ss) return NULL;
    }
    Tensor *h = t_conv2d_fused(&c1);
    if (c1.act == CONV_ACT_NONE) h = t_silu(h);
    Tensor *r = x;
    if (b->has_res_conv) {
        ConvFusedArgs cr = {.x = x, .x2 = skip, .w = b->res_conv.weight, .stride = 1};
        r = t_conv2d_fused(&cr);
    } else if (skip) {
        Tensor *parts[2] = {x, skip};
        r = t_concat(2, parts, 1);
    }
    if (!h || !r) return NULL;
    ConvFusedArgs c2 = {.x = h, .w = b->block2.weight, .stride = b->block2.stride, .pad = b->block2.pad,
                        .act = CONV_ACT_SILU_ADD, .res = r};
    return t_conv2d_fused(&c2);
}

/* ---------------------------------------------------------------- fused scale/shift + SiLU */

static void scale_shift_silu_backward(TNode *n) {
    Tensor *h = n->in[0], *ss = n->in[1], *y = n->out;
    int64_t N = h->shape[0], C = h->shape[1], P = t_numel(h) / (N * C);
    float *dh = h->requires_grad ? t_grad_buf(h) : NULL;
    float *dss = ss->requires_grad ? t_grad_buf(ss) : NULL;
#pragma omp parallel for schedule(static) if (N * C * P > 32768)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t b = nc / C, c = nc % C;
        float dscale, dshift;
        act_sss_backward(h->data + nc * P, y->grad + nc * P, dh ? dh + nc * P : NULL, true, P,
                         1.0f + ss->data[b * 2 * C + c], ss->data[b * 2 * C + C + c], &dscale, &dshift);
        if (dss) {   /* each (b, c) pair is owned by one iteration: no race */
            dss[b * 2 * C + c] += dscale;
            dss[b * 2 * C + C + c] += dshift;
        }
    }
}

Tensor *nn_scale_shift_silu(Tensor *h, Tensor *ss) {
    if (!h || !ss) return NULL;
    char sh[96], sv[96];
    if (h->ndim < 2 || ss->ndim != 2 || ss->shape[0] != h->shape[0] || ss->shape[1] != 2 * h->shape[1]) {
        t_error("scale_shift_silu", "h %s needs ss [N, 2C], got %s", t_shape_str(h, sh, sizeof sh),
                t_shape_str(ss, sv, sizeof sv));
        return NULL;
    }
    h = t_contiguous(h);
    if (!h) return NULL;
    ss = t_contiguous(ss);
    if (!ss) return NULL;
    int64_t N = h->shape[0], C = h->shape[1], P = t_numel(h) / (N * C);
    Tensor *y = t_new_like(h);
    if (!y) return NULL;
#pragma omp parallel for schedule(static) if (N * C * P > 32768)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t b = nc / C, c = nc % C;
        act_sss_forward(h->data + nc * P, y->data + nc * P, P, 1.0f + ss->data[b * 2 * C + c],
                        ss->data[b * 2 * C + C + c]);
    }
    Tensor *in[2] = {h, ss};
    t_record("scale_shift_silu", y, scale_shift_silu_backward, 2, in);
    return y;
}

/* ---------------------------------------------------------------- fused SiLU + residual */

#define SILU_CHUNK 16384

static void silu_add_backward_node(TNode *n) {
    Tensor *a = n->in[0], *r = n->in[1], *y = n->out;
    int64_t total = t_numel(y);
    if (a->requires_grad) {
        float *da = t_grad_buf(a);
#pragma omp parallel for schedule(static) if (total > 32768)
        for (int64_t c = 0; c < total; c += SILU_CHUNK)
            act_silu_backward(a->data + c, y->grad + c, da + c, true, total - c < SILU_CHUNK ? total - c : SILU_CHUNK);
    }
    if (r->requires_grad) {
        float *dr = t_grad_buf(r);
#pragma omp parallel for schedule(static) if (total > 32768)
        for (int64_t i = 0; i < total; i++) dr[i] += y->grad[i];
    }
}

Tensor *nn_silu_add(Tensor *a, Tensor *r) {
    if (!a || !r) return NULL;
    char sa[96], sr[96];
    if (!t_same_shape(a, r)) {
        t_error("silu_add", "shapes differ: %s and %s", t_shape_str(a, sa, sizeof sa), t_shape_str(r, sr, sizeof sr));
        return NULL;
    }
    a = t_contiguous(a);
    if (!a) return NULL;
    r = t_contiguous(r);
    if (!r) return NULL;
    Tensor *y = t_new_like(a);
    if (!y) return NULL;
    int64_t total = t_numel(y);
#pragma omp parallel for schedule(static) if (total > 32768)
    for (int64_t c = 0; c < total; c += SILU_CHUNK)
        act_silu_add_forward(a->data + c, r->data + c, y->data + c, total - c < SILU_CHUNK ? total - c : SILU_CHUNK);
    Tensor *in[2] = {a, r};
    t_record("silu_add", y, silu_add_backward_node, 2, in);
    return y;
}
