"""Real media bytes for tests: JPEG/PNG from Pillow, a minimal but well-formed MP4."""

from __future__ import annotations

import io
import struct


def jpeg_bytes(width: int = 640, height: int = 480, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def png_bytes(width: int = 320, height: int = 240) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 120, 200, 255)).save(buf, "PNG")
    return buf.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4_bytes(duration: float = 12.5, width: int = 1280, height: int = 720, mdat_size: int = 4096) -> bytes:
    """An ISO-BMFF file with ftyp, moov (mvhd + one video trak with tkhd) and mdat.

    Players would not decode it, but every metadata reader (and the networks' checks we imitate)
    finds the brand, the duration and the dimensions where real files keep them.
    """
    timescale = 1000
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    mvhd = _box(
        b"mvhd",
        struct.pack(">B3xIIII", 0, 0, 0, timescale, int(duration * timescale))
        + struct.pack(">IH10x", 0x00010000, 0x0100)
        + struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
        + b"\x00" * 24
        + struct.pack(">I", 2),
    )
    tkhd = _box(
        b"tkhd",
        struct.pack(">B3sIIIII", 0, b"\x00\x00\x03", 0, 0, 1, 0, int(duration * timescale))
        + b"\x00" * 8
        + struct.pack(">hhhh", 0, 0, 0, 0)
        + struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
        + struct.pack(">II", width << 16, height << 16),
    )
    hdlr = _box(b"hdlr", struct.pack(">I4s4s12x", 0, b"\x00\x00\x00\x00", b"vide") + b"VideoHandler\x00")
    mdia = _box(b"mdia", hdlr)
    trak = _box(b"trak", tkhd + mdia)
    moov = _box(b"moov", mvhd + trak)
    mdat = _box(b"mdat", b"\x00" * mdat_size)
    return ftyp + moov + mdat
