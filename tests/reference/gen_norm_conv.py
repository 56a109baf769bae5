"""Reference outputs and gradients for the norm / conv / resampling ops (tests/test_ops_norm_conv.c).
Run from the repo root with Debian's torch: /usr/bin/python3 tests/reference/gen_norm_conv.py
Inputs are float32; references are computed in float64 from those exact values. Each case stores its
inputs, the upstream gradient `gy`, the output `y` and the input gradients `d<name>`."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402

OUT = "tests/fixtures"
g = torch.Generator().manual_seed(1234)


def rand(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, generator=g) * (hi - lo) + lo).float()


def case(prefix, fn, inputs, arrays):
    """inputs: dict name -> float32 tensor; fn(**float64 leaves) -> output."""
    leaves = {k: v.double().requires_grad_() for k, v in inputs.items()}
    y = fn(**leaves)
    gy = rand(*y.shape)
    y.backward(gy.double())
    for k, v in inputs.items():
        arrays[f"{prefix}.{k}"] = v
        arrays[f"{prefix}.d{k}"] = leaves[k].grad
    arrays[f"{prefix}.gy"] = gy
    arrays[f"{prefix}.y"] = y


def channel_ln(x, g_, eps=1e-5):
    # the IR-SDE U-Net's LayerNorm: per pixel over C, biased variance, gain only
    var = torch.var(x, dim=1, unbiased=False, keepdim=True)
    mean = torch.mean(x, dim=1, keepdim=True)
    return (x - mean) * (var + eps).rsqrt() * g_


def norms():
    a = {}
    case("ln", lambda x, w, b: F.layer_norm(x, (32,), w, b, 1e-5),
         {"x": rand(4, 7, 32, lo=-3, hi=2), "w": rand(32, lo=0.5, hi=1.5), "b": rand(32)}, a)
    case("ln_plain", lambda x: F.layer_norm(x, (768,), None, None, 1e-6), {"x": rand(3, 768, lo=-2, hi=4)}, a)
    case("gn", lambda x, w, b: F.group_norm(x, 4, w, b, 1e-5),
         {"x": rand(2, 8, 5, 6, lo=-2, hi=3), "w": rand(8, lo=0.5, hi=1.5), "b": rand(8)}, a)
    case("gn32", lambda x, w, b: F.group_norm(x, 32, w, b, 1e-6),
         {"x": rand(1, 64, 6, 6), "w": rand(64, lo=0.5, hi=1.5), "b": rand(64)}, a)
    case("cln", lambda x, g_: channel_ln(x, g_),
         {"x": rand(2, 6, 5, 7, lo=-2, hi=3), "g_": rand(1, 6, 1, 1, lo=0.5, hi=1.5)}, a)
    case("cln_big", lambda x, g_: channel_ln(x, g_),
         {"x": rand(1, 8, 24, 25), "g_": rand(1, 8, 1, 1, lo=0.5, hi=1.5)}, a)
    write_fixture(f"{OUT}/norm_conv_norms.bin", a)


CONV_CASES = [
    # name, N, Cin, H, W, Cout, kh, kw, stride, pad, bias
    ("c3", 2, 4, 9, 9, 5, 3, 3, 1, 1, True),
    ("c3s2", 1, 8, 25, 22, 6, 3, 3, 2, 1, False),
    ("c4s2", 2, 4, 12, 10, 6, 4, 4, 2, 1, True),
    ("c1", 2, 8, 7, 6, 5, 1, 1, 1, 0, True),
    ("c7", 1, 3, 20, 18, 4, 7, 7, 1, 3, True),
    ("c3big", 1, 2, 40, 24, 4, 3, 3, 1, 1, True),
]


def convs():
    a = {}
    for name, n, cin, h, w, cout, kh, kw, s, p, bias in CONV_CASES:
        ins = {"x": rand(n, cin, h, w), "w": rand(cout, cin, kh, kw, lo=-0.5, hi=0.5)}
        if bias:
            ins["b"] = rand(cout)
            case(name, lambda x, w, b, s=s, p=p: F.conv2d(x, w, b, s, p), ins, a)
        else:
            case(name, lambda x, w, s=s, p=p: F.conv2d(x, w, None, s, p), ins, a)
    case("up", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), {"x": rand(2, 3, 5, 4)}, a)
    case("pool2", lambda x: F.avg_pool2d(x, 2, 2), {"x": rand(2, 3, 8, 6)}, a)
    case("pool3s2", lambda x: F.avg_pool2d(x, 3, 2), {"x": rand(1, 4, 9, 7)}, a)
    write_fixture(f"{OUT}/norm_conv_convs.bin", a)


if __name__ == "__main__":
    norms()
    convs()
