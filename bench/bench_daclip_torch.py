"""PyTorch peer of bench_daclip.c: the official DaCLIP module structure (tests/reference/gen_daclip.py) at
ViT-B-32 size, random weights, 2 threads. "encode": DaCLIP.encode_image(control=True) under no_grad. "train":
one step as the official training loop does it — DaCLIP.forward(image, text) (which encodes the caption and the
degradation halves of the 154-token text with the frozen text tower every step), DaClipLoss, backward, AdamW."""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/reference"))
from gen_clip import CLIP  # noqa: E402
from gen_daclip import DaCLIP, clip_loss  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=8)
p.add_argument("--reps", type=int, default=5)
p.add_argument("--mode", default="encode", choices=["encode", "train"])
a = p.parse_args()
torch.set_num_threads(2)
torch.manual_seed(1)
m = DaCLIP(CLIP(512, 224, 32, 768, 12, 12, 77, 49408, 512, 8, 12))
for q in m.clip.parameters():       # lock_clip
    q.requires_grad = False
with torch.no_grad():
    for z in m.visual_control.transformer.zero_modules:
        z.weight.normal_(0, 0.01)
opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad], lr=2e-5, betas=(0.9, 0.98), eps=1e-6,
                        weight_decay=0.05)
B = a.batch
text = torch.zeros(B, 154, dtype=torch.long)
for b in range(B):
    text[b, 0], text[b, 1:12], text[b, 12] = 49406, torch.randint(1, 40000, (11,)), 49407   # caption
    text[b, 77], text[b, 78], text[b, 79] = 49406, 33495, 49407                             # degradation
times = []
for r in range(a.reps + 1):
    img = torch.randn(B, 3, 224, 224)
    t0 = time.perf_counter()
    if a.mode == "train":
        opt.zero_grad()
        caption, degradation = text.chunk(2, dim=-1)
        content, degra = m.encode_image(img)
        tf = m.clip.encode_text(caption)
        td = m.clip.encode_text(degradation)
        s = m.logit_scale.exp()
        loss = clip_loss(content, tf, s) + clip_loss(degra, td, s)
        loss.backward()
        opt.step()
    else:
        with torch.no_grad():
            m.encode_image(img)
    times.append(time.perf_counter() - t0)
med = sorted(times[1:])[len(times[1:]) // 2]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"pytorch  {a.mode:6s} batch {B}: {med:.3f} s/batch, {B / med:.1f} img/s, peak RSS {rss:.0f} MB, "
      f"threads {torch.get_num_threads()}, min {min(times[1:]):.3f} s")
