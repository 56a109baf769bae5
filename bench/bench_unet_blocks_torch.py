"""PyTorch side of bench/bench_unet_blocks.c: the IR-SDE U-Net blocks on CPU, batch 4, forward+backward.
  st        Residual(PreNorm(256, SpatialTransformer(256, 8 heads x 32, context_dim 512))) on [4,256,32,32],
            context [4,1,512] (the U-Net's level-3 attention)
  resblock  ResBlock(128 -> 128, time_emb_dim 256) on [4,128,64,64]
The modules are the faithful re-implementations in tests/reference/gen_nn_unet.py (same maths and parameter
names as daclip-uir). The official BasicTransformerBlock runs under gradient checkpointing (checkpoint=True),
which recomputes its forward during backward; we time it WITHOUT checkpointing (PyTorch's faster case) and,
with --checkpoint, also with it.
Prints CSV rows: impl,block,mode,threads,batch,ms_per_iter,peak_rss_mb
Usage: /usr/bin/python3 bench/bench_unet_blocks_torch.py [--threads 2] [--iters N] [--warmup N] [--checkpoint]
       [--only st|resblock]"""
import argparse
import os
import resource
import sys
import time

import torch
import torch.utils.checkpoint

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import gen_nn_unet as ref  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_it(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    best = float("inf")
    total = 0.0
    cpu0 = time.process_time()
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        total += dt
        best = min(best, dt)
    return total / iters, best, (time.process_time() - cpu0) / iters


class Checkpointed(torch.nn.Module):
    """BasicTransformerBlock.forward as the official code runs it: checkpoint(_forward, ...)."""

    def __init__(self, blk):
        super().__init__()
        self.blk = blk

    def forward(self, x, context=None):
        return torch.utils.checkpoint.checkpoint(self.blk, x, context, use_reentrant=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--checkpoint", action="store_true")
    ap.add_argument("--only", choices=["st", "resblock"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B = 4

    st = ref.Residual(ref.PreNorm(256, ref.SpatialTransformer(256, 8, 32, context_dim=512)))
    torch.nn.init.zeros_(st.fn.fn.proj_out.weight)   # zero_module(), as at construction
    torch.nn.init.zeros_(st.fn.fn.proj_out.bias)
    x_st = torch.randn(B, 256, 32, 32, requires_grad=True)
    ctx = torch.randn(B, 1, 512, requires_grad=True)

    rb = ref.ResBlock(128, 128, time_emb_dim=256)
    x_rb = torch.randn(B, 128, 64, 64, requires_grad=True)
    temb = torch.randn(B, 256, requires_grad=True)

    def st_fb():
        st.zero_grad(set_to_none=True)
        x_st.grad = ctx.grad = None
        out = st(x_st, context=ctx)
        out.backward(torch.ones_like(out))

    def st_f():
        with torch.no_grad():
            st(x_st, context=ctx)

    def rb_fb():
        rb.zero_grad(set_to_none=True)
        x_rb.grad = temb.grad = None
        out = rb(x_rb, temb)
        out.backward(torch.ones_like(out))

    def rb_f():
        with torch.no_grad():
            rb(x_rb, temb)

    runs = []
    if a.only in (None, "st"):
        runs += [("spatial_transformer", "fwd", st_f), ("spatial_transformer", "fwdbwd", st_fb)]
    if a.only in (None, "resblock"):
        runs += [("resblock", "fwd", rb_f), ("resblock", "fwdbwd", rb_fb)]
    if a.checkpoint and a.only in (None, "st"):
        blocks = st.fn.fn.transformer_blocks
        blocks[0] = Checkpointed(blocks[0])
        runs.append(("spatial_transformer_ckpt", "fwdbwd", st_fb))
    print("impl,block,mode,threads,batch,ms_per_iter,ms_best,cpu_ms_per_iter,peak_rss_mb")
    for name, mode, fn in runs:
        mean, best, cpu = time_it(fn, a.warmup, a.iters)
        print("torch,%s,%s,%d,%d,%.2f,%.2f,%.2f,%.0f" % (name, mode, a.threads, B, mean * 1e3, best * 1e3, cpu * 1e3,
                                                       peak_rss_mb()), flush=True)


if __name__ == "__main__":
    main()
