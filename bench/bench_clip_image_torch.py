"""PyTorch peer of bench_clip_image.c: open_clip's ViT-B/32 VisionTransformer (the mirror in
tests/reference/gen_clip.py), random weights, 2 threads. --export PATH writes the ONNX model
(opset 14, dynamic batch) for the ONNX Runtime peer."""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/reference"))
from gen_clip import VisionTransformer  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=8)
p.add_argument("--reps", type=int, default=5)
p.add_argument("--mode", default="fwd", choices=["fwd", "train"])
p.add_argument("--export", default=None)
a = p.parse_args()
torch.set_num_threads(2)
torch.manual_seed(1)
v = VisionTransformer(224, 32, 768, 12, 12, 512)
if a.export:
    v.eval()
    torch.onnx.export(v, torch.randn(1, 3, 224, 224), a.export, opset_version=14, input_names=["image"],
                      output_names=["features"], dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}})
    print("exported", a.export)
    sys.exit(0)
times = []
for r in range(a.reps + 1):
    img = torch.randn(a.batch, 3, 224, 224)
    t0 = time.perf_counter()
    if a.mode == "train":
        v.zero_grad()
        f = v(img)
        (f * f).sum().backward()
    else:
        with torch.no_grad():
            v(img)
    times.append(time.perf_counter() - t0)
med = sorted(times[1:])[len(times[1:]) // 2]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"pytorch  {a.mode:5s} batch {a.batch}: {med:.3f} s/batch, {a.batch / med:.1f} img/s, peak RSS {rss:.0f} MB, "
      f"threads {torch.get_num_threads()}")
