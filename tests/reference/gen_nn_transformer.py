"""Fixtures for tests/test_nn_transformer.c: Linear, LayerNorm, Embedding, nn.MultiheadAttention (with and
without a causal mask), open_clip's ResidualAttentionBlock and a 2-block Transformer with DA-CLIP control
additions. Run: /usr/bin/python3 tests/reference/gen_nn_transformer.py  (writes tests/fixtures/nn_tf_*.bin)

Each fixture holds the module's state dict under its exact PyTorch names (the C test loads them into a
ParamSet by name, strictly) and, under names starting with "@", the input "@x", a random output
gradient "@dy", the output "@y", and "@grad.<name>" for the input and every parameter. The reference
runs in float64 (the C code runs in float32), so the tolerances in the test measure float32 error only.
Modules mirror open_clip (daclip-uir da-clip/src/open_clip/transformer.py): the block works in
(L, N, D) with a batch_first=False nn.MultiheadAttention and the Transformer permutes from (N, L, D)."""
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import write_fixture  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


class ResidualAttentionBlock(nn.Module):
    """open_clip's block (ls_init_value=None, exact GELU, plain LayerNorm), input (L, N, D)."""

    def __init__(self, d_model, n_head, mlp_ratio=4.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model)
        mlp_width = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d_model, mlp_width)), ("gelu", nn.GELU()),
                                              ("c_proj", nn.Linear(mlp_width, d_model))]))

    def forward(self, x, attn_mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """open_clip's Transformer with the DA-CLIP control hook; here control[i] is added after block i
    (the reference pops from the end; the C API takes the list already in block order)."""

    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x, attn_mask=None, control=None):
        x = x.permute(1, 0, 2)  # NLD -> LND
        hidden = []
        for i, r in enumerate(self.resblocks):
            x = r(x, attn_mask=attn_mask)
            if control is not None:
                x = x + control[i].permute(1, 0, 2)
            hidden.append(x.permute(1, 0, 2))
        return x.permute(1, 0, 2), hidden


def perturb(m, g):
    """Default init leaves biases at zero and norms at one; move them so every path is exercised."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias") or name.endswith("in_proj_bias"):
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) * 0.4 - 0.2)
            elif p.ndim == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def run(name, module, inputs, fwd, extra_inputs=None):
    """inputs: dict name -> tensor needing grad; fwd() returns (y, dict of extra outputs)."""
    g = torch.Generator().manual_seed(len(name))
    perturb(module, g)
    y, extra = fwd()
    dy = torch.randn(y.shape, generator=g, dtype=y.dtype)
    (y * dy).sum().backward()
    arrays = OrderedDict()
    for k, v in module.state_dict().items():
        arrays[k] = v
    for k, v in inputs.items():
        arrays["@" + k] = v
    for k, v in (extra_inputs or {}).items():
        arrays["@" + k] = v
    arrays["@y"] = y
    arrays["@dy"] = dy
    for k, v in extra.items():
        arrays["@" + k] = v
    for k, v in inputs.items():
        arrays["@grad." + k] = v.grad
    for k, p in module.named_parameters():
        arrays["@grad." + k] = p.grad
    path = os.path.join(OUT, "nn_tf_%s.bin" % name)
    write_fixture(path, arrays)
    print("%s: %d arrays, %d bytes" % (path, len(arrays), os.path.getsize(path)))


def leaf(g, *shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).requires_grad_(True)


def causal(L):
    return torch.full((L, L), float("-inf"), dtype=torch.float64).triu(1)


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    os.makedirs(OUT, exist_ok=True)

    lin = nn.Linear(7, 5).double()
    x = leaf(g, 2, 3, 7)
    run("linear", lin, {"x": x}, lambda: (lin(x), {}))

    lnb = nn.Linear(6, 4, bias=False).double()
    x = leaf(g, 5, 6)
    run("linear_nobias", lnb, {"x": x}, lambda: (lnb(x), {}))

    ln = nn.LayerNorm(8).double()
    x = leaf(g, 2, 3, 8, scale=2.0, shift=3.0)
    run("layernorm", ln, {"x": x}, lambda: (ln(x), {}))

    emb = nn.Embedding(10, 6).double()
    ids = torch.tensor([[1, 4, 4, 9], [0, 1, 7, 4]])
    run("embedding", emb, {}, lambda: (emb(ids), {}), extra_inputs={"ids": ids.double()})

    for tag, L, mask in (("mha", 5, None), ("mha_causal", 6, causal(6))):
        mha = nn.MultiheadAttention(16, 4, batch_first=True).double()
        x = leaf(g, 2, L, 16)
        run(tag, mha, {"x": x}, lambda: (mha(x, x, x, need_weights=False, attn_mask=mask)[0], {}))

    blk = ResidualAttentionBlock(16, 4).double()
    x = leaf(g, 2, 5, 16)
    run("block", blk, {"x": x}, lambda: (blk(x.permute(1, 0, 2)).permute(1, 0, 2), {}))

    tf = Transformer(16, 2, 4).double()
    x = leaf(g, 2, 6, 16)
    c0, c1 = leaf(g, 2, 6, 16, scale=0.5), leaf(g, 2, 6, 16, scale=0.5)

    def stack():
        y, hidden = tf(x, attn_mask=causal(6), control=[c0, c1])
        return y, {"hidden.0": hidden[0], "hidden.1": hidden[1]}

    run("stack", tf, {"x": x, "control.0": c0, "control.1": c1}, stack)


if __name__ == "__main__":
    main()
