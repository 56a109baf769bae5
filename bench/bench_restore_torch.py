"""PyTorch peer of bench_restore.c: one restoration as the official universal-image-restoration test.py does it,
on CPU with 2 threads, in the module structure of the reference mirrors (tests/reference/gen_daclip.py,
gen_irsde.py):
  load     DaCLIP ViT-B-32 built and filled from the official checkpoint (torch.load of the whole file, the
           "module." prefix dropped, load_state_dict: open_clip's load_checkpoint), the universal
           ConditionalUNet filled from universal-ir.pth (load_network); --random skips the files
  DA-CLIP  clip_transform (PIL bicubic resize of the shorter side to 224, centre crop, CLIP normalisation), then
           encode_image(control=True) under no_grad: (content, degradation) embeddings
  sampling sde.noise_state(LQ) = LQ + max_sigma * randn, then reverse_posterior: for t = T..1 one U-Net call
           net(x, mu, t * sample_scale, text_context=degra, image_context=content) and reverse_posterior_step
           (x0 from the noise, the posterior mean, + std * randn), eval mode, no_grad; clamp to [0, 1]
The IR-SDE is gen_irsde.IRSDE (the official float32 schedule: cosine, max_sigma 50, T 100, eps 0.005; sample_T
= --steps). Prints the same line as bench_restore.c ("pytorch  SxS restore: ... s/image ...").
  --export-daclip PATH  writes DaCLIP.encode_image as ONNX (input "image" [1,3,224,224], outputs "content",
                        "degra") for bench_restore_onnx.js, and exits."""
import argparse
import math
import os
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/reference"))
import gen_irsde  # noqa: E402
from gen_clip import CLIP  # noqa: E402
from gen_daclip import DaCLIP  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=256)
p.add_argument("--steps", type=int, default=100)
p.add_argument("--daclip", default="build/official/daclip_ViT-B-32.pt")
p.add_argument("--model", default="build/official/universal-ir.pth")
p.add_argument("--random", action="store_true", help="random weights, no files read")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--export-daclip", default=None)
a = p.parse_args()
torch.set_num_threads(2)
torch.manual_seed(a.seed)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def vm_hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return -1


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def build_daclip():
    m = DaCLIP(CLIP(512, 224, 32, 768, 12, 12, 77, 49408, 512, 8, 12))
    with torch.no_grad():   # without a checkpoint: a trained control tower is no copy of the frozen one and its
        for q in m.visual_control.parameters():        # zero layers are not zero (the ONNX export would
            q.add_(torch.randn_like(q), alpha=1e-3)    # otherwise store the identical copy's weights once)
        for z in m.visual_control.transformer.zero_modules:
            z.weight.normal_(0, 0.01)
    return m


if a.export_daclip:
    class Encode(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            return self.m.encode_image(image)

    enc = Encode(build_daclip()).eval()
    with torch.no_grad():
        torch.onnx.export(enc, torch.randn(1, 3, 224, 224), a.export_daclip, opset_version=17,
                          input_names=["image"], output_names=["content", "degra"])
    print("exported", a.export_daclip)
    sys.exit(0)


def clip_transform(img):
    """The official clip_transform: Resize(224, bicubic) of the shorter side, CenterCrop(224), ToTensor, Normalize."""
    pil = Image.fromarray((img * 255).astype(np.uint8))
    w, h = pil.size
    s = 224 / min(w, h)
    pil = pil.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BICUBIC)
    w, h = pil.size
    left, top = (w - 224) // 2, (h - 224) // 2
    pil = pil.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1)
    return ((x - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]).unsqueeze(0)


# ---- load
t0 = time.perf_counter()
clip_model = build_daclip()
if not a.random:
    ckpt = torch.load(a.daclip, map_location="cpu")
    sd = ckpt["state_dict"]
    if next(iter(sd)).startswith("module"):
        sd = {k[7:]: v for k, v in sd.items()}
    clip_model.load_state_dict(sd)
    del ckpt, sd
clip_model.eval()
net = gen_irsde.ConditionalUNet(3, 3, 64, ch_mult=(1, 2, 4, 8), context_dim=512, use_degra_context=True,
                                use_image_context=True)
if not a.random:
    net.load_state_dict(torch.load(a.model, map_location="cpu"), strict=True)
net.eval()
sde = gen_irsde.IRSDE(max_sigma=50, T=100, sample_T=a.steps, schedule="cosine", eps=0.005)
t_load = time.perf_counter() - t0
load_peak = max(vm_hwm_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
hwm_reset = reset_hwm()

# the LQ image: HWC in [0, 1] as the official dataset gives it (content does not change the work)
rng = np.random.default_rng(12345)
yy, xx = np.mgrid[0:a.size, 0:a.size] / a.size
n = rng.random((a.size, a.size)) - 0.5
lq_np = np.stack([0.2 + 0.6 * xx + 0.1 * n, 0.2 + 0.6 * yy + 0.1 * n, 0.5 + 0.3 * n], axis=-1).astype(np.float32)

# ---- DA-CLIP once
t1 = time.perf_counter()
with torch.no_grad():
    image_context, degra_context = clip_model.encode_image(clip_transform(lq_np))
    image_context, degra_context = image_context.float(), degra_context.float()
t2 = time.perf_counter()

# ---- sampling (sde.set_mu, noise_state, reverse_posterior)
LQ = torch.from_numpy(lq_np).permute(2, 0, 1).unsqueeze(0).contiguous()
ts = time.perf_counter()
with torch.no_grad():
    sde.mu = LQ
    x = LQ + sde.max_sigma * torch.randn_like(LQ)
    for t in reversed(range(1, sde.sample_T + 1)):
        noise = net(x, sde.mu, torch.tensor([t * sde.sample_scale], dtype=torch.float32),
                    text_context=degra_context, image_context=image_context)
        x = sde.reverse_posterior_step(x, noise, t, torch.randn_like(x))
    out = x.clamp(0, 1)
    out_np = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)   # tensor2img
t3 = time.perf_counter()
restore_peak = vm_hwm_mb()
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, load_peak, restore_peak)
rpeak = f"{restore_peak:.0f} MB" if hwm_reset else "n/a"
assert math.isfinite(float(out.sum()))
print(f"pytorch  {a.size}x{a.size} restore: {t3 - t1:.2f} s/image, {(t3 - ts) / sde.sample_T:.3f} s/step, "
      f"{sde.sample_T} steps, load {t_load:.1f} s, DA-CLIP {t2 - t1:.2f} s, sampling {t3 - ts:.2f} s, "
      f"peak RSS {peak:.0f} MB, restoring {rpeak}, threads {torch.get_num_threads()}"
      f"{' (random weights)' if a.random else ''}")
