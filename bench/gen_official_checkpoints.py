"""Random-weight files laid out exactly like the two official downloads (reference §6), for the end-to-end and
speed checks of `daclip convert` and of loading .pt/.pth directly (there is no network to fetch the real ones):
  OUT/daclip_ViT-B-32.pt  an open_clip training checkpoint of the official DaCLIP ViT-B-32 structure (631 state-dict
                          tensors with "module." names and the visual.* alias, an AdamW state for the 94.9 M trainable
                          parameters, numpy scalars in param_groups): ~1.74 GB like the real one
  OUT/universal-ir.pth    a plain OrderedDict of the universal ConditionalUNet's 224 fp32 tensors (~196 MB)
Run: /usr/bin/python3 bench/gen_official_checkpoints.py OUT"""
import collections
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/reference"))
from gen_clip import CLIP  # noqa: E402
from gen_daclip import DaCLIP  # noqa: E402
from gen_irsde import ConditionalUNet  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "build/official"
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
m = DaCLIP(CLIP(512, 224, 32, 768, 12, 12, 77, 49408, 512, 8, 12))
for q in m.clip.parameters():
    q.requires_grad = False
with torch.no_grad():
    for z in m.visual_control.transformer.zero_modules:
        z.weight.normal_(0, 0.01)
        z.bias.normal_(0, 0.01)
opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad], lr=3e-5, betas=(0.9, 0.98), eps=1e-6)
for q in opt.param_groups[0]["params"]:
    q.grad = torch.randn_like(q) * 1e-3
opt.step()
for g in opt.param_groups:
    g["lr"] = np.float64(2.7e-5)
sd = collections.OrderedDict(("module." + k, v) for k, v in m.state_dict().items())
torch.save({"epoch": 50, "name": "daclip_ViT-B-32_b768x4_lr3e-5_e50", "state_dict": sd, "optimizer": opt.state_dict()},
           os.path.join(out, "daclip_ViT-B-32.pt"))
print("daclip_ViT-B-32.pt: %d tensors, %.2f GB" % (len(sd), os.path.getsize(os.path.join(out, "daclip_ViT-B-32.pt")) / 1e9))
del m, opt, sd
u = ConditionalUNet(in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], context_dim=512, use_degra_context=True,
                    use_image_context=True)
torch.save(u.state_dict(), os.path.join(out, "universal-ir.pth"))
print("universal-ir.pth: %d tensors, %.0f MB" % (len(u.state_dict()), os.path.getsize(os.path.join(out, "universal-ir.pth")) / 1e6))
