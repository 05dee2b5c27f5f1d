#!/usr/bin/env python3
"""Collapse check of a long dreamed run against the real game (standard library only).

    dreamcaster play --headless --engine neural    --actions A --frames 3000 --dump-frames dream
    dreamcaster play --headless --engine reference --actions A --frames 3000 --dump-frames real
    bench/frame_stats.py dream real [--window 300]

For windows of frames it prints, for the dream and the real game side by side: mean colour (R, G, B), contrast
(standard deviation of luminance within a frame, averaged), motion (mean absolute change per pixel from the previous
frame) and the share of dreamed pixels whose colour lies outside the real run's per-channel 1st–99th percentile range.
A collapse shows as colours leaving the real range or contrast falling towards 0; a freeze as motion near 0 while
the real game moves.
"""
import argparse
import os
import struct
import sys
import zlib


def read_png_rgb(path):
    """8-bit RGB or RGBA PNG (non-interlaced) -> (width, height, bytes of RGB)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, width = 8, [], 0
    height = bit_depth = colour = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, bit_depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if bit_depth != 8 or colour not in (2, 6) or interlace != 0:
        raise ValueError(f"{path}: expected 8-bit RGB/RGBA non-interlaced, found depth {bit_depth} type {colour}")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + ((a + b) >> 1)) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    if bpp == 4:
        out = bytearray(v for i, v in enumerate(out) if i % 4 != 3)
    return width, height, bytes(out)


def frame_files(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    if not names:
        raise SystemExit(f"frame_stats: no PNG frames in '{folder}'")
    return [os.path.join(folder, n) for n in names]


def stats(rgb, prev):
    n = len(rgb) // 3
    sums = [sum(rgb[c::3]) / n for c in range(3)]
    lum = [(rgb[3 * i] * 299 + rgb[3 * i + 1] * 587 + rgb[3 * i + 2] * 114) / 1000 for i in range(n)]
    m = sum(lum) / n
    contrast = (sum((v - m) ** 2 for v in lum) / n) ** 0.5
    motion = sum(abs(a - b) for a, b in zip(rgb, prev)) / len(rgb) if prev is not None else 0.0
    return sums, contrast, motion


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dream")
    ap.add_argument("real")
    ap.add_argument("--window", type=int, default=300, help="frames per row of the table")
    a = ap.parse_args()
    dream, real = frame_files(a.dream), frame_files(a.real)
    n = min(len(dream), len(real))
    # The real run's colour range: per channel, 1st and 99th percentile over a sample of its pixels.
    sample = [[], [], []]
    for path in real[:: max(1, n // 60)]:
        _, _, rgb = read_png_rgb(path)
        for c in range(3):
            sample[c].extend(rgb[c::3][::7])
    lo = [percentile(s, 0.01) for s in sample]
    hi = [percentile(s, 0.99) for s in sample]
    print(f"frames {n}; real colour range (1st-99th percentile) R {lo[0]}-{hi[0]} G {lo[1]}-{hi[1]} B {lo[2]}-{hi[2]}")
    print("| frames | dream mean RGB | real mean RGB | dream contrast | real contrast | dream motion | real motion "
          "| dream pixels outside the real range |")
    print("|---|---|---|---|---|---|---|---|")
    prev_d = prev_r = None
    for w0 in range(0, n, a.window):
        acc = {"dm": [0.0] * 3, "rm": [0.0] * 3, "dc": 0.0, "rc": 0.0, "dv": 0.0, "rv": 0.0, "out": 0.0}
        count = 0
        for i in range(w0, min(n, w0 + a.window)):
            _, _, d = read_png_rgb(dream[i])
            _, _, r = read_png_rgb(real[i])
            ds, dc, dv = stats(d, prev_d)
            rs, rc, rv = stats(r, prev_r)
            outside = sum(1 for j in range(0, len(d), 3)
                          if any(d[j + c] < lo[c] or d[j + c] > hi[c] for c in range(3))) / (len(d) // 3)
            for c in range(3):
                acc["dm"][c] += ds[c]
                acc["rm"][c] += rs[c]
            acc["dc"] += dc
            acc["rc"] += rc
            acc["dv"] += dv
            acc["rv"] += rv
            acc["out"] += outside
            prev_d, prev_r = d, r
            count += 1
        k = float(count)
        rgb = lambda v: "%d %d %d" % tuple(round(x / k) for x in v)  # noqa: E731
        print(f"| {w0}-{w0 + count - 1} | {rgb(acc['dm'])} | {rgb(acc['rm'])} | {acc['dc'] / k:.1f} | "
              f"{acc['rc'] / k:.1f} | {acc['dv'] / k:.2f} | {acc['rv'] / k:.2f} | {100 * acc['out'] / k:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
