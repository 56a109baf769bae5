"""Writes test fixtures in the format read by tests/util_check.c (fixture_load):
"DCFX", u32 version 1, u32 count, then per array: u32 name length, name, u32 ndim, i64 shape[ndim], f32 data."""
import struct

import numpy as np


def write_fixture(path, arrays):
    """arrays: dict name -> array-like (torch tensors are detached and converted)."""
    with open(path, "wb") as f:
        f.write(b"DCFX")
        f.write(struct.pack("<II", 1, len(arrays)))
        for name, a in arrays.items():
            if hasattr(a, "detach"):
                a = a.detach().cpu().numpy()
            a = np.array(a, dtype=np.float32, order="C")  # ascontiguousarray would make 0-d arrays 1-d
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", a.ndim))
            f.write(struct.pack("<%dq" % a.ndim, *a.shape))
            f.write(a.astype("<f4").tobytes())
