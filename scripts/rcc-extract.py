#!/usr/bin/env python3
"""Extracts the files stored in a Qt binary resource file (.rcc), keeping their paths; used by
scripts/fetch-photos.sh for the photographs inside gcompris-qt-data. Standard library only.

    rcc-extract.py FILE.rcc OUTDIR [SUFFIX...]      e.g.  rcc-extract.py erase.rcc out .webp .jpg

Prints one line per file written. Only files whose names end with one of the SUFFIXes (case-insensitive) are
written when any are given.

The format (Qt's rcc, versions 1-3): a 20-byte header ("qres", version, then the offsets of the tree, the data
and the names, big-endian u32; version 3 adds a u32 of flags). The tree is an array of fixed-size nodes (14
bytes; 22 from version 2 on, with a u64 modification time); node 0 is the root. A node is name offset (u32),
flags (u16: 1 = zlib, 2 = directory, 4 = zstd), then either child count and first child index (u32, u32) for
a directory or country, language (u16, u16) and data offset (u32) for a file. A name is a u16 length, a u32
hash and UTF-16BE characters; data is a u32 size and the bytes, zlib-compressed data being qCompress's
(a u32 uncompressed size, then the zlib stream). Every offset and size is checked against the file.
"""
import os
import struct
import subprocess
import sys
import zlib

FLAG_ZLIB, FLAG_DIR, FLAG_ZSTD = 1, 2, 4
MAX_DEPTH = 64


class RccError(Exception):
    pass


def read_at(buf, fmt, off):
    size = struct.calcsize(fmt)
    if off < 0 or off + size > len(buf):
        raise RccError(f"offset {off} (+{size}) beyond the end of the file ({len(buf)} bytes)")
    return struct.unpack_from(fmt, buf, off)


def parse(buf):
    magic = buf[:4]
    if magic != b"qres":
        raise RccError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = read_at(buf, ">IIII", 4)
    if version not in (1, 2, 3):
        raise RccError(f"unsupported rcc version {version}")
    node_size = 14 if version == 1 else 22
    return tree, data, names, node_size


def name_of(buf, names, off):
    (length,) = read_at(buf, ">H", names + off)
    start = names + off + 6
    if start + 2 * length > len(buf):
        raise RccError("a name runs past the end of the file")
    return buf[start:start + 2 * length].decode("utf-16-be")


def payload(buf, data, off, flags, label):
    (size,) = read_at(buf, ">I", data + off)
    start = data + off + 4
    if start + size > len(buf):
        raise RccError(f"{label}: data of {size} bytes runs past the end of the file")
    raw = buf[start:start + size]
    if flags & FLAG_ZLIB:
        if size < 4:
            raise RccError(f"{label}: compressed entry too short")
        (want,) = struct.unpack_from(">I", raw, 0)
        out = zlib.decompress(raw[4:])
        if len(out) != want:
            raise RccError(f"{label}: inflated to {len(out)} bytes, header says {want}")
        return out
    if flags & FLAG_ZSTD:
        return subprocess.run(["zstd", "-dc"], input=raw, stdout=subprocess.PIPE, check=True).stdout
    return raw


def walk(buf, layout, index, path, depth, visit, seen):
    tree, data, names, node_size = layout
    if depth > MAX_DEPTH:
        raise RccError("directory tree too deep")
    if index in seen:
        raise RccError(f"tree node {index} reached twice (a loop?)")
    seen.add(index)
    base = tree + index * node_size
    name_off, flags = read_at(buf, ">IH", base)
    name = "" if index == 0 else name_of(buf, names, name_off)
    if "/" in name or name in (".", ".."):
        raise RccError(f"unsafe entry name {name!r}")
    here = f"{path}/{name}" if path else name
    if flags & FLAG_DIR:
        count, first = read_at(buf, ">II", base + 6)
        if count > len(buf) // node_size:
            raise RccError(f"{here or '/'}: {count} children cannot fit in the file")
        for child in range(first, first + count):
            walk(buf, layout, child, here, depth + 1, visit, seen)
    else:
        (off,) = read_at(buf, ">I", base + 10)
        visit(here, lambda: payload(buf, data, off, flags, here))


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    src, outdir, suffixes = argv[1], argv[2], tuple(s.lower() for s in argv[3:])
    with open(src, "rb") as f:
        buf = f.read()

    def visit(path, get):
        if suffixes and not path.lower().endswith(suffixes):
            return
        dest = os.path.join(outdir, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as out:
            out.write(get())
        print(dest)

    try:
        walk(buf, parse(buf), 0, "", 0, visit, set())
    except (RccError, zlib.error, subprocess.CalledProcessError, UnicodeDecodeError) as e:
        sys.stderr.write(f"rcc-extract: {src}: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
