#!/usr/bin/env python3
"""Finds the JPEG images stored inside another file (a jigzo .pzl puzzle, an Enlightenment .edj theme) and
writes the largest one; used by scripts/fetch-photos.sh. Standard library only.

    jpeg-carve.py FILE OUT.jpg        prints "WIDTHxHEIGHT" of the image written; exit 1 if none is found

A JPEG starts with SOI (FF D8 FF). From there the stream is walked marker by marker, as a decoder reads it:
segments carry a big-endian length and are skipped whole (so a thumbnail inside an EXIF segment is not
mistaken for the image), SOFn gives the size, and after each SOS the entropy-coded data runs to the next
marker that is not a stuffed FF 00 or a restart marker; EOI (FF D9) ends the image. A candidate that runs
off the end of the file or breaks this structure is dropped.
"""
import sys

SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def walk(buf, start):
    """(end, width, height) of the JPEG starting at `start`, or None when it is not a complete one."""
    n, i, size = len(buf), start + 2, None
    while i + 2 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker == 0xD9:          # EOI
            return (i + 2, size[0], size[1]) if size else None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        if i + 4 > n:
            return None
        length = (buf[i + 2] << 8) | buf[i + 3]
        if length < 2 or i + 2 + length > n:
            return None
        if marker in SOF and length >= 7:
            height = (buf[i + 5] << 8) | buf[i + 6]
            width = (buf[i + 7] << 8) | buf[i + 8]
            size = (width, height)
        i += 2 + length
        if marker == 0xDA:          # SOS: skip the entropy-coded data
            while True:
                j = buf.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return None
                nxt = buf[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                    i = j + 2
                    continue
                i = j
                break
    return None


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    with open(argv[1], "rb") as f:
        buf = f.read()
    best, pos = None, 0
    while True:
        pos = buf.find(b"\xff\xd8\xff", pos)
        if pos < 0:
            break
        found = walk(buf, pos)
        if found:
            end, w, h = found
            if not best or w * h > best[2] * best[3]:
                best = (pos, end, w, h)
            pos = end
        else:
            pos += 3
    if not best:
        sys.stderr.write(f"jpeg-carve: {argv[1]}: no complete JPEG inside\n")
        return 1
    with open(argv[2], "wb") as out:
        out.write(buf[best[0]:best[1]])
    print(f"{best[2]}x{best[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
