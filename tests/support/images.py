"""Small images built in memory for the tests: plain PNGs, and one that claims to be enormous."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def make_png(width: int = 64, height: int = 48, colour: tuple = (200, 100, 50)) -> bytes:
    """A PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def make_bomb_png(side: int = 60000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb on decode)."""
    png = bytearray(make_png(16, 16))
    ihdr = struct.pack(">II", side, side) + bytes(png[24:29])
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(png)
