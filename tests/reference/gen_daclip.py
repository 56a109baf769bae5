"""Reference for controller/: DA-CLIP (daclip-uir da-clip/src/open_clip/daclip_model.py) rebuilt in PyTorch with
the official module structure and names: DaCLIP.clip (a CLIP), DaCLIP.visual_control (a deep copy of the image
tower whose transformer is wrapped in a ControlTransformer holding `transformer` and the zero Linear layers
`zero_modules`), DaCLIP.logit_scale; encode_image(control=True) and DaClipLoss. Writes
  tests/fixtures/daclip_small.bin: every parameter (clip.*, visual_control.*, logit_scale), an image batch, the
      caption and degradation token ids, the content and degradation embeddings, the two loss terms and their
      sum, and the gradient of the sum for every trainable parameter (visual_control.*, logit_scale).
The zero layers are given random values, as after some training, so that every controller gradient is non-zero.
Run: /usr/bin/python3 tests/reference/gen_daclip.py"""
import collections
import copy
import json
import os
import sys

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402
from gen_clip import CLIP, Transformer, VisionTransformer  # noqa: E402

torch.set_num_threads(2)


class ControlTransformer(nn.Module):
    """The controller's wrapper: runs the copied blocks, records zero_modules[i](h_i); its own stream unchanged."""

    def __init__(self, transformer):
        super().__init__()
        self.transformer = transformer
        w = transformer.resblocks[0].ln_1.normalized_shape[0]
        self.zero_modules = nn.ModuleList([nn.Linear(w, w, 1) for _ in transformer.resblocks])
        for p in self.zero_modules.parameters():
            p.detach().zero_()

    def forward(self, x):
        hiddens = []
        for z, r in zip(self.zero_modules, self.transformer.resblocks):
            x = r(x)
            hiddens.append(z(x))
        return x, hiddens


def tower_forward(v, img, control=None, output_hiddens=False):
    """VisionTransformer.forward with the official `control` (consumed with pop()) and `output_hiddens`."""
    x = v.conv1(img)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = v.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + v.positional_embedding
    x = v.ln_pre(x).permute(1, 0, 2)
    hiddens = None
    if output_hiddens:
        x, hiddens = v.transformer(x)
    else:
        control = list(control)
        for r in v.transformer.resblocks:
            x = r(x)
            if control:
                x = x + control.pop()
    x = x.permute(1, 0, 2)
    pooled = v.ln_post(x[:, 0]) @ v.proj
    return (pooled, hiddens) if output_hiddens else pooled


class DaCLIP(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.clip = clip_model
        self.visual = clip_model.visual
        self.visual_control = copy.deepcopy(clip_model.visual)
        self.visual_control.transformer = ControlTransformer(self.visual_control.transformer)
        self.logit_scale = copy.deepcopy(clip_model.logit_scale)

    def encode_image(self, image):
        degra, hiddens = tower_forward(self.visual_control, image, output_hiddens=True)
        content = tower_forward(self.clip.visual, image, control=hiddens)
        return content, degra


def clip_loss(a, b, scale):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = scale * a @ b.t()
    labels = torch.arange(a.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def small():
    torch.manual_seed(0)
    clip = CLIP(16, 32, 8, 16, 3, 2, 16, 100, 16, 2, 1)
    with torch.no_grad():
        for n, p in clip.named_parameters():
            if "ln" in n:
                p.add_(0.1 * torch.randn_like(p))
    m = DaCLIP(clip)
    with torch.no_grad():
        for n, p in m.visual_control.named_parameters():
            p.add_(0.05 * torch.randn_like(p))   # the controller has trained away from the copy
        m.logit_scale.fill_(2.5)
    for p in m.clip.parameters():                # lock_clip
        p.requires_grad = False
    B = 4
    img = torch.randn(B, 3, 32, 32)
    caption = torch.zeros(B, 16, dtype=torch.long)
    degra = torch.zeros(B, 16, dtype=torch.long)
    for b in range(B):
        n = 4 + 3 * b
        caption[b, 0] = 98
        caption[b, 1:n - 1] = torch.randint(1, 97, (n - 2,))
        caption[b, n - 1] = 99
        degra[b, 0] = 98
        degra[b, 1] = 10 + (b % 2)               # two samples share a degradation: negatives of each other
        degra[b, 2] = 99
    content, degra_emb = m.encode_image(img)
    text = m.clip.encode_text(caption)
    text_degra = m.clip.encode_text(degra)
    scale = m.logit_scale.exp()
    l_clip = clip_loss(content, text, scale)
    l_degra = clip_loss(degra_emb, text_degra, scale)
    total = l_clip + l_degra
    total.backward()
    arrays = {}
    for n, p in m.state_dict().items():
        if n.startswith("visual."):
            continue                             # the alias of clip.visual
        arrays["param." + n] = p
    for n, p in m.named_parameters():
        if p.requires_grad:
            arrays["grad." + n] = p.grad
    arrays.update({"img": img, "caption_ids": caption.float(), "degra_ids": degra.float(), "content": content,
                   "degradation": degra_emb, "loss_clip": l_clip, "loss_degra": l_degra, "loss": total})
    write_fixture(os.path.join(os.path.dirname(__file__), "../fixtures/daclip_small.bin"), arrays)
    # the same model as an open_clip training checkpoint, as daclip_ViT-B-32.pt is laid out (reference §6.2):
    # DDP "module." names, the "visual.*" alias beside "clip.visual.*", AdamW state with numpy scalars
    # (the weights as the fixture has them: the optimizer below steps on a copy)
    sd = collections.OrderedDict(("module." + k, v.clone()) for k, v in m.state_dict().items())
    sd["module.visual.proj"] = sd["module.clip.visual.proj"]   # aliases share their storage, as in PyTorch
    for k in list(sd):
        if k.startswith("module.visual."):
            sd[k] = sd["module.clip." + k[len("module."):]]
    opt = torch.optim.AdamW([q for q in copy.deepcopy(m).parameters() if q.requires_grad], lr=3e-5)
    for q in opt.param_groups[0]["params"]:
        q.grad = torch.ones_like(q)
    opt.step()
    for g in opt.param_groups:
        g["lr"] = np.float64(2.9e-5)
    pt_dir = os.path.join(os.path.dirname(__file__), "../fixtures/pt")
    torch.save({"epoch": 1, "name": "daclip_small", "state_dict": sd, "optimizer": opt.state_dict()},
               os.path.join(pt_dir, "daclip_small.pt"))
    with open(os.path.join(pt_dir, "daclip_small.json"), "w") as f:   # open_clip's model-config format
        json.dump({"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 3, "width": 16, "patch_size": 8,
                                                   "head_width": 8},
                   "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 16, "heads": 2, "layers": 1},
                   "custom_text": True}, f, indent=4)
    print("wrote tests/fixtures/daclip_small.bin:", len(arrays), "arrays")


if __name__ == "__main__":
    small()
