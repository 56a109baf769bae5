"""PyTorch reference for tests/test_ops_parity.c: forward outputs and input gradients of every op in
tensor/ops.h (except the norm / conv / resampling ops) on fixed inputs.

For each case: inputs <case>.x0, <case>.x1, ... (float32), a random upstream gradient <case>.gy, the
output <case>.y and the gradients <case>.g0, ... of sum(gy * y). Integer arguments (embedding ids,
cross-entropy targets) are stored as float arrays <case>.ids. Cases are grouped into three fixture
files. Run: /usr/bin/python3 tests/reference/gen_ops.py (writes tests/fixtures/ops_*.bin)."""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402

torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def rand(*shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape, dtype=torch.float64) * (hi - lo) + lo


def case(arrays, name, fn, inputs, ids=None):
    """inputs: float64 tensors (rounded to float32 first so C sees the same values); computed in float64."""
    xs = [x.float().double().requires_grad_(True) for x in inputs]
    y = fn(*xs)
    gy = torch.rand_like(y) * 2 - 1
    gy = gy.float().double()
    y.backward(gy)
    for i, x in enumerate(xs):
        arrays["%s.x%d" % (name, i)] = x
        arrays["%s.g%d" % (name, i)] = x.grad if x.grad is not None else torch.zeros_like(x)
    arrays[name + ".y"] = y
    arrays[name + ".gy"] = gy
    if ids is not None:
        arrays[name + ".ids"] = torch.tensor(ids, dtype=torch.float64)


def elementwise():
    a = {}
    case(a, "add", lambda x, y: x + y, [rand(3, 4, 5), rand(4, 1)])
    case(a, "sub", lambda x, y: x - y, [rand(3, 1, 5), rand(4, 5)])
    case(a, "mul", lambda x, y: x * y, [rand(2, 3, 4), rand(3, 1)])
    case(a, "div", lambda x, y: x / y, [rand(2, 3, 4), rand(4, lo=0.5, hi=2)])
    case(a, "axpby", lambda x, y: 0.5 * x - 2.0 * y, [rand(3, 4), rand(4)])
    case(a, "add_scalar", lambda x: x + 1.5, [rand(4, 5)])
    case(a, "mul_scalar", lambda x: x * -3.0, [rand(4, 5)])
    case(a, "pow_scalar", lambda x: x ** 3.0, [rand(4, 5)])
    case(a, "pow_half", lambda x: x ** 0.5, [rand(4, 5, lo=0.2, hi=3)])
    pos = lambda: rand(4, 5, lo=0.2, hi=3)  # noqa: E731
    sym = lambda: rand(4, 5, lo=-3, hi=3)  # noqa: E731
    case(a, "neg", lambda x: -x, [sym()])
    case(a, "exp", torch.exp, [sym()])
    case(a, "log", torch.log, [pos()])
    case(a, "sqrt", torch.sqrt, [pos()])
    case(a, "rsqrt", torch.rsqrt, [pos()])
    case(a, "abs", torch.abs, [sym()])
    case(a, "clamp", lambda x: torch.clamp(x, -0.5, 0.5), [sym()])
    case(a, "relu", torch.relu, [sym()])
    case(a, "gelu", lambda x: F.gelu(x), [sym()])
    case(a, "quick_gelu", lambda x: x * torch.sigmoid(1.702 * x), [sym()])
    case(a, "silu", F.silu, [sym()])
    case(a, "sigmoid", torch.sigmoid, [sym()])
    case(a, "tanh", torch.tanh, [sym()])
    write_fixture(os.path.join(OUT, "ops_elementwise.bin"), a)


def reduce_matmul():
    a = {}
    case(a, "sum", lambda x: x.sum(dim=(0, 2), keepdim=True), [rand(3, 4, 5)])
    case(a, "sum_all", lambda x: x.sum(), [rand(3, 4, 5)])
    case(a, "mean", lambda x: x.mean(dim=1), [rand(3, 4, 5)])
    case(a, "var", lambda x: x.var(dim=-1, unbiased=True, keepdim=True), [rand(3, 4, 5)])
    case(a, "var_pop", lambda x: x.var(unbiased=False), [rand(3, 4, 5)])
    case(a, "max", lambda x: x.max(dim=1).values, [rand(3, 4, 5)])
    case(a, "matmul", lambda x, y: x @ y, [rand(2, 3, 4, 5), rand(5, 6)])
    case(a, "matmul_bt", lambda x, y: x @ y.transpose(-1, -2), [rand(2, 4, 5), rand(2, 6, 5)])
    case(a, "linear", lambda x, w, b: F.linear(x, w, b), [rand(3, 4, 6), rand(5, 6), rand(5)])
    # views: permute, slice, select, reshape, unsqueeze/squeeze chained, then a product to mix them
    case(a, "views",
         lambda x: (x.permute(2, 0, 1)[1:3].reshape(2, 6).unsqueeze(0).squeeze(0) *
                    x.transpose(1, 2)[1].reshape(12)[:6]),
         [rand(2, 3, 4)])
    write_fixture(os.path.join(OUT, "ops_reduce_matmul.bin"), a)


