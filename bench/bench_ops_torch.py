"""Tensor-op benchmark, PyTorch side of bench/bench_ops.c (same names, shapes and timing rule).
Run with Debian's torch: /usr/bin/python3 bench/bench_ops_torch.py [--reps N] [--threads 2]
Prints CSV "name,shape,ms,gflops": ms is the median over repetitions of one call."""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def time_ms(fn, reps):
    fn()
    one = 1e9
    for _ in range(5):  # calibrate on the fastest call (a preempted one would shrink the loop)
        t0 = time.perf_counter()
        fn()
        one = min(one, time.perf_counter() - t0)
    inner = 1 if one > 0.05 else int(0.05 / max(one, 1e-6)) + 1
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner * 1e3)
    return statistics.median(samples)


def report(name, shape, flops, fn, reps):
    ms = time_ms(fn, reps)
    print(f"{name},{shape},{ms:.4f},{flops / (ms * 1e6) if flops else 0.0:.1f}", flush=True)


def bench_gemm(reps):
    for M, N, K in [(400, 768, 768), (400, 3072, 768), (400, 768, 3072)]:
        x = (torch.rand(M, K) * 2 - 1).requires_grad_()
        w = ((torch.rand(N, K) * 2 - 1) * 0.05).requires_grad_()
        dy = torch.rand(M, N) * 2 - 1
        shape = f"{M}x{N}x{K}"
        f = 2.0 * M * N * K

        def fwd():
            with torch.no_grad():
                F.linear(x, w)

        def mm():
            with torch.no_grad():
                torch.matmul(x, w.t())

        def fwd_bwd():
            F.linear(x, w).backward(dy)

        report("linear_fwd", shape, f, fwd, reps)
        report("matmul_fwd", shape, f, mm, reps)
        report("linear_fwd_bwd", shape, 3 * f, fwd_bwd, reps)


def bench_conv(reps):
    for n, cin, h, wd, cout, k, s, p in [(4, 64, 128, 128, 64, 3, 1, 1), (4, 64, 128, 128, 64, 1, 1, 0),
                                        (4, 128, 32, 32, 128, 3, 1, 1)]:
        x = (torch.rand(n, cin, h, wd) * 2 - 1).requires_grad_()
        w = ((torch.rand(cout, cin, k, k) * 2 - 1) * 0.05).requires_grad_()
        b = ((torch.rand(cout) * 2 - 1) * 0.1).requires_grad_()
        ho, wo = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
        dy = torch.rand(n, cout, ho, wo) * 2 - 1
        shape = f"{n}x{cin}x{h}x{wd}-{cout}-k{k}-s{s}-p{p}"
        f = 2.0 * n * cout * ho * wo * cin * k * k

        def fwd():
            with torch.no_grad():
                F.conv2d(x, w, b, s, p)

        def fwd_bwd():
            F.conv2d(x, w, b, s, p).backward(dy)

        report("conv2d_fwd", shape, f, fwd, reps)
        report("conv2d_fwd_bwd", shape, 3 * f, fwd_bwd, reps)


def bench_elementwise(reps):
    for shp in [(400, 3072), (4, 64, 128, 128)]:
        D = shp[-1]
        x = (torch.rand(*shp) * 4 - 2).requires_grad_()
        x2 = (torch.rand(*shp) * 2 - 1).requires_grad_()
        dy = torch.rand(*shp) * 2 - 1
        w = (torch.rand(D) * 2 - 1).requires_grad_()
        b = (torch.rand(D) * 2 - 1).requires_grad_()
        ops = {
            "layer_norm": lambda: F.layer_norm(x, (D,), w, b, 1e-5),
            "gelu": lambda: F.gelu(x),
            "softmax": lambda: torch.softmax(x, -1),
            "add": lambda: x + x2,
        }
        shape = "x".join(str(s) for s in shp)
        for name, op in ops.items():
            def fwd(op=op):
                with torch.no_grad():
                    op()

            def fwd_bwd(op=op):
                op().backward(dy)

            report(f"{name}_fwd", shape, 0, fwd, reps)
            report(f"{name}_fwd_bwd", shape, 0, fwd_bwd, reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--filter", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print("name,shape,ms,gflops")
    global report
    if a.filter:
        base = report

        def report(name, shape, flops, fn, reps):  # noqa: F811
            if a.filter in name:
                base(name, shape, flops, fn, reps)
    bench_gemm(a.reps)
    bench_conv(a.reps)
    bench_elementwise(a.reps)


if __name__ == "__main__":
    main()
