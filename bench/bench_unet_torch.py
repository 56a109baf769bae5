"""PyTorch peer of bench_unet.c: the official ConditionalUNet structure (the mirror in
tests/reference/gen_irsde.py, built from the gen_nn_unet.py blocks) at the universal config (nf 64,
ch_mult 1,2,4,8, context 512, degradation and image context), random weights (PyTorch's default init),
2 threads.
  --mode fwd    one forward of 1x3x256x256 under torch.no_grad() (eval mode)
  --mode train  batch 4, 128x128: forward, L1 of the output against a random target, backward, AdamW
  --checkpoint  recompute each BasicTransformerBlock in backward, as the official code does
                (checkpoint=True); off by default (faster, more memory)
  --export PATH writes the ONNX model (opset 17, dynamic batch and size) for bench_unet_onnx.js."""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/reference"))
import gen_irsde  # noqa: E402
import gen_nn_unet as blocks  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--mode", default="fwd", choices=["fwd", "train"])
p.add_argument("--reps", type=int, default=5)
p.add_argument("--size", type=int, default=0)
p.add_argument("--batch", type=int, default=0)
p.add_argument("--checkpoint", action="store_true")
p.add_argument("--export", default=None)
a = p.parse_args()
train = a.mode == "train"
size = a.size or (128 if train else 256)
batch = a.batch or (4 if train else 1)
torch.set_num_threads(2)
torch.manual_seed(1)

if a.checkpoint:
    import torch.utils.checkpoint as cp
    _fwd = blocks.BasicTransformerBlock.forward
    blocks.BasicTransformerBlock.forward = lambda self, x, context=None: cp.checkpoint(_fwd, self, x, context)

net = gen_irsde.ConditionalUNet(3, 3, 64, ch_mult=(1, 2, 4, 8), context_dim=512, use_degra_context=True,
                                use_image_context=True)
assert sum(t.numel() for t in net.parameters()) == 48975747


def inputs(b, s):
    return (torch.rand(b, 3, s, s) * 2 - 1, torch.rand(b, 3, s, s), torch.randint(1, 101, (b,)).float(),
            torch.randn(b, 512) * 0.1, torch.randn(b, 512) * 0.1)


if a.export:
    net.eval()
    with torch.no_grad():
        torch.onnx.export(net, inputs(1, 256), a.export, opset_version=17,
                          input_names=["xt", "cond", "time", "degra", "content"], output_names=["noise"],
                          dynamic_axes={"xt": {0: "b", 2: "h", 3: "w"}, "cond": {0: "b", 2: "h", 3: "w"},
                                        "time": {0: "b"}, "degra": {0: "b"}, "content": {0: "b"},
                                        "noise": {0: "b", 2: "h", 3: "w"}})
    print("exported", a.export)
    sys.exit(0)

opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01) if train else None
if not train:
    net.eval()
WARM = 2  # as bench_unet.c: two untimed runs
times = []
for r in range(a.reps + WARM):
    xt, cond, t, d, c = inputs(batch, size)
    target = torch.rand(batch, 3, size, size) * 2 - 1
    t0 = time.perf_counter()
    if train:
        opt.zero_grad()
        loss = (net(xt, cond, t, d, c) - target).abs().mean()
        loss.backward()
        opt.step()
    else:
        with torch.no_grad():
            net(xt, cond, t, d, c)
    times.append(time.perf_counter() - t0)
s = sorted(times[WARM:])
med = s[len(s) // 2]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"pytorch  {a.mode:5s} batch {batch}: {med:.3f} s/batch, {size}x{size}, peak RSS {rss:.0f} MB, "
      f"threads {torch.get_num_threads()}, min {s[0]:.3f} s{' (checkpoint)' if a.checkpoint else ''}")