def nn_ops():
    a = {}
    case(a, "softmax_last", lambda x: torch.softmax(x, -1), [rand(3, 4, 7, lo=-3, hi=3)])
    case(a, "softmax_mid", lambda x: torch.softmax(x, 1), [rand(3, 4, 7, lo=-3, hi=3)])
    case(a, "log_softmax_last", lambda x: torch.log_softmax(x, -1), [rand(3, 4, 7, lo=-3, hi=3)])
    case(a, "log_softmax_first", lambda x: torch.log_softmax(x, 0), [rand(3, 4, 7, lo=-3, hi=3)])

    def attention(q, k, v, mask, scale):
        s = (q @ k.transpose(-1, -2)) * scale
        if mask is not None:
            s = s + mask
        return torch.softmax(s, -1) @ v

    L = 6
    causal = torch.triu(torch.full((L, L), float("-inf"), dtype=torch.float64), diagonal=1)
    case(a, "attention_causal", lambda q, k, v: attention(q, k, v, causal, 1 / math.sqrt(8)),
         [rand(2, 3, L, 8), rand(2, 3, L, 8), rand(2, 3, L, 8)])
    case(a, "attention_cross", lambda q, k, v: attention(q, k, v, None, 0.3),
         [rand(2, 2, 4, 8), rand(2, 2, 7, 8), rand(2, 2, 7, 5)])
    # attention with a learned additive bias as the mask (its gradient is checked too)
    case(a, "attention_bias", lambda q, k, v, m: attention(q, k, v, m, 0.25),
         [rand(1, 2, 5, 4), rand(1, 2, 5, 4), rand(1, 2, 5, 4), rand(5, 5)])
    # from one fused projection [B, L, 3, H, D] as in a ViT block
    case(a, "attention_fused",
         lambda p: attention(p[:, :, 0].permute(0, 2, 1, 3), p[:, :, 1].permute(0, 2, 1, 3),
                             p[:, :, 2].permute(0, 2, 1, 3), None, 0.5),
         [rand(2, 5, 3, 2, 4)])

    case(a, "concat", lambda x, y, z: torch.cat([x, y, z], 1), [rand(2, 3, 4), rand(2, 1, 4), rand(2, 2, 4)])
    case(a, "split", lambda x: torch.cat([p * (i + 1) for i, p in enumerate(torch.split(x, [2, 4, 1], 1))], 1),
         [rand(2, 7, 3)])
    case(a, "chunk", lambda x: torch.cat([p * (i + 1) for i, p in enumerate(torch.chunk(x, 3, 1))], 1),
         [rand(2, 7, 3)])
    case(a, "pad_zero", lambda x: F.pad(x, (1, 2, 0, 3)), [rand(2, 2, 4, 5)])
    case(a, "pad_reflect", lambda x: F.pad(x, (2, 1, 3, 2), mode="reflect"), [rand(2, 2, 4, 5)])
    ids = [3, 0, 3, 4, 1, 3, 2]
    case(a, "embedding", lambda w: F.embedding(torch.tensor(ids), w), [rand(5, 6)], ids=ids)
    mask = (torch.arange(12).reshape(3, 4) % 3 == 0)
    a["masked_fill.mask"] = mask.double()
    case(a, "masked_fill", lambda x: x.masked_fill(mask.unsqueeze(1), -5.0), [rand(3, 2, 4)])
    case(a, "expand", lambda x: x.expand(2, 4, 3, 5) * 1.0, [rand(4, 1, 5)])
    case(a, "l1_loss", lambda p, t: F.l1_loss(p, t), [rand(3, 5), rand(3, 5)])
    case(a, "mse_loss", lambda p, t: F.mse_loss(p, t), [rand(3, 5), rand(3, 5)])
    targets = [2, 0, 6, 6, 1]
    case(a, "cross_entropy", lambda x: F.cross_entropy(x, torch.tensor(targets)), [rand(5, 7, lo=-3, hi=3)],
         ids=targets)
    write_fixture(os.path.join(OUT, "ops_nn.bin"), a)


if __name__ == "__main__":
    elementwise()
    reduce_matmul()
    nn_ops()
