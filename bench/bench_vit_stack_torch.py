"""PyTorch side of bench/bench_vit_stack.c: a 12-layer ViT-B/32-sized pre-norm transformer stack
(nn.TransformerEncoder, norm_first, exact GELU), batch 8 x 50 tokens x width 768, 12 heads, on CPU.
Prints CSV rows: impl,mode,threads,batch,seconds_per_iter,images_per_s,peak_rss_mb
Usage: /usr/bin/python3 bench/bench_vit_stack_torch.py [--threads 2] [--iters N] [--warmup N] [--mode fwd|fwdbwd|both]"""
import argparse
import resource
import time

import torch
import torch.nn as nn


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss is in KiB on Linux


def build(width, layers, heads):
    layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True, layer_norm_eps=1e-5)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def time_it(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--mode", default="both", choices=["fwd", "fwdbwd", "both"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(768, 12, 12)
    x = torch.randn(a.batch, 50, 768)
    if a.mode in ("fwd", "both"):
        model.eval()

        def fwd():
            with torch.no_grad():
                model(x)

        s = time_it(fwd, a.warmup, a.iters)
        print("torch,fwd,%d,%d,%.4f,%.2f,%.1f" % (a.threads, a.batch, s, a.batch / s, peak_rss_mb()), flush=True)
    if a.mode in ("fwdbwd", "both"):
        model.train()
        xg = x.clone().requires_grad_(True)

        def fwdbwd():
            model.zero_grad(set_to_none=False)
            model(xg).sum().backward()

        s = time_it(fwdbwd, a.warmup, a.iters)
        print("torch,fwdbwd,%d,%d,%.4f,%.2f,%.1f" % (a.threads, a.batch, s, a.batch / s, peak_rss_mb()), flush=True)


if __name__ == "__main__":
    main()
