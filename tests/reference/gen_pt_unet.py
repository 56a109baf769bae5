"""A ConditionalUNet checkpoint laid out like universal-ir.pth (a plain OrderedDict, no prefix, every official key)
at a reduced width (nf 8, ch_mult 1,1,4,4: the deepest levels and the middle have 32 channels, so the three
SpatialTransformers with cross-attention exist), stored as float16 to keep the file small; the official options'
network_G.setting block as JSON; and the network's output on fixed inputs (computed in float64 from the float16
weights) for the C test to reproduce after loading the file.
Run: /usr/bin/python3 tests/reference/gen_pt_unet.py"""
import collections
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402
from gen_irsde import ConditionalUNet, param_value  # noqa: E402

CFG = dict(in_nc=3, out_nc=3, nf=8, ch_mult=[1, 1, 4, 4], context_dim=16, use_degra_context=True,
           use_image_context=True)
OUT = os.path.join(os.path.dirname(__file__), "../fixtures/pt")

if __name__ == "__main__":
    torch.manual_seed(0)
    model = ConditionalUNet(**CFG)
    half = collections.OrderedDict()
    with torch.no_grad():
        for k, p in model.state_dict().items():
            half[k] = torch.from_numpy(param_value(k, tuple(p.shape))).half()
            p.copy_(half[k].float())
    torch.save(half, os.path.join(OUT, "unet_small.pth"))
    with open(os.path.join(OUT, "unet_small_options.json"), "w") as f:
        json.dump({"name": "universal-ir-test", "network_G": {"which_model_G": "ConditionalUNet", "setting": CFG}}, f,
                  indent=2)
    g = torch.Generator().manual_seed(5)
    B, H, W = 2, 13, 10
    ins = {"xt": torch.rand((B, 3, H, W), generator=g), "cond": torch.rand((B, 3, H, W), generator=g),
           "time": torch.tensor([3.0, 71.0]), "degra": torch.randn((B, 16), generator=g),
           "content": torch.randn((B, 16), generator=g)}
    m = model.double()
    with torch.no_grad():
        out = m(*(ins[k].double() for k in ("xt", "cond", "time", "degra", "content")))
    arrays = {"input." + k: v for k, v in ins.items()}
    arrays["out"] = out
    write_fixture(os.path.join(OUT, "unet_small_expected.bin"), arrays)
    print("wrote unet_small.pth (%d tensors, %d bytes)" % (len(half), os.path.getsize(os.path.join(OUT, "unet_small.pth"))))
