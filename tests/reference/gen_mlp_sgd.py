"""PyTorch reference for tests/test_autograd_mlp.c: a 2-layer MLP (linear - gelu - linear) with mean
cross-entropy, trained 10 steps with plain SGD (lr 0.1) on one fixed batch, in float64 from float32
initial values. Writes the initial parameters, the batch, the 10 losses and the final parameters to
tests/fixtures/mlp_sgd.bin. Run: /usr/bin/python3 tests/reference/gen_mlp_sgd.py"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402

torch.manual_seed(7)
N, IN, HID, OUT, STEPS, LR = 16, 12, 32, 5, 10, 0.1


def f32(t):
    return t.float().double()


x = f32(torch.randn(N, IN))
targets = torch.randint(0, OUT, (N,))
w1 = f32(torch.randn(HID, IN) / IN ** 0.5).requires_grad_(True)
b1 = f32(torch.randn(HID) * 0.1).requires_grad_(True)
w2 = f32(torch.randn(OUT, HID) / HID ** 0.5).requires_grad_(True)
b2 = f32(torch.randn(OUT) * 0.1).requires_grad_(True)
arrays = {"x": x, "targets": targets.double(), "w1": w1.clone(), "b1": b1.clone(), "w2": w2.clone(),
          "b2": b2.clone()}
losses = []
for step in range(STEPS):
    loss = F.cross_entropy(F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2), targets)
    losses.append(loss.item())
    for p in (w1, b1, w2, b2):
        p.grad = None
    loss.backward()
    with torch.no_grad():
        for p in (w1, b1, w2, b2):
            p -= LR * p.grad
arrays["losses"] = torch.tensor(losses, dtype=torch.float64)
for name, p in (("w1_final", w1), ("b1_final", b1), ("w2_final", w2), ("b2_final", b2)):
    arrays[name] = p
write_fixture(os.path.join(os.path.dirname(__file__), "..", "fixtures", "mlp_sgd.bin"), arrays)
print("losses", losses)
