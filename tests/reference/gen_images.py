#!/usr/bin/python3
"""Tiny image fixtures for tests/test_image_io.c, made with PIL: PNGs in every colour type / bit depth the
loader must handle, each with the RGB float values PIL decodes (images_<name>.f32: w, h as int32, then h*w*3
float32), and a JPEG with EXIF orientation 6. Run from the repo root: /usr/bin/python3 tests/reference/gen_images.py"""
import struct
import numpy as np
from PIL import Image, ImageOps

rng = np.random.default_rng(4)
W, H = 7, 5
OUT = "tests/fixtures/"


def save_expect(name, rgb):
    h, w, _ = rgb.shape
    with open(OUT + "images_" + name + ".f32", "wb") as f:
        f.write(struct.pack("<2i", w, h))
        f.write(np.ascontiguousarray(rgb, np.float32).reshape(-1).tobytes())


def main():
    rgb8 = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    a8 = rng.integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(rgb8, "RGB").save(OUT + "images_rgb8.png")
    save_expect("rgb8", rgb8 / 255.0)
    rgba = np.dstack([rgb8, a8])
    Image.fromarray(rgba, "RGBA").save(OUT + "images_rgba8.png")
    save_expect("rgba8", rgb8 / 255.0)                      # alpha dropped
    g8 = rgb8[:, :, 1].copy()
    Image.fromarray(g8, "L").save(OUT + "images_gray8.png")
    save_expect("gray8", np.dstack([g8] * 3) / 255.0)
    Image.fromarray(np.dstack([g8, a8]), "LA").save(OUT + "images_graya8.png")
    save_expect("graya8", np.dstack([g8] * 3) / 255.0)
    g16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    Image.fromarray(g16.astype(np.int32), "I").save(OUT + "images_gray16.png")   # PIL writes mode I as 16-bit grey
    chk = np.asarray(Image.open(OUT + "images_gray16.png"))
    assert (chk == g16).all(), "PIL did not write 16-bit grey"
    save_expect("gray16", np.dstack([g16] * 3) / 65535.0)
    pal = Image.fromarray(rgb8, "RGB").quantize(colors=6)
    pal.save(OUT + "images_palette.png")
    save_expect("palette", np.asarray(pal.convert("RGB")) / 255.0)
    # 16-bit RGB: PIL cannot write it; write the PNG by hand (zlib + chunks)
    import zlib
    rgb16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(H))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">2I5B", W, H, 16, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(OUT + "images_rgb16.png", "wb").write(png)
    save_expect("rgb16", rgb16 / 65535.0)
    # JPEG with EXIF orientation 6 (stored rotated), flat 8x8-aligned colour blocks (asymmetric, so a transpose
    # or a wrong rotation direction shows)
    blk = np.zeros((16, 24, 3), np.uint8)            # 24x16 stored; red top-left, blue top-right, green bottom
    blk[:, :] = (30, 180, 30)
    blk[0:8, 0:8] = (200, 30, 30)
    blk[0:8, 8:24] = (30, 30, 200)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(blk).save(OUT + "images_orient6.jpg", quality=95, exif=exif.tobytes())
    up = ImageOps.exif_transpose(Image.open(OUT + "images_orient6.jpg"))
    save_expect("orient6", np.asarray(up.convert("RGB")) / 255.0)


if __name__ == "__main__":
    main()
