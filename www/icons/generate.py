#!/usr/bin/env python3
"""Draws the POS icons (PNG, no dependencies): a reader outline with a screen and a keypad
on the brand indigo. `python3 www/icons/generate.py` rewrites icon-192.png, icon-512.png and
icon-maskable-512.png next to this file."""
import struct
import zlib
from pathlib import Path

BRAND = (79, 70, 229)
WHITE = (255, 255, 255)
SCREEN = (199, 210, 254)


def png(size, pixel):
    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x + 0.5, y + 0.5)) for x in range(size)) for y in range(size)
    )

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def in_round_rect(x, y, x0, y0, x1, y1, r):
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def icon(size, maskable):
    s = size / 32.0
    # The glyph lives in the central 80% of a maskable icon (its safe zone).
    g = 0.72 if maskable else 1.0
    o = size * (1 - g) / 2

    def at(v):
        return o + v * s * g

    def pixel(x, y):
        if not maskable and not in_round_rect(x, y, 0, 0, size, size, 7 * s):
            return (0, 0, 0, 0)
        body_outer = in_round_rect(x, y, at(8), at(4), at(24), at(28), 3 * s * g)
        body_inner = in_round_rect(x, y, at(10.5), at(6.5), at(21.5), at(25.5), 1.2 * s * g)
        if body_outer and not body_inner:
            return WHITE + (255,)
        if in_round_rect(x, y, at(12), at(8), at(20), at(14), 0.8 * s * g):
            return SCREEN + (255,)
        for row in range(3):
            for col in range(3):
                kx, ky = at(12.3 + col * 2.9), at(16.5 + row * 2.8)
                if (x - kx) ** 2 + (y - ky) ** 2 <= (0.9 * s * g) ** 2:
                    return WHITE + (255,)
        return BRAND + (255,)

    return png(size, pixel)


here = Path(__file__).resolve().parent
(here / "icon-192.png").write_bytes(icon(192, False))
(here / "icon-512.png").write_bytes(icon(512, False))
(here / "icon-maskable-512.png").write_bytes(icon(512, True))
