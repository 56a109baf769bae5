#!/usr/bin/python3
"""Fixtures for tests/test_nn_unet.c: the IR-SDE ConditionalUNet building blocks (reference §5.3).

The modules below re-implement, with plain torch ops (no einops), the semantics of daclip-uir's
universal-image-restoration/config/daclip-sde/models/modules/{module_util,attention}.py, with the same
submodule names so that state_dict() keys are the official ones. Each case writes one file
tests/fixtures/nn_unet_<case>.bin holding:
  input.<name>   the inputs (x, time, context)
  param.<key>    every parameter under its official state-dict key (prefixed as inside the UNet)
  out            the forward output
  dout           a random upstream gradient; the loss is sum(out * dout)
  grad.<name>    d loss / d input, grad.<key> d loss / d parameter
Parameters are randomised (not PyTorch's init) so that zero-initialised ones (proj_out) still test.
Run from the repo root: /usr/bin/python3 tests/reference/gen_nn_unet.py"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures")


# ---------------------------------------------------------------- module_util.py semantics

class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs) + x


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        half = self.dim // 2
        f = torch.exp(torch.arange(half, device=x.device) * -(math.log(10000) / (half - 1)))
        e = x[:, None] * f[None, :]
        return torch.cat((e.sin(), e.cos()), dim=-1)


class ChannelLayerNorm(nn.Module):
    """module_util.LayerNorm: over C per pixel, population variance, gain only."""

    def __init__(self, dim):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x):
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) * (var + eps).rsqrt() * self.g


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x, *args, **kwargs):
        return self.fn(self.norm(x), *args, **kwargs)


def Upsample(dim, dim_out=None):
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim, dim_out or dim, 3, 1, 1))


def Downsample(dim, dim_out=None):
    return nn.Conv2d(dim, dim_out or dim, 4, 2, 1)


def default_conv(dim_in, dim_out, kernel_size=3, bias=False):
    return nn.Conv2d(dim_in, dim_out, kernel_size, padding=kernel_size // 2, bias=bias)


class Block(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = default_conv(dim_in, dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        x = self.proj(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResBlock(nn.Module):
    def __init__(self, dim_in, dim_out, time_emb_dim=None):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2)) if time_emb_dim else None
        self.block1 = Block(dim_in, dim_out)
        self.block2 = Block(dim_out, dim_out)
        self.res_conv = default_conv(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        scale_shift = None
        if self.mlp is not None and time_emb is not None:
            t = self.mlp(time_emb)[:, :, None, None]
            scale_shift = t.chunk(2, dim=1)
        h = self.block1(x, scale_shift=scale_shift)
        h = self.block2(h)
        return h + self.res_conv(x)


class LinearAttention(nn.Module):
    """module_util.LinearAttention (the one the UNet imports)."""

    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        hidden = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2)
        k = k.softmax(dim=-1)
        q = q * self.scale
        v = v / (h * w)
        ctx = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", ctx, q)
        return self.to_out(out.reshape(b, -1, h, w))


# ---------------------------------------------------------------- attention.py semantics

class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = int(dim * mult)
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x):
        return self.net(x)


class CrossAttention(nn.Module):
    def __init__(self, query_dim, context_dim=None, heads=8, dim_head=64):
        super().__init__()
        inner = dim_head * heads
        context_dim = context_dim or query_dim
        self.scale = dim_head ** -0.5
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x, context=None):
        h = self.heads
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)

        def split(t):  # 'b n (h d) -> (b h) n d'
            b, n, _ = t.shape
            return t.reshape(b, n, h, -1).permute(0, 2, 1, 3).reshape(b * h, n, -1)

        q, k, v = split(q), split(k), split(v)
        attn = (torch.einsum("bid,bjd->bij", q, k) * self.scale).softmax(dim=-1)
        out = torch.einsum("bij,bjd->bid", attn, v)
        bh, n, d = out.shape
        out = out.reshape(bh // h, h, n, d).permute(0, 2, 1, 3).reshape(bh // h, n, h * d)
        return self.to_out(out)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, n_heads, d_head, context_dim=None):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads=n_heads, dim_head=d_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim=context_dim, heads=n_heads, dim_head=d_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, context=None):  # checkpoint=True only changes memory, not the maths
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, in_channels, n_heads, d_head, depth=1, context_dim=None):
        super().__init__()
        inner = n_heads * d_head
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, n_heads, d_head, context_dim=context_dim) for _ in range(depth)])
        self.proj_out = nn.Conv2d(inner, in_channels, 1)   # zero_module() at construction

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        x_in = x
        x = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, -1)
        for blk in self.transformer_blocks:
            x = blk(x, context=context)
        x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return self.proj_out(x) + x_in


class TimeMLP(nn.Module):
    """ConditionalUNet.time_mlp: SinusoidalPosEmb(nf) -> Linear -> GELU -> Linear (keys time_mlp.1, .3)."""

    def __init__(self, nf, time_dim):
        super().__init__()
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(nf), nn.Linear(nf, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))

    def forward(self, t):
        return self.time_mlp(t)


# ---------------------------------------------------------------- fixture writing

def randomise(module, gen):
    """Gains near 1 and small biases for norms; U(+-1/sqrt(fan_in)) for weights; U(+-0.3) for biases."""
    def u(shape):
        return torch.rand(shape, generator=gen) * 2 - 1
    with torch.no_grad():
        for m in module.modules():
            for pname, p in m.named_parameters(recurse=False):
                if isinstance(m, (nn.LayerNorm, nn.GroupNorm, ChannelLayerNorm)):
                    p.copy_((1.0 if pname in ("weight", "g") else 0.0) + 0.1 * u(p.shape))
                elif p.dim() > 1:
                    p.copy_(u(p.shape) / math.sqrt(p[0].numel()))
                else:
                    p.copy_(0.3 * u(p.shape))


def case(name, module, prefix, inputs, call, seed, key_prefix=""):
    """inputs: dict name -> tensor (float ones get grads). call(module, **inputs) -> output."""
    gen = torch.Generator().manual_seed(seed)
    randomise(module, gen)
    ins = {k: v.clone().requires_grad_(v.is_floating_point() and k != "time") for k, v in inputs.items()}
    out = call(module, **ins)
    dout = torch.rand(out.shape, generator=gen) * 2 - 1
    (out * dout).sum().backward()
    arrays = {}
    for k, v in ins.items():
        arrays["input." + k] = v
    for k, p in module.state_dict(keep_vars=True).items():
        full = key_prefix + k
        arrays["param." + prefix + full] = p
    arrays["out"] = out
    arrays["dout"] = dout
    for k, v in ins.items():
        if v.grad is not None:
            arrays["grad." + k] = v.grad
    for k, p in module.named_parameters():
        arrays["grad." + prefix + key_prefix + k] = p.grad if p.grad is not None else torch.zeros_like(p)
    path = os.path.join(OUT, "nn_unet_%s.bin" % name)
    write_fixture(path, arrays)
    print("%-28s %7d bytes, %d arrays" % (os.path.basename(path), os.path.getsize(path), len(arrays)))


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)

    def rnd(*shape, lo=-1.0, hi=1.0):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    # Conv2d: 3x3 pad 1 no bias, 4x4 stride 2 pad 1 with bias, 7x7 pad 3, 1x1 with bias
    case("conv3x3", default_conv(5, 6, 3), "m.", {"x": rnd(2, 5, 7, 6)}, lambda m, x: m(x), 10)
    case("conv4x4s2", nn.Conv2d(4, 6, 4, 2, 1), "m.", {"x": rnd(2, 4, 8, 6)}, lambda m, x: m(x), 11)
    case("conv7x7", default_conv(6, 4, 7), "init_conv.", {"x": rnd(1, 6, 9, 8)}, lambda m, x: m(x), 12)
    case("conv1x1", nn.Conv2d(8, 5, 1), "m.", {"x": rnd(2, 8, 3, 4)}, lambda m, x: m(x), 13)
    case("conv3x3s2p0", nn.Conv2d(3, 4, (3, 3), 2, 0), "m.", {"x": rnd(2, 3, 9, 8)}, lambda m, x: m(x), 14)
    # GroupNorm(32, 64, eps 1e-6) as in SpatialTransformer.norm
    case("groupnorm", nn.GroupNorm(32, 64, eps=1e-6), "norm.", {"x": rnd(2, 64, 3, 5, lo=-2, hi=3)},
         lambda m, x: m(x), 20)
    case("chan_ln", ChannelLayerNorm(12), "fn.norm.", {"x": rnd(2, 12, 4, 3, lo=-2, hi=3)}, lambda m, x: m(x), 21)
    # time embedding + time_mlp (nf 16 -> time_dim 64), integer steps as in IR-SDE
    case("time_mlp", TimeMLP(16, 64), "", {"time": torch.tensor([1.0, 37.0, 100.0])}, lambda m, time: m(time), 30)
    # ResBlocks: with time embedding and a channel change (res_conv), and without (identity)
    case("resblock", ResBlock(8, 12, time_emb_dim=16), "downs.0.0.",
         {"x": rnd(2, 8, 6, 5), "temb": rnd(2, 16)}, lambda m, x, temb: m(x, temb), 40)
    case("resblock_same", ResBlock(8, 8, time_emb_dim=16), "mid_block1.",
         {"x": rnd(2, 8, 5, 4), "temb": rnd(2, 16)}, lambda m, x, temb: m(x, temb), 41)
    # Residual(PreNorm(dim, LinearAttention(dim))) as in downs.L.2, 4 heads x 32
    case("linattn", Residual(PreNorm(16, LinearAttention(16))), "downs.0.2.",
         {"x": rnd(2, 16, 5, 6)}, lambda m, x: m(x), 50)
    # CrossAttention: context of another width and length 3 (general path), and self-attention
    case("crossattn", CrossAttention(24, context_dim=20, heads=3, dim_head=8), "attn2.",
         {"x": rnd(2, 7, 24), "context": rnd(2, 3, 20)}, lambda m, x, context: m(x, context), 60)
    case("crossattn_one", CrossAttention(24, context_dim=20, heads=3, dim_head=8), "attn2.",
         {"x": rnd(2, 7, 24), "context": rnd(2, 1, 20)}, lambda m, x, context: m(x, context), 61)
    case("selfattn", CrossAttention(24, heads=2, dim_head=12), "attn1.",
         {"x": rnd(2, 9, 24)}, lambda m, x: m(x), 62)
    case("geglu", FeedForward(16), "ff.", {"x": rnd(2, 5, 16)}, lambda m, x: m(x), 70)
    # Residual(PreNorm(C, SpatialTransformer(C, heads, 32, context_dim))) as in downs.3.2 / mid_attn
    case("spatial", Residual(PreNorm(32, SpatialTransformer(32, 2, 16, context_dim=24))), "mid_attn.",
         {"x": rnd(2, 32, 4, 3), "context": rnd(2, 1, 24)}, lambda m, x, context: m(x, context=context), 80)
    case("down", Downsample(6, 8), "downs.1.3.", {"x": rnd(2, 6, 6, 8)}, lambda m, x: m(x), 90)
    case("up", Upsample(8, 6), "ups.1.3.", {"x": rnd(2, 8, 3, 4)}, lambda m, x: m(x), 91)


if __name__ == "__main__":
    main()
