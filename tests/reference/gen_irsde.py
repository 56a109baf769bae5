#!/usr/bin/python3
"""Fixtures for tests/test_irsde_sde.c and tests/test_irsde_unet.c (reference §4 and §5).

The IR-SDE maths follows daclip-uir universal-image-restoration/utils/sde_utils.py:IRSDE, in float32 torch
ops in the same order, so the arrays are the schedule the official code really uses. The ConditionalUNet
follows config/daclip-sde/models/modules/DenoisingUNet_arch.py with the same attribute names (so
state_dict() keys are the official ones), assembled from the building blocks of gen_nn_unet.py (which
tests/test_nn_unet.c checks block by block). One deliberate generalisation: the official constructor
computes `dim // 32` heads at every level and divides by it, so it refuses nf < 32; here the head count is
only computed where a SpatialTransformer is built (levels >= 3 and mid), which is the same model for
every configuration the official code accepts.

Files written (tests/fixtures/):
  irsde_schedule.bin     schedules (cosine / linear / constant / cosine with sample_T) and posterior
                         coefficients, as the official float32 code computes them
  irsde_steps.bin        marginal sample, x0 from noise, reverse-SDE step, posterior step and the training
                         loss with its gradient, for fixed inputs and noise
  irsde_unet_<case>.bin  U-Net forward and gradients at small configs (float64 reference, see unet_case)
  irsde_unet_universal_names.txt  name and shape of every parameter of the universal config, in
                         state_dict order
Run from anywhere: /usr/bin/python3 tests/reference/gen_irsde.py"""
import copy
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
import gen_nn_unet as blocks  # noqa: E402
from fixture import write_fixture  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures")


# ---------------------------------------------------------------- sde_utils.py: IRSDE (float32)

class IRSDE:
    """The official schedule and step formulas; noise is passed in instead of drawn."""

    def __init__(self, max_sigma, T=100, sample_T=-1, schedule="cosine", eps=0.01):
        self.T = T
        self.max_sigma = max_sigma / 255 if max_sigma >= 1 else max_sigma
        self.sample_T = T if sample_T < 0 else sample_T
        self.sample_scale = T / self.sample_T
        n = self.sample_T  # the schedule is rebuilt with sample_T steps
        if schedule == "cosine":
            k = n + 2
            x = torch.linspace(0, k, k + 1, dtype=torch.float32)
            ac = torch.cos(((x / k) + 0.008) / (1 + 0.008) * math.pi * 0.5) ** 2
            ac = ac / ac[0]
            thetas = 1 - ac[1:-1]
        elif schedule == "linear":
            scale = 1000 / (n + 1)
            thetas = torch.linspace(scale * 0.0001, scale * 0.02, n + 1, dtype=torch.float32)
        else:
            thetas = torch.ones(n + 1, dtype=torch.float32)
        ms = self.max_sigma
        self.thetas = thetas
        self.sigmas = torch.sqrt(ms ** 2 * 2 * thetas)
        self.thetas_cumsum = torch.cumsum(thetas, dim=0) - thetas[0]
        self.dt = -1 / self.thetas_cumsum[-1] * math.log(eps)
        self.sigma_bars = torch.sqrt(ms ** 2 * (1 - torch.exp(-2 * self.thetas_cumsum * self.dt)))
        self.mu = 0.0

    def mu_bar(self, x0, t):
        return self.mu + (x0 - self.mu) * torch.exp(-self.thetas_cumsum[t] * self.dt)

    def sde_reverse_drift(self, x, score, t):
        return (self.thetas[t] * (self.mu - x) - self.sigmas[t] ** 2 * score) * self.dt

    def score_from_noise(self, noise, t):
        return -noise / self.sigma_bars[t]

    def reverse_sde_step_mean(self, x, score, t):
        return x - self.sde_reverse_drift(x, score, t)

    def reverse_sde_step(self, x, score, t, z):
        return x - self.sde_reverse_drift(x, score, t) - self.sigmas[t] * (z * math.sqrt(self.dt))

    def optimum_coefs(self, t):
        a = torch.exp(-self.thetas[t] * self.dt)
        b = torch.exp(-self.thetas_cumsum[t] * self.dt)
        c = torch.exp(-self.thetas_cumsum[t - 1] * self.dt)
        return a * (1 - c ** 2) / (1 - b ** 2), c * (1 - a ** 2) / (1 - b ** 2)

    def reverse_optimum_step(self, xt, x0, t):
        term1, term2 = self.optimum_coefs(t)
        return term1 * (xt - self.mu) + term2 * (x0 - self.mu) + self.mu

    def reverse_optimum_std(self, t):
        a = torch.exp(-2 * self.thetas[t] * self.dt)
        b = torch.exp(-2 * self.thetas_cumsum[t] * self.dt)
        c = torch.exp(-2 * self.thetas_cumsum[t - 1] * self.dt)
        var = (1 - a) * (1 - c) / (1 - b)
        return (0.5 * torch.log(torch.clamp(var, min=1e-20 * self.dt))).exp() * self.max_sigma

    def x0_from_noise(self, xt, noise, t):
        a = torch.exp(self.thetas_cumsum[t] * self.dt)
        return (xt - self.mu - self.sigma_bars[t] * noise) * a + self.mu

    def reverse_posterior_step(self, xt, noise, t, z):
        x0 = self.x0_from_noise(xt, noise, t)
        return self.reverse_optimum_step(xt, x0, t) + self.reverse_optimum_std(t) * z


