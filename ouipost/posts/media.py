"""Uploaded media, checked by content: sniffing, image and video probing, thumbnails, streamed uploads.

Nothing here trusts a file name or a declared Content-Type: the kind and MIME type come from the
bytes (`sniff`), dimensions from Pillow, video duration and size from the container's own headers.

Why our own magic-number table rather than `filetype`/`puremagic`: filetype does not know Apple's
``M4V `` brand (it answers None for real iTunes/Handbrake .m4v files) and returns HEIC/AVIF/M4A as
"images"/"audio" that no network accepts, so we would re-filter its answers anyway; the table below is
exactly the list of types the networks take.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import struct
import tempfile
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote

from PIL import Image, ImageOps

if TYPE_CHECKING:
    from aiohttp import BodyPartReader

SNIFF_BYTES = 64  # how much of the head `sniff` needs
MAX_IMAGE_PIXELS = 50_000_000  # decompression-bomb guard: larger than any network accepts (LinkedIn < 36 MP)
CHUNK_SIZE = 256 * 1024
_WRITE_BATCH = 1024 * 1024  # bytes gathered before one write in a worker thread


class MediaError(Exception):
    """A media file we refuse. `status` and `code` are the API error it maps to."""

    status = 422
    code = "VALIDATION_ERROR"


class UnsupportedMedia(MediaError):
    """The bytes are not a type we accept (or the file is empty): 415 UNSUPPORTED_MEDIA_TYPE."""

    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class CorruptMedia(UnsupportedMedia):
    """The bytes start like an accepted type but the file is truncated or damaged: 415."""


class MediaTooLarge(MediaError):
    """The upload is over the byte cap of its kind: 413 PAYLOAD_TOO_LARGE."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, kind: str, limit: int) -> None:
        self.kind, self.limit = kind, limit
        super().__init__(f"{kind} uploads are limited to {_human_size(limit)}")


def _human_size(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


# ---------------------------------------------------------------------------------------------- sniffing


@dataclass(frozen=True)
class SniffResult:
    kind: str  # image | video | document
    mime_type: str
    extension: str  # without the dot


_JPEG = SniffResult("image", "image/jpeg", "jpg")
_PNG = SniffResult("image", "image/png", "png")
_GIF = SniffResult("image", "image/gif", "gif")
_WEBP = SniffResult("image", "image/webp", "webp")
_BMP = SniffResult("image", "image/bmp", "bmp")
_TIFF = SniffResult("image", "image/tiff", "tiff")
_MP4 = SniffResult("video", "video/mp4", "mp4")
_MOV = SniffResult("video", "video/quicktime", "mov")
_M4V = SniffResult("video", "video/x-m4v", "m4v")
_WEBM = SniffResult("video", "video/webm", "webm")
_PDF = SniffResult("document", "application/pdf", "pdf")

# ISO-BMFF major brands of the video files the networks take. Audio-only (M4A), still-image (HEIC,
# AVIF) and 3GPP brands are deliberately absent: no network accepts them.
_VIDEO_BRANDS = {
    b"isom": _MP4, b"iso2": _MP4, b"iso3": _MP4, b"iso4": _MP4, b"iso5": _MP4, b"iso6": _MP4,
    b"mp41": _MP4, b"mp42": _MP4, b"avc1": _MP4, b"dash": _MP4, b"mmp4": _MP4, b"msnv": _MP4,
    b"f4v ": _MP4, b"XAVC": _MP4, b"MSNV": _MP4, b"NDAS": _MP4,
    b"M4V ": _M4V, b"M4VH": _M4V, b"M4VP": _M4V,
    b"qt  ": _MOV,
}
# A major brand we do not list still makes a video when the compatible brands say MP4.
_COMPATIBLE_MP4 = (b"isom", b"iso2", b"mp41", b"mp42", b"avc1")
_NOT_VIDEO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"crx ")
# Old QuickTime files start straight with one of these atoms instead of ftyp.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"pnot")


