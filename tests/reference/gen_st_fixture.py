"""Writes tests/fixtures/st_mixed.safetensors by hand (struct + numpy, no `safetensors` package) and the
expected F32 values in tests/fixtures/st_mixed_expect.bin (fixture format).

Exercises: F16 (normal, subnormal, inf, negative zero), BF16, F32 at an unaligned file position (the
header is deliberately not padded to 8), an empty tensor, __metadata__ with escapes, and a header
written in a different key order with extra whitespace.

Run: /usr/bin/python3 tests/reference/gen_st_fixture.py
"""
import json
import os
import struct

import numpy as np

from fixture import write_fixture

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "fixtures")

f16 = np.array([1.0, -2.5, 6.1e-5, 5.96e-8, np.inf, -0.0, 65504.0, 0.333], dtype="<f2")
bf16_src = np.array([[1.0, -3.140625], [1e30, -1e-30]], dtype=np.float32)
bf16_bits = (bf16_src.view(np.uint32) >> 16).astype("<u2")  # truncation: exact for these values
bf16_val = (bf16_bits.astype(np.uint32) << 16).view(np.float32)
f32 = np.arange(6, dtype="<f4").reshape(2, 3) * 0.5 - 1
empty = np.zeros((0, 3), dtype="<f4")

blobs = [("half", "F16", f16.shape, f16.tobytes()),
         ("brain", "BF16", bf16_bits.shape, bf16_bits.tobytes()),
         ("weight", "F32", f32.shape, f32.tobytes()),
         ("empty", "F32", empty.shape, b"")]
header = {"__metadata__": {"format": "pt", "note": "quote \" and \u00e9"}}
off = 0
for name, dt, shape, raw in blobs:
    header[name] = {"shape": list(shape), "dtype": dt, "data_offsets": [off, off + len(raw)]}
    off += len(raw)
text = json.dumps(header, indent=1).encode()
if (8 + len(text)) % 4 == 0:  # make the F32 data land on an unaligned address on purpose
    text += b" "
with open(os.path.join(out, "st_mixed.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for _, _, _, raw in blobs:
        f.write(raw)

write_fixture(os.path.join(out, "st_mixed_expect.bin"),
              {"half": f16.astype(np.float32), "brain": bf16_val, "weight": f32})

# F32 -> F16 rounding as numpy does it (round to nearest, ties to even), for st_save_f16: values spread over
# every binade F16 has, its subnormals, exact ties, and the edges of its range.
rng = np.random.default_rng(0)
spread = (rng.standard_normal(4000) * np.exp2(rng.uniform(-26, 16, 4000))).astype(np.float32)
ulp = np.float32(2.0 ** -10)
ties = np.array([1 + ulp / 2, 1 + 3 * ulp / 2, -(1 + ulp / 2), 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -26,
                 65504.0, 65519.0, -65519.0, 6.1e-5, 2.0 ** -14 - 2.0 ** -25, 0.0, -0.0, 1e-30],
                dtype=np.float32)
f16_in = np.concatenate([spread[np.abs(spread) < 65519.0], ties]).astype(np.float32)
write_fixture(os.path.join(out, "f16_rounding.bin"),
              {"input": f16_in, "numpy_f16": f16_in.astype(np.float16).astype(np.float32)})