def matching_l1(pred, target):
    """loss.py MatchingLoss('l1'): mean per sample, then over the batch."""
    per = (pred - target).abs().reshape(pred.shape[0], -1).mean(dim=1)
    return per.mean()


def schedule_fixture():
    arrays = {}
    cases = {
        "cosine": IRSDE(50, T=100, schedule="cosine", eps=0.005),      # the universal-IR config
        "linear": IRSDE(10, T=100, schedule="linear", eps=0.005),      # deraining max_sigma
        "constant": IRSDE(0.1, T=20, schedule="constant", eps=0.01),   # max_sigma < 1 is used as is
        "cosine_s25": IRSDE(50, T=100, sample_T=25, schedule="cosine", eps=0.005),
    }
    for name, s in cases.items():
        n = s.sample_T
        t = torch.arange(1, n + 1)
        term1, term2 = s.optimum_coefs(t)
        arrays[name + ".meta"] = torch.tensor([s.max_sigma, s.T, n, s.sample_scale], dtype=torch.float64)
        arrays[name + ".theta"] = s.thetas
        arrays[name + ".sigma"] = s.sigmas
        arrays[name + ".theta_bar"] = s.thetas_cumsum
        arrays[name + ".sigma_bar"] = s.sigma_bars
        arrays[name + ".dt"] = s.dt.reshape(1)
        arrays[name + ".term1"] = term1          # t = 1..n
        arrays[name + ".term2"] = term2
        arrays[name + ".std"] = s.reverse_optimum_std(t)
        arrays[name + ".time_input"] = (t.double() * s.sample_scale).float()   # noise_fn's t * scale
    c = cases["cosine"]
    print("cosine: dt %.7f  theta_bar[100] %.6f  sigma_bar[100] %.6f  std[1] %.3g" %
          (c.dt, c.thetas_cumsum[100], c.sigma_bars[100], c.reverse_optimum_std(1)))
    path = os.path.join(OUT, "irsde_schedule.bin")
    write_fixture(path, arrays)
    print("%-34s %7d bytes" % (os.path.basename(path), os.path.getsize(path)))


def steps_fixture():
    g = torch.Generator().manual_seed(5)
    s = IRSDE(50, T=100, schedule="cosine", eps=0.005)
    B, C, H, W = 3, 3, 5, 4
    gt = torch.rand((B, C, H, W), generator=g)
    lq = torch.rand((B, C, H, W), generator=g)
    eps = torch.randn((B, C, H, W), generator=g)
    z = torch.randn((B, C, H, W), generator=g)
    noise_hat = torch.randn((B, C, H, W), generator=g) * 0.5 + 0.3 * eps   # a network's guess
    t = torch.tensor([1, 37, 100])
    tb = t.reshape(B, 1, 1, 1)
    s.mu = lq
    xt = s.mu_bar(gt, tb) + eps * s.sigma_bars[tb]            # generate_random_states
    nh = noise_hat.clone().requires_grad_(True)
    pred = s.reverse_sde_step_mean(xt, s.score_from_noise(nh, tb), tb)
    target = s.reverse_optimum_step(xt, gt, tb)
    loss = matching_l1(pred, target)
    loss.backward()
    arrays = {
        "t": t.float(), "gt": gt, "lq": lq, "eps": eps, "z": z, "noise_hat": noise_hat,
        "xt": xt,
        "x0_hat": s.x0_from_noise(xt, noise_hat, tb),
        "posterior_mean_gt": target,
        "posterior_step": s.reverse_posterior_step(xt, noise_hat, tb, z),
        "sde_step": s.reverse_sde_step(xt, s.score_from_noise(noise_hat, tb), tb, z),
        "loss": loss.reshape(1),
        "grad_noise_hat": nh.grad,
        "noise_state": lq + z * s.max_sigma,                   # noise_state: x_T = mu + lambda z
    }
    path = os.path.join(OUT, "irsde_steps.bin")
    write_fixture(path, arrays)
    print("%-34s %7d bytes  loss %.6f" % (os.path.basename(path), os.path.getsize(path), loss.item()))


