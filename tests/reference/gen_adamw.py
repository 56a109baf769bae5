"""Reference runs for tests/test_optim.c, written to tests/fixtures/adamw_ref.bin (fixture format).

Model: out = (fc2(gelu(fc1(x)))) * logit_scale, loss = mean((out - y)^2), x [8, 8], y [8, 4].
Parameter groups as in DA-CLIP: fc1.weight/fc2.weight with weight decay, biases and logit_scale without.
  adamw.*: 20 AdamW steps (betas 0.9/0.98, eps 1e-6, wd 0.2), lr from the warmup+cosine schedule
           (base 1e-2, warmup 5, total 20) set on both groups before each step.
  sgd.*:   20 SGD steps (lr 0.05, momentum 0.9, dampening 0, nesterov off, wd 1e-3 on the decay group).
  clip.*:  gradients at the initial weights after clip_grad_norm_(max_norm=0.05), and the total norm.
Run: /usr/bin/python3 tests/reference/gen_adamw.py
"""
import math
import os

import torch

from fixture import write_fixture

torch.manual_seed(0)
STEPS = 20
names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "logit_scale"]


def make_params():
    g = torch.Generator().manual_seed(1)
    p = {
        "fc1.weight": (torch.rand(16, 8, generator=g) * 2 - 1) / math.sqrt(8),
        "fc1.bias": (torch.rand(16, generator=g) * 2 - 1) / math.sqrt(8),
        "fc2.weight": (torch.rand(4, 16, generator=g) * 2 - 1) / math.sqrt(16),
        "fc2.bias": (torch.rand(4, generator=g) * 2 - 1) / math.sqrt(16),
        "logit_scale": torch.tensor(1.5),
    }
    return {k: v.clone().requires_grad_(True) for k, v in p.items()}


x = torch.randn(8, 8)
y = torch.randn(8, 4)


def loss_of(p):
    h = torch.nn.functional.gelu(torch.nn.functional.linear(x, p["fc1.weight"], p["fc1.bias"]))
    out = torch.nn.functional.linear(h, p["fc2.weight"], p["fc2.bias"]) * p["logit_scale"]
    return torch.mean((out - y) ** 2)


def groups(p, wd):
    decay = [p[n] for n in names if p[n].ndim >= 2 and "bias" not in n and "logit_scale" not in n]
    rest = [p[n] for n in names if not (p[n].ndim >= 2 and "bias" not in n and "logit_scale" not in n)]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def cosine_lr(base, warmup, total, step):
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) * base


out = {"x": x, "y": y}
init = make_params()
for n in names:
    out["init." + n] = init[n]

# AdamW
p = make_params()
opt = torch.optim.AdamW(groups(p, 0.2), lr=1e-2, betas=(0.9, 0.98), eps=1e-6)
losses = []
for step in range(STEPS):
    for g in opt.param_groups:
        g["lr"] = cosine_lr(1e-2, 5, STEPS, step)
    opt.zero_grad()
    loss = loss_of(p)
    loss.backward()
    opt.step()
    losses.append(loss.item())
out["adamw.losses"] = torch.tensor(losses)
for n in names:
    out["adamw." + n] = p[n]
    out["adamw.m." + n] = opt.state[p[n]]["exp_avg"]
    out["adamw.v." + n] = opt.state[p[n]]["exp_avg_sq"]

# SGD with momentum
p = make_params()
opt = torch.optim.SGD(groups(p, 1e-3), lr=0.05, momentum=0.9)
losses = []
for step in range(STEPS):
    opt.zero_grad()
    loss = loss_of(p)
    loss.backward()
    opt.step()
    losses.append(loss.item())
out["sgd.losses"] = torch.tensor(losses)
for n in names:
    out["sgd." + n] = p[n]

# gradient clipping
p = make_params()
loss_of(p).backward()
total = torch.nn.utils.clip_grad_norm_([p[n] for n in names], max_norm=0.05)
out["clip.total_norm"] = total.reshape(1)
for n in names:
    out["clip." + n] = p[n].grad

here = os.path.dirname(os.path.abspath(__file__))
write_fixture(os.path.join(here, "..", "fixtures", "adamw_ref.bin"), out)
print("losses", losses[:3], "total norm", total.item())
