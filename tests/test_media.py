"""Uploads are judged by their bytes: sniffing, image and video probing, thumbnails, streamed receiving."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from ouipost.posts.media import (
    CorruptMedia,
    MediaError,
    MediaTooLarge,
    UnsupportedMedia,
    make_thumbnail,
    probe_image,
    probe_video,
    receive_upload,
    safe_filename,
    sniff,
    thumbnail_mime_type,
)
from tests.media_samples import (
    bmp_bytes,
    elf_bytes,
    gif_bytes,
    jpeg_bytes,
    mp4_bytes,
    mp4_v1_bytes,
    png_bytes,
    rotated_jpeg_bytes,
    tiff_bytes,
    webm_bytes,
    webp_bytes,
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    payload = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(payload)) + b"ftyp" + payload + b"\x00" * 32


# ------------------------------------------------------------------------------------------------ sniff


@pytest.mark.parametrize(
    ("data", "kind", "mime"),
    [
        (jpeg_bytes(), "image", "image/jpeg"),
        (png_bytes(), "image", "image/png"),
        (gif_bytes(), "image", "image/gif"),
        (webp_bytes(), "image", "image/webp"),
        (bmp_bytes(), "image", "image/bmp"),
        (tiff_bytes(), "image", "image/tiff"),
        (mp4_bytes(), "video", "video/mp4"),
        (mp4_v1_bytes(), "video", "video/mp4"),
        (_ftyp(b"qt  ", b"qt  "), "video", "video/quicktime"),
        (_ftyp(b"M4V ", b"M4V ", b"mp42", b"isom"), "video", "video/x-m4v"),
        (_ftyp(b"XYZW", b"isom", b"avc1"), "video", "video/mp4"),
        (webm_bytes(), "video", "video/webm"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n" + b"x" * 64, "document", "application/pdf"),
    ],
    ids=["jpeg", "png", "gif", "webp", "bmp", "tiff", "mp4", "mp4-v1", "mov", "m4v", "mp4-compatible", "webm", "pdf"],
)
def test_accepted_types_are_recognised_by_their_bytes(data: bytes, kind: str, mime: str) -> None:
    result = sniff(data[:64])
    assert result is not None
    assert (result.kind, result.mime_type) == (kind, mime)


@pytest.mark.parametrize(
    "data",
    [
        elf_bytes(),
        b"MZ\x90\x00" + b"\x00" * 60,  # Windows executable
        b"<html><script>alert(1)</script></html>" + b" " * 30,
        b"PK\x03\x04" + b"\x00" * 60,  # zip
        _ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"),  # audio only
        _ftyp(b"heic", b"mif1", b"heic"),  # iPhone photo: no network takes HEIC
        bytes.fromhex("1a45dfa3") + b"\x9f\x42\x86\x81\x01\x42\x82\x88matroska" + b"\x00" * 40,  # MKV, not WebM
        b"BM" + b"\x00" * 62,  # "BM" without a bitmap header
        b"",
    ],
    ids=["elf", "exe", "html", "zip", "m4a", "heic", "mkv", "bm-text", "empty"],
)
def test_other_bytes_are_not_recognised(data: bytes) -> None:
    assert sniff(data[:64]) is None


# ------------------------------------------------------------------------------------------------ images


def test_image_dimensions_come_from_the_pixels(tmp_path: Path) -> None:
    assert probe_image(_write(tmp_path, "a.jpg", jpeg_bytes(640, 480))) == (640, 480)
    assert probe_image(_write(tmp_path, "b.png", png_bytes(320, 240))) == (320, 240)
    assert probe_image(_write(tmp_path, "c.webp", webp_bytes(200, 100))) == (200, 100)
    assert probe_image(_write(tmp_path, "d.gif", gif_bytes(120, 80))) == (120, 80)


def test_a_phone_photo_reports_its_displayed_orientation(tmp_path: Path) -> None:
    # Stored 640x480 with EXIF "rotate 90°": people see (and networks show) a 480x640 portrait.
    assert probe_image(_write(tmp_path, "p.jpg", rotated_jpeg_bytes(640, 480, orientation=6))) == (480, 640)


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    data = png_bytes(320, 240)
    with pytest.raises(CorruptMedia, match="truncated or damaged"):
        probe_image(_write(tmp_path, "cut.png", data[: len(data) // 2]))


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    from tests.media_samples import _pillow_bytes

    data = _pillow_bytes("JPEG", 800, 600, quality=95)
    with pytest.raises(CorruptMedia):
        probe_image(_write(tmp_path, "cut.jpg", data[: len(data) // 2]))


def test_png_with_a_damaged_chunk_is_refused(tmp_path: Path) -> None:
    data = bytearray(png_bytes(64, 64))
    idat = data.find(b"IDAT")
    data[idat + 10] ^= 0xFF  # flips compressed pixels: the chunk CRC no longer matches
    with pytest.raises(CorruptMedia):
        probe_image(_write(tmp_path, "bad.png", bytes(data)))


def test_an_executable_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(CorruptMedia):
        probe_image(_write(tmp_path, "photo.jpg", elf_bytes()))


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # 9,000 x 9,000 one-bit pixels: a few KB on disk, 81 megapixels once decoded.
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000), 0).save(bomb, "PNG")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(CorruptMedia, match=r"megapixels|too many pixels"):
        probe_image(bomb)
    with pytest.raises(CorruptMedia):
        make_thumbnail(bomb, tmp_path / "thumb")


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    with pytest.raises(CorruptMedia, match="640x480"):
        probe_image(_write(tmp_path, "a.jpg", jpeg_bytes(640, 480)), max_pixels=100_000)


def test_photo_thumbnail_is_a_small_jpeg(tmp_path: Path) -> None:
    source = _write(tmp_path, "photo.jpg", jpeg_bytes(1280, 960))
    dest = tmp_path / "thumb"
    assert make_thumbnail(source, dest) == (320, 240)
    assert thumbnail_mime_type(source) == "image/jpeg"
    with Image.open(dest) as thumb:
        assert (thumb.format, thumb.size) == ("JPEG", (320, 240))


def test_transparent_image_thumbnail_keeps_alpha_as_png(tmp_path: Path) -> None:
    source = _write(tmp_path, "logo.png", png_bytes(400, 800))
    dest = tmp_path / "thumb"
    assert make_thumbnail(source, dest, max_side=200) == (100, 200)
    assert thumbnail_mime_type(source) == "image/png"
    with Image.open(dest) as thumb:
        assert thumb.format == "PNG" and thumb.mode == "RGBA"


def test_thumbnail_follows_exif_rotation_and_never_enlarges(tmp_path: Path) -> None:
    rotated = _write(tmp_path, "r.jpg", rotated_jpeg_bytes(640, 480, orientation=6))
    assert make_thumbnail(rotated, tmp_path / "t1") == (240, 320)
    small = _write(tmp_path, "s.gif", gif_bytes(120, 80))
    assert make_thumbnail(small, tmp_path / "t2") == (120, 80)


def test_thumbnail_of_a_truncated_image_is_refused(tmp_path: Path) -> None:
    data = jpeg_bytes(800, 600)
    with pytest.raises(CorruptMedia):
        make_thumbnail(_write(tmp_path, "cut.jpg", data[:200]), tmp_path / "thumb")


# ------------------------------------------------------------------------------------------------ videos


def test_mp4_duration_and_dimensions(tmp_path: Path) -> None:
    info = probe_video(_write(tmp_path, "v.mp4", mp4_bytes(duration=12.5, width=1280, height=720)))
    assert (info.duration, info.width, info.height) == (12.5, 1280, 720)


def test_long_recording_with_64_bit_headers_and_moov_at_the_end(tmp_path: Path) -> None:
    info = probe_video(_write(tmp_path, "v.mp4", mp4_v1_bytes(duration=3600.5, width=1920, height=1080)))
    # The audio track comes first; the size is the video track's.
    assert (info.duration, info.width, info.height) == (3600.5, 1920, 1080)


def test_webm_duration_and_dimensions(tmp_path: Path) -> None:
    info = probe_video(_write(tmp_path, "v.webm", webm_bytes(duration=7.25, width=640, height=360)))
    assert (info.duration, info.width, info.height) == (7.25, 640, 360)


def test_probing_a_huge_video_reads_only_headers(tmp_path: Path) -> None:
    # A 4 GB mdat (sparse on disk, 64-bit box size) before the moov: probing must seek over it.
    sample = mp4_bytes(duration=42.0, width=720, height=1280, mdat_size=0)
    ftyp_end = struct.unpack(">I", sample[:4])[0]
    moov_size = struct.unpack(">I", sample[ftyp_end : ftyp_end + 4])[0]
    ftyp, moov = sample[:ftyp_end], sample[ftyp_end : ftyp_end + moov_size]
    mdat_payload = 4 * 1024**3
    path = tmp_path / "huge.mp4"
    with open(path, "wb") as f:
        f.write(ftyp + struct.pack(">I4sQ", 1, b"mdat", 16 + mdat_payload))
        f.seek(mdat_payload, 1)
        f.write(moov)
    info = probe_video(path)
    assert (info.duration, info.width, info.height) == (42.0, 720, 1280)


def test_video_without_moov_is_refused(tmp_path: Path) -> None:
    data = mp4_bytes()
    ftyp_end = struct.unpack(">I", data[:4])[0]
    no_moov = data[:ftyp_end] + struct.pack(">I4s", 8 + 100, b"mdat") + b"\x00" * 100
    with pytest.raises(CorruptMedia, match="moov"):
        probe_video(_write(tmp_path, "v.mp4", no_moov))


def test_video_with_zero_duration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorruptMedia, match="zero duration"):
        probe_video(_write(tmp_path, "v.mp4", mp4_bytes(duration=0)))


def test_video_cut_inside_its_metadata_is_refused(tmp_path: Path) -> None:
    data = mp4_v1_bytes()
    with pytest.raises(CorruptMedia):
        probe_video(_write(tmp_path, "v.mp4", data[: len(data) - 40]))


def test_an_image_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia):
        probe_video(_write(tmp_path, "v.mp4", jpeg_bytes()))


# ------------------------------------------------------------------------------------------------ upload

CAPS = {"image": 200_000, "video": 1_000_000, "document": 100_000}


@pytest.fixture
async def upload_url(aiohttp_server: Any, tmp_path: Path) -> str:
    """A tiny app whose POST /upload runs receive_upload on the 'file' part, as the media API will."""

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        async for part in reader:
            if part.name == "file":
                try:
                    received = await receive_upload(part, tmp_path / "incoming", CAPS)  # type: ignore[arg-type]
                except MediaError as exc:
                    return web.json_response({"code": exc.code, "message": str(exc)}, status=exc.status)
                return web.json_response({
                    "path": str(received.path), "size": received.size, "sha256": received.sha256,
                    "kind": received.sniffed.kind, "mime_type": received.sniffed.mime_type,
                    "filename": received.filename,
                })
        return web.json_response({"code": "NO_FILE"}, status=400)

    app = web.Application()
    app.router.add_post("/upload", upload)
    server = await aiohttp_server(app)
    return str(server.make_url("/upload"))


async def _post(url: str, data: bytes, filename: str, content_type: str) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("alt_text", "a description")
    form.add_field("file", data, filename=filename, content_type=content_type)
    async with aiohttp.ClientSession() as http, http.post(url, data=form) as answer:
        return answer.status, await answer.json()


def _leftovers(tmp_path: Path) -> list[Path]:
    incoming = tmp_path / "incoming"
    return list(incoming.iterdir()) if incoming.exists() else []


async def test_upload_is_stored_with_size_hash_and_sniffed_type(upload_url: str, tmp_path: Path) -> None:
    data = jpeg_bytes(800, 600)
    status, body = await _post(upload_url, data, "../../holiday photo.JPG", "application/octet-stream")
    assert status == 200
    assert (body["kind"], body["mime_type"], body["size"]) == ("image", "image/jpeg", len(data))
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["filename"] == "holiday photo.JPG"
    assert Path(body["path"]).read_bytes() == data
    assert Path(body["path"]).parent == tmp_path / "incoming"


async def test_declared_type_is_ignored(upload_url: str) -> None:
    status, body = await _post(upload_url, png_bytes(), "clip.mp4", "video/mp4")
    assert status == 200
    assert (body["kind"], body["mime_type"]) == ("image", "image/png")


async def test_executable_renamed_jpg_is_refused(upload_url: str, tmp_path: Path) -> None:
    status, body = await _post(upload_url, elf_bytes(), "cat.jpg", "image/jpeg")
    assert status == 415
    assert body["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert _leftovers(tmp_path) == []


async def test_empty_file_is_refused(upload_url: str, tmp_path: Path) -> None:
    status, body = await _post(upload_url, b"", "empty.png", "image/png")
    assert status == 415
    assert "empty" in body["message"]
    assert _leftovers(tmp_path) == []


async def test_image_over_its_cap_is_refused_and_nothing_is_left(upload_url: str, tmp_path: Path) -> None:
    big = png_bytes(32, 32) + b"\x00" * 300_000  # a PNG head, then more bytes than the image cap
    status, body = await _post(upload_url, big, "big.png", "image/png")
    assert status == 413
    assert body["code"] == "PAYLOAD_TOO_LARGE"
    assert "195.3 KB" in body["message"]
    assert _leftovers(tmp_path) == []


async def test_video_cap_is_separate_from_the_image_cap(upload_url: str) -> None:
    video = mp4_bytes(mdat_size=500_000)  # over the image cap, under the video cap
    status, body = await _post(upload_url, video, "clip.mp4", "video/mp4")
    assert status == 200
    assert body["mime_type"] == "video/mp4"


async def test_kind_without_a_cap_is_not_accepted(tmp_path: Path, aiohttp_server: Any) -> None:
    async def upload(request: web.Request) -> web.Response:
        part = await (await request.multipart()).next()
        try:
            await receive_upload(part, tmp_path, {"image": 1000})  # type: ignore[arg-type]
        except UnsupportedMedia as exc:
            return web.Response(status=415, text=str(exc))
        return web.Response(text="stored")

    app = web.Application()
    app.router.add_post("/", upload)
    server = await aiohttp_server(app)
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.4\n" + b"x" * 100, filename="doc.pdf")
    async with aiohttp.ClientSession() as http, http.post(server.make_url("/"), data=form) as answer:
        assert answer.status == 415
        assert "document uploads are not accepted" in await answer.text()
    assert list(tmp_path.glob("upload-*")) == []


def test_media_too_large_says_the_limit() -> None:
    assert str(MediaTooLarge("video", 1024 * 1024 * 1024)) == "video uploads are limited to 1 GB"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("bad\x00name\n.jpg", "bad_name_.jpg"),
        ("photo.png", "photo.jpg"),  # the bytes are a JPEG: the name follows them
        ("scan.JPEG", "scan.JPEG"),
        ("v1.2", "v1.jpg"),
        ("", "upload.jpg"),
        (None, "upload.jpg"),
        ("...", "upload.jpg"),
    ],
)
def test_display_filenames_are_made_safe(given: str | None, expected: str) -> None:
    assert safe_filename(given, "jpg") == expected