def sniff(head: bytes) -> SniffResult | None:
    """The accepted type the first bytes of a file announce, or None for anything else.

    Recognises JPEG, PNG, GIF, WEBP, BMP, TIFF, MP4/MOV/M4V (ISO-BMFF ftyp brands, old QuickTime atoms),
    WebM (EBML DocType) and PDF. Pass at least SNIFF_BYTES bytes; fewer may give None. A match only says
    how the file starts: probe_image/probe_video check the rest.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return _JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _WEBP
    if head[:2] == b"BM" and len(head) >= 26 and struct.unpack("<I", head[14:18])[0] in (12, 40, 52, 56, 64, 108, 124):
        # "BM" alone is too common a start; the DIB header size pins it down.
        return _BMP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _TIFF
    if head[:5] == b"%PDF-":
        return _PDF
    if head[:4] == b"\x1a\x45\xdf\xa3":
        # EBML: the DocType element (0x4282) says webm or matroska; only WebM is accepted.
        doctype = head.find(b"\x42\x82")
        if doctype == -1 or doctype + 2 >= len(head):
            return None
        size_start = doctype + 2
        first = head[size_start]
        size_length = 8 - first.bit_length() + 1 if first else 9  # a vint's length is its leading zeros + 1
        if size_length > 8:
            return None
        value_start = size_start + size_length
        return _WEBM if head[value_start : value_start + 4] == b"webm" else None
    if len(head) >= 12 and head[4:8] == b"ftyp":
        box_size = struct.unpack(">I", head[:4])[0]
        major = head[8:12]
        if major in _NOT_VIDEO_BRANDS:
            return None
        if major in _VIDEO_BRANDS:
            return _VIDEO_BRANDS[major]
        compatible = head[16 : min(box_size, len(head))]
        brands = {compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4)}
        if brands & set(_COMPATIBLE_MP4):
            return _MP4
        if b"qt  " in brands:
            return _MOV
        return None
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return _MOV
    return None


def sniff_mime(head: bytes) -> str | None:
    """The media type `head` (a file's first bytes, or all of it) announces, or None: what a network
    that looks at the bytes, never at a name or a declared type, sees. The sandboxes use it."""
    found = sniff(head)
    return found.mime_type if found is not None else None


def sniff_file(path: str | os.PathLike[str]) -> SniffResult | None:
    """sniff() on the head of the file at `path`."""
    with open(path, "rb") as f:
        return sniff(f.read(SNIFF_BYTES))


# ------------------------------------------------------------------------------------------------ images


def _open_checked(path: str | os.PathLike[str], max_pixels: int) -> Image.Image:
    """Open an image with the decompression-bomb guard turned into our own error."""
    with warnings.catch_warnings():
        # Pillow warns (and only raises past twice its limit); a warning must refuse the file too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise CorruptMedia("the image has too many pixels to process safely") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptMedia("the file is not a readable image") from exc
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        image.close()
        raise CorruptMedia(
            f"the image is {width}x{height} pixels; at most {max_pixels // 1_000_000} megapixels are accepted"
        )
    return image


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    # EXIF orientations 5-8 rotate by 90°: a portrait phone photo is stored landscape.
    width, height = image.size
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not refuse an otherwise fine photo
        orientation = None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def probe_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(width, height) of the image at `path` as displayed (EXIF rotation applied).

    Decodes the whole image once, so truncated or corrupt files are refused: raises CorruptMedia for
    unreadable, truncated or damaged files and for images over `max_pixels` (decompression bombs are
    refused before any pixel is decoded).
    """
    image = _open_checked(path, max_pixels)
    try:
        image.verify()  # structure and checksums (PNG CRCs); leaves the image unusable
    except Exception as exc:
        raise CorruptMedia("the image is truncated or damaged") from exc
    finally:
        image.close()
    image = _open_checked(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()  # verify() does not decode pixel data; a cut-off JPEG only fails here
        return _oriented_size(image)
    except MediaError:
        raise
    except Exception as exc:
        raise CorruptMedia("the image is truncated or damaged") from exc
    finally:
        image.close()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def thumbnail_mime_type(path: str | os.PathLike[str]) -> str:
    """The type make_thumbnail writes for the image at `path`: image/png with alpha, else image/jpeg."""
    with Image.open(path) as image:
        return "image/png" if _has_alpha(image) else "image/jpeg"


def make_thumbnail(
    path: str | os.PathLike[str], dest: str | os.PathLike[str], max_side: int = 320,
    *, max_pixels: int = MAX_IMAGE_PIXELS,
) -> tuple[int, int]:
    """Write a thumbnail of the image at `path` to `dest`; returns its (width, height).

    The longest side becomes at most `max_side` (never enlarged), EXIF rotation is applied, animated
    images use their first frame. JPEG for photos, PNG when the image has transparency (see
    thumbnail_mime_type). Raises CorruptMedia for files probe_image would refuse.
    """
    image = _open_checked(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            alpha = _has_alpha(image)
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, much less memory
            frame = ImageOps.exif_transpose(image) or image
            frame = frame.convert("RGBA" if alpha else "RGB")
            frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            if alpha:
                frame.save(dest, "PNG", optimize=True)
            else:
                frame.save(dest, "JPEG", quality=82, optimize=True, progressive=True)
            return frame.size
    except MediaError:
        raise
    except Exception as exc:
        raise CorruptMedia("the image is truncated or damaged") from exc
    finally:
        image.close()


# ------------------------------------------------------------------------------------------------ videos


@dataclass(frozen=True)
class VideoInfo:
    duration: float  # seconds
    width: int | None
    height: int | None


_CONTAINER_BOXES = {b"mdia", b"minf", b"edts"}  # boxes whose children we need to reach


def _read_box_header(f: IO[bytes], end: int) -> tuple[bytes, int, int] | None:
    """(type, payload start, box end) of the box at the current offset, or None past `end`."""
    start = f.tell()
    if start + 8 > end:
        return None
    header = f.read(8)
    if len(header) < 8:
        return None
    size, kind = struct.unpack(">I4s", header)
    payload = start + 8
    if size == 1:  # 64-bit size follows
        large = f.read(8)
        if len(large) < 8:
            return None
        size = struct.unpack(">Q", large)[0]
        payload += 8
    elif size == 0:  # box runs to the end of the file
        size = end - start
    if size < payload - start or start + size > end:
        raise CorruptMedia(f"the video's {kind.decode('latin-1')!r} box is cut off or malformed")
    return kind, payload, start + size


def _parse_mvhd(data: bytes) -> float:
    version = data[0]
    if version == 1:
        timescale, duration = struct.unpack(">IQ", data[20:32])
    else:
        timescale, duration = struct.unpack(">II", data[12:20])
    if timescale == 0:
        raise CorruptMedia("the video's movie header has a zero timescale")
    return duration / timescale


def _parse_tkhd(data: bytes) -> tuple[int, int]:
    # width and height are the last 8 bytes, 16.16 fixed point, for both versions.
    offset = 84 if data[0] == 1 else 72
    width, height = struct.unpack(">II", data[offset + 4 : offset + 12])
    return width >> 16, height >> 16


@dataclass
class _Track:
    """What one `trak` box of an MP4 says: its handler type (b"vide" for video) and its size."""

    handler: bytes | None = None
    size: tuple[int, int] | None = None


def _probe_isobmff(f: IO[bytes], file_end: int) -> VideoInfo:
    duration: float | None = None
    video_size: tuple[int, int] | None = None

    def walk(end: int, track: _Track | None) -> None:
        nonlocal duration, video_size
        while (box := _read_box_header(f, end)) is not None:
            kind, payload, box_end = box
            if kind == b"mvhd":
                duration = _parse_mvhd(f.read(min(box_end - payload, 32)))
            elif kind == b"tkhd" and track is not None:
                track.size = _parse_tkhd(f.read(min(box_end - payload, 96)))
            elif kind == b"hdlr" and track is not None:
                track.handler = f.read(min(box_end - payload, 12))[8:12]
            elif kind == b"trak":
                inner = _Track()
                walk(box_end, inner)
                if inner.handler == b"vide" and inner.size is not None and video_size is None:
                    video_size = inner.size
            elif kind in _CONTAINER_BOXES:
                walk(box_end, track)
            # Everything else (mdat above all) is skipped by seeking, never read.
            f.seek(box_end)

    found_moov = False
    while (box := _read_box_header(f, file_end)) is not None:
        kind, _payload, box_end = box
        if kind == b"moov":
            found_moov = True
            walk(box_end, None)
            break
        f.seek(box_end)
    if not found_moov:
        raise CorruptMedia("the video has no 'moov' box (no metadata); re-export it as a regular MP4")
    if not duration or duration <= 0:
        raise CorruptMedia("the video has a zero duration")
    width, height = video_size if video_size else (None, None)
    return VideoInfo(duration=duration, width=width or None, height=height or None)


# EBML element ids (Matroska/WebM).
_EBML_SEGMENT, _EBML_INFO, _EBML_TIMECODE_SCALE, _EBML_DURATION = 0x18538067, 0x1549A966, 0x2AD7B1, 0x4489
_EBML_TRACKS, _EBML_TRACK_ENTRY, _EBML_TRACK_TYPE, _EBML_VIDEO = 0x1654AE6B, 0xAE, 0x83, 0xE0
_EBML_PIXEL_WIDTH, _EBML_PIXEL_HEIGHT, _EBML_CLUSTER = 0xB0, 0xBA, 0x1F43B675


def _read_vint(f: IO[bytes], keep_marker: bool) -> tuple[int, bool] | None:
    """(value, all-ones) of an EBML variable-length integer; None at end of file."""
    first = f.read(1)
    if not first:
        return None
    b = first[0]
    length = 1
    while length <= 8 and not b & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise CorruptMedia("the WebM file has a malformed element header")
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = b if keep_marker else b & (0xFF >> length)
    for byte in rest:
        value = (value << 8) | byte
    all_ones = not keep_marker and value == (1 << (7 * length)) - 1
    return value, all_ones


class _Webm:
    """Reads a WebM file's Segment > Info (time scale, duration) and Segment > Tracks (the first video
    track's size), seeking over everything else."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.scale = 1_000_000  # nanoseconds per tick, Matroska's default
        self.raw_duration: float | None = None
        self.size: tuple[int, int] | None = None

    def elements(self, end: int) -> Iterator[tuple[int, int, int]]:
        """(id, payload start, element end) of each element until `end`; the caller reads the
        payload or not, and the next element is read from the current element's end."""
        while self.f.tell() < end:
            ident = _read_vint(self.f, keep_marker=True)
            length = _read_vint(self.f, keep_marker=False)
            if ident is None or length is None:
                return
            start = self.f.tell()
            element_end = end if length[1] else min(start + length[0], end)
            yield ident[0], start, element_end
            self.f.seek(element_end)

    def uint(self, start: int, end: int) -> int:
        return int.from_bytes(self.f.read(end - start), "big")

    def probe(self, file_end: int) -> VideoInfo:
        for ident, _start, end in self.elements(file_end):
            if ident == _EBML_SEGMENT:
                self._segment(end)
                break
        if not self.raw_duration or self.raw_duration <= 0:
            raise CorruptMedia("the WebM video has no duration (a live recording?); re-export it with a duration")
        width, height = self.size if self.size else (None, None)
        return VideoInfo(duration=self.raw_duration * self.scale / 1e9, width=width, height=height)

    def _segment(self, end: int) -> None:
        for child, _start, child_end in self.elements(end):
            if child == _EBML_INFO:
                self._info(child_end)
            elif child == _EBML_TRACKS:
                for entry, _entry_start, entry_end in self.elements(child_end):
                    if entry == _EBML_TRACK_ENTRY and self.size is None:
                        self.size = self._video_size(entry_end)
            elif child == _EBML_CLUSTER and self.raw_duration is not None and self.size is not None:
                return  # metadata is complete; clusters are media data

    def _info(self, end: int) -> None:
        for item, start, item_end in self.elements(end):
            if item == _EBML_TIMECODE_SCALE:
                self.scale = self.uint(start, item_end)
            elif item == _EBML_DURATION:
                data = self.f.read(item_end - start)
                self.raw_duration = struct.unpack(">f" if len(data) == 4 else ">d", data)[0]

    def _video_size(self, end: int) -> tuple[int, int] | None:
        """(width, height) of a track entry when it is a video track (type 1) that states both."""
        track_type, dims = None, {}
        for prop, start, prop_end in self.elements(end):
            if prop == _EBML_TRACK_TYPE:
                track_type = self.uint(start, prop_end)
            elif prop == _EBML_VIDEO:
                for dim, dim_start, dim_end in self.elements(prop_end):
                    if dim in (_EBML_PIXEL_WIDTH, _EBML_PIXEL_HEIGHT):
                        dims[dim] = self.uint(dim_start, dim_end)
        if track_type == 1 and len(dims) == 2:
            return dims[_EBML_PIXEL_WIDTH], dims[_EBML_PIXEL_HEIGHT]
        return None


def _probe_webm(f: IO[bytes], file_end: int) -> VideoInfo:
    return _Webm(f).probe(file_end)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Duration (seconds) and display size of the video at `path`, from its container headers.

    MP4/MOV/M4V: mvhd (versions 0 and 1) and the tkhd of the track whose hdlr is 'vide'; WebM: Info and
    Tracks. Reads box/element headers only and seeks over media data, so a gigabyte file costs a few
    reads. Raises CorruptMedia when there is no moov (or WebM Info), a zero duration, or cut-off headers;
    UnsupportedMedia for bytes that are not a video.
    """
    kind = sniff_file(path)
    if kind is None or kind.kind != "video":
        raise UnsupportedMedia("the file is not an MP4, MOV, M4V or WebM video")
    file_end = os.path.getsize(path)
    with open(path, "rb") as f:
        try:
            if kind is _WEBM:
                return _probe_webm(f, file_end)
            return _probe_isobmff(f, file_end)
        except (struct.error, IndexError) as exc:
            raise CorruptMedia("the video's metadata is cut off or malformed") from exc


# ------------------------------------------------------------------------------------------------ upload


@dataclass(frozen=True)
class ReceivedFile:
    path: Path  # a temp file in tmp_dir; the caller moves it into storage or deletes it
    size: int
    sha256: str
    sniffed: SniffResult
    filename: str


_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|\ud800-\udfff]+")


MAX_FILENAME_BYTES = 255  # what file systems and the media.filename column take


# Extensions that name the same type as the sniffed one: a name with any other keeps its stem only.
_SAME_TYPE_EXTENSIONS = {"jpg": {"jpg", "jpeg", "jpe", "jfif"}, "tiff": {"tif", "tiff"}, "mov": {"mov", "qt"},
                         "bmp": {"bmp", "dib"}}
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,10})$")


def safe_filename(name: str | None, extension: str) -> str:
    """A display file name: the last path component of `name` (percent-escapes decoded), without control
    or path characters or lone surrogates, its extension made `extension` when it names another type
    (a JPEG sent as photo.png is photo.jpg), at most MAX_FILENAME_BYTES bytes of UTF-8 (cut in the
    stem, between characters, keeping a short extension); `upload.<extension>` when nothing usable is
    left."""
    # Browsers escape quotes and newlines as %22/%0D/%0A and some clients (aiohttp) percent-encode
    # the whole name: decode first, so separators hidden as %2F are stripped too.
    name = unicodedata.normalize("NFC", unquote(name or "", errors="replace"))
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip(" ._")
    given = _EXTENSION.search(name)
    if given and given.group(1).lower() not in _SAME_TYPE_EXTENSIONS.get(extension, {extension}):
        name = f"{name[: given.start()]}.{extension}"
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        if not dot or len(ext.encode("utf-8")) > 10:
            stem, dot, ext = name, "", ""
        room = MAX_FILENAME_BYTES - len((dot + ext).encode("utf-8"))
        name = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" ._") + dot + ext
    return name or f"upload.{extension}"


async def receive_upload(part: BodyPartReader, tmp_dir: Path, caps: dict[str, int]) -> ReceivedFile:
    """Stream a multipart file part into a temp file in `tmp_dir`, checking its type and size on the way.

    The kind comes from the first bytes (sniff), never from the part's name or Content-Type. `caps` maps
    a kind (image, video, document) to its byte limit; a kind missing from `caps` is not accepted.
    Memory stays at about one chunk batch whatever the file size. Raises UnsupportedMedia for an empty
    file or unaccepted bytes, MediaTooLarge as soon as the cap is passed (the rest is not read); in
    every failure the temp file is gone.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # uploads in flight are as private as stored ones
    fd, tmp_name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=tmp_dir)
    path = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            head = b""
            # Gather the head before deciding anything: chunks can be smaller than SNIFF_BYTES.
            while len(head) < SNIFF_BYTES:
                chunk = await part.read_chunk(CHUNK_SIZE)
                if not chunk:
                    break
                head += chunk
            if not head:
                raise UnsupportedMedia("the file is empty")
            sniffed = sniff(head[:SNIFF_BYTES])
            if sniffed is None:
                raise UnsupportedMedia(
                    "the file's content is not an accepted type "
                    "(JPEG, PNG, GIF, WEBP, BMP, TIFF, MP4, MOV, M4V, WebM or PDF)"
                )
            cap = caps.get(sniffed.kind)
            if cap is None:
                raise UnsupportedMedia(f"{sniffed.kind} uploads are not accepted here")

            pending = [head]
            pending_size = len(head)
            size = len(head)
            digest.update(head)
            if size > cap:
                raise MediaTooLarge(sniffed.kind, cap)
            while True:
                chunk = await part.read_chunk(CHUNK_SIZE)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise MediaTooLarge(sniffed.kind, cap)
                digest.update(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= _WRITE_BATCH:
                    # Disk writes in a thread: a slow disk must not stall every other request.
                    await asyncio.to_thread(out.writelines, pending)
                    pending, pending_size = [], 0
            if pending:
                await asyncio.to_thread(out.writelines, pending)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return ReceivedFile(
        path=path, size=size, sha256=digest.hexdigest(), sniffed=sniffed,
        filename=safe_filename(part.filename, sniffed.extension),
    )


__all__ = [
    "CorruptMedia",
    "MediaError",
    "MediaTooLarge",
    "ReceivedFile",
    "SniffResult",
    "UnsupportedMedia",
    "VideoInfo",
    "make_thumbnail",
    "probe_image",
    "probe_video",
    "receive_upload",
    "safe_filename",
    "sniff",
    "sniff_file",
    "thumbnail_mime_type",
]
