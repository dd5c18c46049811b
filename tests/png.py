"""What a PNG file says about itself, read from its chunks, so tests check images without
an imaging library."""

from __future__ import annotations

import struct
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The IEND chunk: zero length, its type, its CRC. Every complete PNG ends with it.
END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class NotAPng(ValueError):
    pass


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a complete PNG; a truncated or foreign file raises `NotAPng`."""
    data = path.read_bytes()
    if data[:8] != SIGNATURE or data[12:16] != b"IHDR" or not data.endswith(END):
        raise NotAPng(f"{path} is not a complete PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
