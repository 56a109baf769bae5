"""Reference for clip/: open_clip's CLIP towers re-implemented in PyTorch with open_clip's module and
parameter names (VisionTransformer, text tower, ResidualAttentionBlock with nn.MultiheadAttention and
exact GELU, LayerNorm eps 1e-5). Writes
  tests/fixtures/clip_small.bin : a small random CLIP: every parameter, an image batch, token ids, both
                                  towers' outputs, and the gradient of every parameter and of the image for
                                  L = sum(r_i * image_features) + sum(r_t * text_features)
  tests/fixtures/clip_vitb32.bin: ViT-B-32 image-tower features (no grad) for a fixed image, with weights
                                  from the formula in synth_weight() (reproduced in the C test), so the
                                  350 MB of weights need not be committed.
Run: /usr/bin/python3 tests/reference/gen_clip.py"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402

torch.set_num_threads(2)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, h)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(d, d * 4))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(d * 4, d))

    def forward(self, x, mask=None):  # x: (L, N, D) as open_clip
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, d, layers, h):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(d, h) for _ in range(layers)])

    def forward(self, x, mask=None):
        for r in self.resblocks:
            x = r(x, mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, image_size, patch, width, layers, heads, out_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        scale = width ** -0.5
        grid = image_size // patch
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, out_dim))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, embed, image_size, patch, vw, vl, vh, ctx, vocab, tw, th, tl):
        super().__init__()
        self.visual = VisionTransformer(image_size, patch, vw, vl, vh, embed)
        self.transformer = Transformer(tw, tl, th)
        self.token_embedding = nn.Embedding(vocab, tw)
        self.positional_embedding = nn.Parameter(torch.randn(ctx, tw) * 0.01)
        self.ln_final = nn.LayerNorm(tw)
        self.text_projection = nn.Parameter(torch.randn(tw, embed) * tw ** -0.5)
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        mask = torch.empty(ctx, ctx).fill_(float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)

    def encode_image(self, img):
        return self.visual(img)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2), self.attn_mask).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


def small():
    torch.manual_seed(0)
    m = CLIP(24, 32, 8, 32, 2, 2, 16, 100, 32, 2, 2)
    # make LayerNorm affine parameters non-trivial so their gradients are checked for real
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "ln" in n:
                p.add_(0.1 * torch.randn_like(p))
    img = torch.randn(3, 3, 32, 32, requires_grad=True)
    ids = torch.zeros(3, 16, dtype=torch.long)
    lens = [5, 16, 9]
    for b, n in enumerate(lens):
        ids[b, 0] = 98
        ids[b, 1:n - 1] = torch.randint(1, 97, (n - 2,))
        ids[b, n - 1] = 99  # EOT = the largest id
    fi = m.encode_image(img)
    ft = m.encode_text(ids)
    ri, rt = torch.randn_like(fi), torch.randn_like(ft)
    ((fi * ri).sum() + (ft * rt).sum()).backward()
    arrays = {}
    for n, p in m.named_parameters():
        arrays["param." + n] = p
        arrays["grad." + n] = p.grad if p.grad is not None else torch.zeros_like(p)
    arrays.update({"img": img, "grad.img": img.grad, "ids": ids.float(), "image_features": fi,
                   "text_features": ft, "r_img": ri, "r_txt": rt})
    write_fixture(os.path.join(os.path.dirname(__file__), "../fixtures/clip_small.bin"), arrays)


def synth_weight(name, shape):
    """Deterministic weights reproduced in C (tests/test_clip_model.c): a hash of the name seeds a
    32-bit LCG-like mix per element; values in [-a, a) with a = 1/sqrt(fan) (fan = last dim), LayerNorm
    weights around 1."""
    h = 2166136261
    for ch in name.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    n = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(n, dtype=np.uint64)
    x = (i * np.uint64(2654435761) + np.uint64(h)) & np.uint64(0xFFFFFFFF)
    x = (x ^ (x >> np.uint64(15))) * np.uint64(2246822519) & np.uint64(0xFFFFFFFF)
    x = (x ^ (x >> np.uint64(13)))
    u = (x & np.uint64(0xFFFFFF)).astype(np.float64) / float(1 << 24) - 0.5  # [-0.5, 0.5)
    fan = shape[-1] if len(shape) else 1
    if name.endswith("conv1.weight"):
        fan = int(np.prod(shape[1:]))
    a = 2.0 / math.sqrt(fan)
    v = (u * a).astype(np.float32)
    if ("ln_" in name) and name.endswith("weight"):
        v = (1.0 + u * 0.2).astype(np.float32)
    return torch.from_numpy(v.reshape(shape))


def vitb32():
    v = VisionTransformer(224, 32, 768, 12, 12, 512)
    with torch.no_grad():
        for n, p in v.named_parameters():
            p.copy_(synth_weight("visual." + n, tuple(p.shape)))
    yy, xx = np.meshgrid(np.arange(224), np.arange(224), indexing="ij")
    img = np.stack([np.sin(xx / 17.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)]).astype(np.float32)
    img_t = torch.from_numpy(img)[None]
    with torch.no_grad():
        f = v(img_t)
    write_fixture(os.path.join(os.path.dirname(__file__), "../fixtures/clip_vitb32.bin"),
                  {"image_features": f})


if __name__ == "__main__":
    small()
    vitb32()
    print("wrote clip fixtures")
