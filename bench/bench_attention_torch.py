"""PyTorch side of bench/bench_attention.c: softmax(q k^T * scale) v at the same shapes, forward and
forward+backward, float32, 2 threads. Run: /usr/bin/python3 bench/bench_attention_torch.py [B H L D]"""
import sys
import time

import torch

torch.set_num_threads(2)
B, H, L, D = (int(a) for a in sys.argv[1:5]) if len(sys.argv) == 5 else (8, 12, 50, 64)
q, k, v = (torch.rand(B, H, L, D) * 2 - 1 for _ in range(3))


def attn(q, k, v):
    return torch.softmax((q @ k.transpose(-1, -2)) * D ** -0.5, -1) @ v


def fwd():
    with torch.no_grad():
        attn(q, k, v)


def fwd_bwd():
    qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
    attn(qq, kk, vv).sum().backward()


def median_ms(fn):
    fn()
    s = []
    for _ in range(15):
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        s.append((time.perf_counter() - t0) / 10 * 1e3)
    return sorted(s)[7]


print("# torch attention B=%d H=%d L=%d D=%d, 2 threads\nname,ms" % (B, H, L, D))
print("torch forward,%.4f" % median_ms(fwd))
print("torch forward+backward (incl. 3 clones),%.4f" % median_ms(fwd_bwd))