# ---------------------------------------------------------------- DenoisingUNet_arch.py: ConditionalUNet

class ConditionalUNet(nn.Module):
    def __init__(self, in_nc, out_nc, nf, ch_mult=(1, 2, 4, 4), context_dim=512, use_degra_context=True,
                 use_image_context=False):
        super().__init__()
        self.depth = len(ch_mult)
        self.context_dim = -1 if context_dim is None else context_dim
        self.use_image_context = use_image_context
        self.use_degra_context = use_degra_context
        head_ch = 32
        self.init_conv = blocks.default_conv(in_nc * 2, nf, 7)
        time_dim = nf * 4
        self.time_mlp = nn.Sequential(blocks.SinusoidalPosEmb(nf), nn.Linear(nf, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        if self.context_dim > 0 and use_degra_context:
            self.prompt = nn.Parameter(torch.rand(1, time_dim))
            self.text_mlp = nn.Sequential(nn.Linear(context_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
            self.prompt_mlp = nn.Linear(time_dim, time_dim)
        spatial = use_image_context and self.context_dim > 0

        def attention(i, dim):
            if spatial and i >= 3:
                return blocks.SpatialTransformer(dim, dim // head_ch, head_ch, depth=1, context_dim=context_dim)
            return blocks.LinearAttention(dim)

        self.downs = nn.ModuleList([])
        self.ups = nn.ModuleList([])
        mult = [1] + list(ch_mult)
        for i in range(self.depth):
            dim_in, dim_out = nf * mult[i], nf * mult[i + 1]
            last = i == self.depth - 1
            self.downs.append(nn.ModuleList([
                blocks.ResBlock(dim_in, dim_in, time_emb_dim=time_dim),
                blocks.ResBlock(dim_in, dim_in, time_emb_dim=time_dim),
                blocks.Residual(blocks.PreNorm(dim_in, attention(i, dim_in))),
                blocks.default_conv(dim_in, dim_out) if last else blocks.Downsample(dim_in, dim_out)]))
            self.ups.insert(0, nn.ModuleList([
                blocks.ResBlock(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                blocks.ResBlock(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                blocks.Residual(blocks.PreNorm(dim_out, attention(i, dim_out))),
                blocks.default_conv(dim_out, dim_in) if i == 0 else blocks.Upsample(dim_out, dim_in)]))
        mid = nf * mult[-1]
        self.mid_block1 = blocks.ResBlock(mid, mid, time_emb_dim=time_dim)
        if spatial:
            self.mid_attn = blocks.Residual(blocks.PreNorm(
                mid, blocks.SpatialTransformer(mid, mid // head_ch, head_ch, depth=1, context_dim=context_dim)))
        else:
            self.mid_attn = blocks.Residual(blocks.PreNorm(mid, blocks.LinearAttention(mid)))
        self.mid_block2 = blocks.ResBlock(mid, mid, time_emb_dim=time_dim)
        self.final_res_block = blocks.ResBlock(nf * 2, nf, time_emb_dim=time_dim)
        self.final_conv = nn.Conv2d(nf, out_nc, 3, 1, 1)

    def forward(self, xt, cond, time, text_context=None, image_context=None):
        x = torch.cat([xt - cond, cond], dim=1)
        H, W = x.shape[2:]
        s = 2 ** self.depth
        x = torch.nn.functional.pad(x, (0, (s - W % s) % s, 0, (s - H % s) % s), "reflect")
        x = self.init_conv(x)
        x_ = x.clone()
        t = self.time_mlp(time)
        if self.context_dim > 0:
            if self.use_degra_context and text_context is not None:
                t = t + self.prompt_mlp(torch.softmax(self.text_mlp(text_context), dim=1) * self.prompt)
            if self.use_image_context and image_context is not None:
                image_context = image_context.unsqueeze(1)
        h = []
        for b1, b2, attn, down in self.downs:
            x = b1(x, t)
            h.append(x)
            x = attn(b2(x, t), context=image_context)
            h.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t), context=image_context), t)
        for b1, b2, attn, up in self.ups:
            x = b1(torch.cat([x, h.pop()], dim=1), t)
            x = b2(torch.cat([x, h.pop()], dim=1), t)
            x = up(attn(x, context=image_context))
        x = self.final_conv(self.final_res_block(torch.cat([x, x_], dim=1), t))
        return x[..., :H, :W].contiguous()


# The official LayerNorm picks eps by dtype (1e-5 for float32, 1e-3 otherwise); the float64 reference
# evaluates the float32 model, so it keeps 1e-5.
def _chan_ln_forward(self, x):
    var = torch.var(x, dim=1, unbiased=False, keepdim=True)
    mean = torch.mean(x, dim=1, keepdim=True)
    return (x - mean) * (var + 1e-5).rsqrt() * self.g


blocks.ChannelLayerNorm.forward = _chan_ln_forward


# ---------------------------------------------------------------- deterministic parameters and probes
# The small-config parameters are not stored: both sides derive them from the parameter name, which keeps
# the fixtures small. Shared with tests/test_irsde_unet.c (name_seed, hash_unit, param_value, probe_*).

M64 = (1 << 64) - 1


def name_seed(name):
    h = 0xCBF29CE484222325                       # FNV-1a 64
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def hash_unit(seed, n):
    """u_i in [0, 1) for i < n: splitmix64(seed + (i + 1)·golden), top 24 bits."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / 16777216.0


def param_value(name, shape):
    """Norm gains 1 ± 0.1, norm biases ± 0.1, other biases ± 0.3, weights ± 1/sqrt(fan_in), prompt U[0,1)."""
    n = int(np.prod(shape))
    u = hash_unit(name_seed(name), n)
    v = 2 * u - 1
    parts = name.split(".")
    owner = parts[-2] if len(parts) > 1 else ""
    if name == "prompt":
        x = u
    elif parts[-1] == "g" or (owner.startswith("norm") and parts[-1] == "weight"):
        x = 1 + 0.1 * v
    elif owner.startswith("norm") and parts[-1] == "bias":
        x = 0.1 * v
    elif len(shape) >= 2:
        x = v / math.sqrt(n / shape[0])
    else:
        x = 0.3 * v
    return x.astype(np.float32).reshape(shape)


FULL_MAX = 400      # gradients up to this many elements are stored whole
N_SAMPLES = 96      # larger ones: this many elements at hashed positions, plus probes


def probe_indices(name, n):
    u = hash_unit(name_seed(name) ^ 0x5A5A5A5A5A5A5A5A, N_SAMPLES)
    return np.minimum((u * n).astype(np.int64), n - 1)


def probe_signs(name, k, n):
    """±1 per element for the k-th random projection."""
    return np.where(hash_unit((name_seed(name) + 0x1000003 * (k + 1)) & M64, n) < 0.5, -1.0, 1.0)


def grad_summary(arrays, name, g):
    """Whole (small) or sampled + [proj0, proj1, sum |g|, max |g|] (large)."""
    g = g.detach().double().numpy().reshape(-1)
    if g.size <= FULL_MAX:
        arrays["grad." + name] = g
        return g.size
    arrays["gsamp." + name] = g[probe_indices(name, g.size)]
    arrays["gprobe." + name] = np.array([(g * probe_signs(name, 0, g.size)).sum(),
                                         (g * probe_signs(name, 1, g.size)).sum(),
                                         np.abs(g).sum(), np.abs(g).max()])
    return N_SAMPLES + 4


def unet_case(name, cfg, B, H, W, seed):
    """Forward and backward of sum(out · dout) in float64, from float32 inputs and parameters."""
    torch.manual_seed(0)
    model = ConditionalUNet(**cfg)
    sd = model.state_dict()
    with torch.no_grad():
        for k, p in sd.items():
            p.copy_(torch.from_numpy(param_value(k, tuple(p.shape))))
    g = torch.Generator().manual_seed(seed)
    cd = cfg["context_dim"]
    ins = {
        "xt": torch.rand((B, cfg["in_nc"], H, W), generator=g) * 1.4 - 0.2,
        "cond": torch.rand((B, cfg["in_nc"], H, W), generator=g),
        "time": torch.tensor([1.0, 37.0, 100.0, 62.5][:B]),
        "degra": torch.randn((B, cd), generator=g),
        "content": torch.randn((B, cd), generator=g) * 0.5,
    }
    use_d, use_c = cfg["use_degra_context"], cfg["use_image_context"]
    results = {}
    for dtype in (torch.float32, torch.float64):
        m = copy.deepcopy(model).to(dtype)
        x = {k: v.detach().clone().to(dtype).requires_grad_(k != "time") for k, v in ins.items()}
        out = m(x["xt"], x["cond"], x["time"], x["degra"] if use_d else None, x["content"] if use_c else None)
        dout = (torch.rand(out.shape, generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1).to(dtype)
        (out * dout).sum().backward()
        results[dtype] = (out.detach(), {k: v.grad for k, v in x.items()},
                          {k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in m.named_parameters()},
                          dout)
    out, in_grads, p_grads, dout = results[torch.float64]
    out32, _, p_grads32, _ = results[torch.float32]
    worst = max((p_grads32[k].double() - p_grads[k]).abs().max().item() / max(p_grads[k].abs().max().item(), 1e-30)
                for k in p_grads)
    print("%s: float32 vs float64: out %.2g (max |out| %.3g), worst param grad %.2g of its max" %
          (name, (out32.double() - out).abs().max().item(), out.abs().max().item(), worst))
    arrays = {"config": np.array([cfg["in_nc"], cfg["out_nc"], cfg["nf"], cfg["context_dim"],
                                  int(use_d), int(use_c)] + list(cfg["ch_mult"]), dtype=np.float32)}
    for k, v in ins.items():
        arrays["input." + k] = v
    arrays["out"] = out
    arrays["dout"] = dout
    for k in ("xt", "cond", "degra", "content"):
        if in_grads[k] is not None:
            arrays["grad_in." + k] = in_grads[k]
    stored = 0
    for k, p in model.named_parameters():
        stored += grad_summary(arrays, k, p_grads[k])
    path = os.path.join(OUT, "irsde_unet_%s.bin" % name)
    write_fixture(path, arrays)
    n_params = sum(p.numel() for p in model.parameters())
    print("%-34s %7d bytes, %d tensors, %d parameters, %d gradient values stored" %
          (os.path.basename(path), os.path.getsize(path), len(list(model.parameters())), n_params, stored))


UNIVERSAL = dict(in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], context_dim=512, use_degra_context=True,
                 use_image_context=True)


def names_fixture():
    model = ConditionalUNet(**UNIVERSAL)
    sd = model.state_dict()
    total = sum(p.numel() for p in sd.values())
    assert len(sd) == 224 and total == 48975747, (len(sd), total)
    path = os.path.join(OUT, "irsde_unet_universal_names.txt")
    with open(path, "w") as f:
        f.write("# ConditionalUNet(in_nc=3, out_nc=3, nf=64, ch_mult=[1,2,4,8], context_dim=512, "
                "use_degra_context=True, use_image_context=True): %d tensors, %d parameters\n" % (len(sd), total))
        for k, p in sd.items():
            f.write("%s %s\n" % (k, ",".join(str(d) for d in p.shape)))
    print("%-34s %7d bytes, %d tensors, %d parameters" % (os.path.basename(path), os.path.getsize(path), len(sd),
                                                           total))


def main():
    torch.set_num_threads(2)
    schedule_fixture()
    steps_fixture()
    # both contexts, four levels so that down/up level 3 are SpatialTransformers (32 channels: GroupNorm(32)
    # and one 32-wide head), 13x10 padded to 16x16
    unet_case("ctx", dict(in_nc=3, out_nc=3, nf=8, ch_mult=[1, 1, 4, 4], context_dim=16, use_degra_context=True,
                          use_image_context=True), B=2, H=13, W=10, seed=21)
    # the plain IR-SDE network: no prompt, LinearAttention everywhere; 2 levels, 11x6 padded to 12x8
    unet_case("plain", dict(in_nc=3, out_nc=3, nf=8, ch_mult=[1, 2], context_dim=16, use_degra_context=False,
                            use_image_context=False), B=1, H=11, W=6, seed=22)
    names_fixture()


if __name__ == "__main__":
    main()
