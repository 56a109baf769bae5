#!/usr/bin/python3
"""Fixtures for tests/test_resize.c: PIL's Image.resize(BICUBIC) on uint8 ("L"/"RGB") and float ("F") images,
and the DA-CLIP preprocessing (reference §1.6). Inputs are a hash pattern that tests/test_resize.c regenerates,
so only outputs are stored. Run from the repo root: /usr/bin/python3 tests/reference/gen_resize.py"""
import struct
import numpy as np
from PIL import Image

M = 0xFFFFFFFF


def pattern(w, h, c, seed):
    """uint8 [h][w][c]: coarse diagonal bands plus hash noise (hard edges stress the uint8 clipping)."""
    out = np.zeros((h, w, c), np.uint8)
    for y in range(h):
        for x in range(w):
            for k in range(c):
                v = (seed * 0x9E3779B1 + x * 0x85EBCA77 + y * 0xC2B2AE3D + k * 0x27D4EB2F) & M
                v ^= v >> 15; v = (v * 0x2C1B3C6D) & M; v ^= v >> 12; v = (v * 0x297A2D39) & M; v ^= v >> 15
                out[y, x, k] = ((x // 4 + y // 3) * 17 + k * 50 + (v & 31)) & 255
    return out


def pil(arr):
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


# (w, h, c, ow, oh, seed)
U8_CASES = [
    (256, 256, 1, 224, 224, 1),   # the 256 training patch -> 224 CLIP view
    (100, 75, 1, 298, 224, 2),    # non-square, shorter side to 224 (upscale), as CLIP preprocessing does
    (37, 23, 3, 17, 11, 4),       # downscale ~2.2x
    (20, 15, 3, 53, 41, 5),       # upscale ~2.7x
    (40, 30, 3, 40, 17, 6),       # vertical pass only
    (64, 48, 3, 29, 48, 7),       # horizontal pass only
    (50, 40, 3, 13, 10, 8),       # downscale 4x
    (3, 2, 3, 7, 5, 9),           # tiny
]


def main():
    with open("tests/fixtures/resize_u8.bin", "wb") as f:
        f.write(struct.pack("<i", len(U8_CASES)))
        for (w, h, c, ow, oh, seed) in U8_CASES:
            out = np.asarray(pil(pattern(w, h, c, seed)).resize((ow, oh), Image.BICUBIC), np.uint8)
            f.write(struct.pack("<6i", w, h, c, ow, oh, seed))
            f.write(out.reshape(-1).tobytes())
    # float "F" mode: values 0..255 as float32
    with open("tests/fixtures/resize_float.bin", "wb") as f:
        cases = [(37, 23, 29, 17, 11), (20, 15, 41, 53, 41)]
        f.write(struct.pack("<i", len(cases)))
        for (w, h, seed, ow, oh) in cases:
            src = pattern(w, h, 1, seed)[:, :, 0].astype(np.float32)
            out = np.asarray(Image.fromarray(src, "F").resize((ow, oh), Image.BICUBIC), np.float32)
            f.write(struct.pack("<5i", w, h, seed, ow, oh))
            f.write(out.reshape(-1).tobytes())
    # CLIP preprocessing of a float image (pattern/255 + 0.7/255, so truncation and rounding differ)
    with open("tests/fixtures/resize_clip.bin", "wb") as f:
        cases = [(64, 48, 11), (50, 90, 12), (256, 256, 13)]
        mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
        std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
        f.write(struct.pack("<i", len(cases)))
        for (w, h, seed) in cases:
            img = pattern(w, h, 3, seed).astype(np.float32) / np.float32(255) + np.float32(0.7) / np.float32(255)
            u8 = (img * 255).astype(np.uint8)           # truncation
            short, long_ = (w, h) if w <= h else (h, w)
            ns, nl = 224, int(224 * long_ / short)
            nw, nh = (ns, nl) if w <= h else (nl, ns)
            r = np.asarray(Image.fromarray(u8).resize((nw, nh), Image.BICUBIC), np.uint8)
            top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
            crop = r[top:top + 224, left:left + 224].astype(np.float32) / 255
            chw = ((crop - mean) / std).transpose(2, 0, 1)
            sub = np.ascontiguousarray(chw[:, ::7, ::7], np.float32)   # every 7th pixel keeps the file small
            f.write(struct.pack("<3i", w, h, seed))
            f.write(sub.reshape(-1).tobytes())


if __name__ == "__main__":
    main()
