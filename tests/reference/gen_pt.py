"""Fixtures for tensor/pt_reader: files written by torch.save (Debian python3-torch 1.13), and hostile ones.
Writes tests/fixtures/pt/*.pt and tests/fixtures/pt_expected.bin (the values each good file must load to).
  dtypes.pt      OrderedDict: F32, F16, BF16, F64 tensors, a transposed (non-contiguous) tensor, two views sharing
                 one storage (one with a storage offset), a 0-d tensor, an nn.Parameter
  train_ckpt.pt  {"epoch", "name", "state_dict" (DDP "module." names), "optimizer"} like open_clip's training
                 checkpoints: AdamW state after a step, param_groups with numpy float64 scalars (lr) as cosine_lr
                 sets them
  deflated.pt    dtypes.pt rewritten with every zip entry deflated
  zip64.pt       a state dict saved with a zip64 directory (forced)
  os_system.pt   a pickle that calls os.system            -> refused (global not allowed)
  bad_opcode.pt  data.pkl with an unknown opcode           -> refused
  bad_crc.pt     one byte of a storage changed             -> refused on read (CRC)
  past_end.pt    a tensor reaching past its storage        -> refused
  huge_shape.pt  a tensor of 2^40 x 2^40 elements          -> refused
  deep.pt        lists nested 100000 deep                  -> refused (nesting), no stack overflow
  legacy.pt      the pre-1.6 non-zip format                -> refused with advice
Run: /usr/bin/python3 tests/reference/gen_pt.py"""
import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from fixture import write_fixture  # noqa: E402

HERE = os.path.join(os.path.dirname(__file__), "../fixtures/pt")
os.makedirs(HERE, exist_ok=True)
torch.manual_seed(0)
expected = {}


def dtypes():
    base = torch.randn(6, 5)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4)
    sd["f16"] = torch.randn(2, 3).half()
    sd["bf16"] = torch.randn(4).bfloat16()
    sd["f64"] = torch.randn(2, 2).double()
    sd["transposed"] = torch.randn(4, 3).t()          # strides (1, 3)
    sd["shared_a"] = base                              # one storage ...
    sd["shared_b"] = base[2:4, 1:]                     # ... and a view into it with an offset
    sd["scalar"] = torch.tensor(3.25)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2))
    sd["counts"] = torch.arange(5)                     # int64: listed, not readable as float
    torch.save(sd, os.path.join(HERE, "dtypes.pt"))
    for k, v in sd.items():
        if v.is_floating_point():
            expected["dtypes." + k] = v.detach().float()
    return sd


def train_ckpt():
    m = torch.nn.Sequential(collections.OrderedDict([("fc", torch.nn.Linear(3, 2)), ("ln", torch.nn.LayerNorm(2))]))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    for g in opt.param_groups:
        g["lr"] = np.float64(0.5 * (1 + np.cos(np.pi * 0.3)) * 3e-5)   # as open_clip's cosine_lr
    sd = collections.OrderedDict(("module." + k, v) for k, v in m.state_dict().items())
    torch.save({"epoch": 3, "name": "daclip_test", "state_dict": sd, "optimizer": opt.state_dict()},
               os.path.join(HERE, "train_ckpt.pt"))
    for k, v in sd.items():
        expected["train." + k] = v.float()
    expected["train.exp_avg.0"] = opt.state_dict()["state"][0]["exp_avg"]


def rewrite(src, dst, compress=zipfile.ZIP_STORED, patch=None, force_zip64=False):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compress) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if patch:
                data = patch(info.filename, data)
            with zout.open(info.filename, "w", force_zip64=force_zip64) as w:
                w.write(data)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def with_pickle(name, pkl_bytes, storages=(), compress=zipfile.ZIP_STORED):
    """A zip laid out like torch.save's with a hand-made data.pkl."""
    with zipfile.ZipFile(os.path.join(HERE, name), "w", compression=compress) as z:
        z.writestr("archive/data.pkl", pkl_bytes)
        for key, data in storages:
            z.writestr("archive/data/" + key, data)
        z.writestr("archive/version", "3\n")


class StoragePid:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensorish:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class PidPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StoragePid):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def crafted(name, obj, storages):
    buf = io.BytesIO()
    PidPickler(buf, protocol=2).dump(obj)
    with_pickle(name, buf.getvalue(), storages)


def hostile():
    torch.save({"x": Evil()}, os.path.join(HERE, "os_system.pt"))
    with_pickle("bad_opcode.pt", b"\x80\x02}q\x00\xff.")
    crafted("past_end.pt", collections.OrderedDict([("w", Tensorish(StoragePid("0", 4), 2, (2, 2), (2, 1)))]),
            [("0", struct.pack("<4f", 1, 2, 3, 4))])
    crafted("huge_shape.pt", collections.OrderedDict([("w", Tensorish(StoragePid("0", 4), 0, (2**40, 2**40), (1, 1)))]),
            [("0", struct.pack("<4f", 1, 2, 3, 4))])
    n = 100000
    with_pickle("deep.pt", b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b".", compress=zipfile.ZIP_DEFLATED)

    def flip(fname, data):
        if fname.endswith("/data/0"):
            data = bytearray(data)
            data[1] ^= 0x40
            return bytes(data)
        return data
    # the CRC in the directory is computed from the patched bytes by zipfile, so patch the file itself instead
    torch.save(collections.OrderedDict([("w", torch.ones(8))]), os.path.join(HERE, "bad_crc.pt"))
    raw = bytearray(open(os.path.join(HERE, "bad_crc.pt"), "rb").read())
    with zipfile.ZipFile(os.path.join(HERE, "bad_crc.pt")) as z:
        info = z.getinfo([i for i in z.namelist() if i.endswith("/data/0")][0])
    off = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    # the local extra field may differ from the central one: read its length from the local header
    loc_extra = struct.unpack("<H", raw[info.header_offset + 28:info.header_offset + 30])[0]
    off = info.header_offset + 30 + len(info.filename.encode()) + loc_extra
    raw[off + 1] ^= 0x40
    open(os.path.join(HERE, "bad_crc.pt"), "wb").write(raw)
    torch.save(collections.OrderedDict([("w", torch.ones(2))]), os.path.join(HERE, "legacy.pt"),
               _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    dtypes()
    train_ckpt()
    rewrite(os.path.join(HERE, "dtypes.pt"), os.path.join(HERE, "deflated.pt"), zipfile.ZIP_DEFLATED)
    rewrite(os.path.join(HERE, "dtypes.pt"), os.path.join(HERE, "zip64.pt"), force_zip64=True)
    hostile()
    write_fixture(os.path.join(HERE, "../pt_expected.bin"), expected)
    print("wrote", sorted(os.listdir(HERE)))
