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


def _pillow_bytes(fmt: str, width: int, height: int, mode: str = "RGB", **save: object) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    color: object = (30, 160, 90, 128) if mode == "RGBA" else (30, 160, 90) if mode == "RGB" else 1
    Image.new(mode, (width, height), color).save(buf, fmt, **save)
    return buf.getvalue()


def gif_bytes(width: int = 120, height: int = 80) -> bytes:
    return _pillow_bytes("GIF", width, height)


def webp_bytes(width: int = 200, height: int = 100) -> bytes:
    return _pillow_bytes("WEBP", width, height)


def bmp_bytes(width: int = 40, height: int = 30) -> bytes:
    return _pillow_bytes("BMP", width, height)


def tiff_bytes(width: int = 40, height: int = 30) -> bytes:
    return _pillow_bytes("TIFF", width, height)


def rotated_jpeg_bytes(width: int = 640, height: int = 480, orientation: int = 6) -> bytes:
    """A JPEG stored landscape with an EXIF Orientation tag (6 = shown rotated 90 degrees, i.e. portrait)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 200)).save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def elf_bytes() -> bytes:
    """The start of a 64-bit Linux ELF executable (what a renamed binary looks like)."""
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHI", 2, 0x3E, 1) + b"\x00" * 200


def mp4_v1_bytes(duration: float = 3600.5, width: int = 1920, height: int = 1080) -> bytes:
    """Like mp4_bytes but with version-1 (64-bit) mvhd and tkhd, as long recordings are written,
    an audio track before the video track, and the moov after mdat."""
    timescale = 90000
    ftyp = _box(b"ftyp", b"mp42" + struct.pack(">I", 0) + b"mp42isom")
    mvhd = _box(
        b"mvhd",
        struct.pack(">B3xQQIQ", 1, 0, 0, timescale, int(duration * timescale))
        + struct.pack(">IH10x", 0x00010000, 0x0100)
        + struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
        + b"\x00" * 24
        + struct.pack(">I", 3),
    )

    def trak(handler: bytes, w: int, h: int, track_id: int) -> bytes:
        tkhd = _box(
            b"tkhd",
            struct.pack(">B3sQQIIQ", 1, b"\x00\x00\x03", 0, 0, track_id, 0, int(duration * timescale))
            + b"\x00" * 8
            + struct.pack(">hhhh", 0, 0, 0, 0)
            + struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
            + struct.pack(">II", w << 16, h << 16),
        )
        hdlr = _box(b"hdlr", struct.pack(">I4s4s12x", 0, b"\x00\x00\x00\x00", handler) + b"Handler\x00")
        return _box(b"trak", tkhd + _box(b"mdia", hdlr))

    moov = _box(b"moov", mvhd + trak(b"soun", 0, 0, 1) + trak(b"vide", width, height, 2))
    mdat = _box(b"mdat", b"\x00" * 1024)
    return ftyp + mdat + moov


def _ebml_id(ident: int) -> bytes:
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big")


def _ebml(ident: int, payload: bytes) -> bytes:
    return _ebml_id(ident) + (0x0100000000000000 | len(payload)).to_bytes(8, "big") + payload


def webm_bytes(duration: float = 7.25, width: int = 640, height: int = 360) -> bytes:
    """A WebM (Matroska) file with EBML header, Segment/Info (TimecodeScale, Duration), one video
    track with pixel size, and a small Cluster."""
    header = _ebml(0x1A45DFA3, _ebml(0x4282, b"webm") + _ebml(0x4287, b"\x04") + _ebml(0x4285, b"\x02"))
    scale = _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big"))  # TimecodeScale: 1 ms ticks
    info = _ebml(0x1549A966, scale + _ebml(0x4489, struct.pack(">d", duration * 1000)))
    video = _ebml(0xE0, _ebml(0xB0, width.to_bytes(2, "big")) + _ebml(0xBA, height.to_bytes(2, "big")))
    tracks = _ebml(0x1654AE6B, _ebml(0xAE, _ebml(0xD7, b"\x01") + _ebml(0x83, b"\x01") + video))
    cluster = _ebml(0x1F43B675, _ebml(0xE7, b"\x00") + b"\x00" * 64)
    return header + _ebml(0x18538067, info + tracks + cluster)
