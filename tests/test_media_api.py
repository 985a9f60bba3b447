"""Uploading media to posts: checked by content, capped per type, stored and served at signed URLs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.app import create_app
from ouipost.config import load_settings
from ouipost.db.tables import media, posts
from ouipost.http.context import STORAGE
from tests.conftest import make_env
from tests.media_samples import elf_bytes, jpeg_bytes, mp4_bytes, png_bytes


async def new_post(client: Any, key: Any, platforms: list[str] | None = None) -> dict:
    resp = await client.post("/api/posts", json={"content": "with media", "platforms": platforms or ["facebook"]},
                             headers=key.headers())
    assert resp.status == 201
    return (await resp.json())["data"]["post"]


def form(data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg", **fields: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    # A file object, as clients stream real files (aiohttp refuses very large in-memory bytes fields).
    body.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    for name, value in fields.items():
        body.add_field(name, value)
    return body


async def upload(client: Any, key: Any, post_id: str, body: aiohttp.FormData, headers: dict | None = None) -> Any:
    return await client.post(f"/api/posts/{post_id}/media", data=body, headers={**key.headers(), **(headers or {})})


def local_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_image_upload_has_dimensions_thumbnail_and_a_working_signed_url(client: Any, key: Any) -> None:
    post = await new_post(client, key)
    data = jpeg_bytes(1200, 800)
    resp = await upload(client, key, post["id"], form(data, alt_text="Product showcase image"))
    assert resp.status == 201, await resp.text()
    item = (await resp.json())["data"]["media"]
    assert item["id"].startswith("media_") and item["type"] == "image"
    assert (item["filename"], item["size"], item["mime_type"]) == ("photo.jpg", len(data), "image/jpeg")
    assert item["dimensions"] == {"width": 1200, "height": 800}
    assert item["alt_text"] == "Product showcase image"
    fetched = await client.get(local_path(item["url"]))
    assert fetched.status == 200 and await fetched.read() == data
    thumb = await client.get(local_path(item["thumbnail_url"]))
    assert thumb.status == 200 and (await thumb.read())[:2] == b"\xff\xd8"
    shown = await (await client.get(f"/api/posts/{post['id']}", headers=key.headers())).json()
    assert [m["id"] for m in shown["data"]["post"]["media"]] == [item["id"]]


async def test_tampered_and_expired_urls_are_403(client: Any, key: Any) -> None:
    post = await new_post(client, key)
    item = (await (await upload(client, key, post["id"], form(png_bytes(), "a.png", "image/png"))).json())["data"][
        "media"]
    url = local_path(item["url"])
    tampered = url.replace("signature=", "signature=0")
    assert (await client.get(tampered)).status == 403
    other_file = url.replace(item["id"], "media_01930000-0000-7000-8000-000000000000")
    assert (await client.get(other_file)).status == 403
    storage = client.server.app[STORAGE]
    key_path = urlsplit(item["url"]).path.removeprefix("/media/files/")
    expired = f"/media/files/{key_path}?expires=1000&signature={storage.sign(key_path, 1000)}"
    resp = await client.get(expired)
    assert resp.status == 403 and "expired" in (await resp.json())["error"]["message"]


async def test_video_upload_reads_duration_and_dimensions(client: Any, key: Any) -> None:
    post = await new_post(client, key, ["youtube"])
    resp = await upload(client, key, post["id"], form(mp4_bytes(duration=42.5, width=1920, height=1080),
                                                      "clip.mov", "application/octet-stream"))
    assert resp.status == 201, await resp.text()
    item = (await resp.json())["data"]["media"]
    assert item["type"] == "video" and item["mime_type"] == "video/mp4"
    assert item["duration"] == pytest.approx(42.5) and item["dimensions"] == {"width": 1920, "height": 1080}
    assert item["thumbnail_url"] is None


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (elf_bytes(), 415),  # an executable renamed .jpg
        (png_bytes()[:200], 415),  # a truncated PNG
        (b"", 415),  # zero bytes
        (b"just some text, not an image", 415),
    ],
)
async def test_bad_files_are_refused_and_nothing_is_kept(
    client: Any, key: Any, engine: Any, settings: Any, data: bytes, status: int
) -> None:
    post = await new_post(client, key)
    resp = await upload(client, key, post["id"], form(data, "photo.jpg", "image/jpeg"))
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(media)) == 0
    assert stored_files(Path(settings.data_dir) / "media") == []
    assert stored_files(Path(settings.data_dir) / "tmp") == []


async def test_file_over_the_cap_is_413_and_nothing_is_kept(
    aiohttp_client: Any, database_url: str, engine: Any, tmp_path: Path, make_key: Any
) -> None:
    settings = load_settings(make_env(database_url, tmp_path / "d", OUIPOST_MAX_IMAGE_MB="1"))
    client = await aiohttp_client(create_app(settings, engine=engine))
    key = await make_key()
    post = await new_post(client, key)
    big = jpeg_bytes(1000, 1000) + b"\x00" * (1 << 20)
    resp = await upload(client, key, post["id"], form(big))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert stored_files(tmp_path / "d" / "media") == [] and stored_files(tmp_path / "d" / "tmp") == []


async def test_declared_type_must_match_the_bytes(client: Any, key: Any) -> None:
    post = await new_post(client, key)
    resp = await upload(client, key, post["id"], form(jpeg_bytes(), type="video"))
    assert resp.status == 422
    assert "type" in (await resp.json())["error"]["details"]


@pytest.mark.parametrize(
    ("fields", "field"), [({"type": "hologram"}, "type"), ({"colour": "red"}, "colour"), ({"alt_text": "x" * 1001},
                                                                                           "alt_text")]
)
async def test_bad_form_fields_are_422(client: Any, key: Any, fields: dict, field: str) -> None:
    post = await new_post(client, key)
    resp = await upload(client, key, post["id"], form(jpeg_bytes(), **fields))
    assert resp.status == 422
    assert field in (await resp.json())["error"]["details"]


async def test_missing_file_and_wrong_content_type(client: Any, key: Any) -> None:
    post = await new_post(client, key)
    body = aiohttp.FormData(default_to_multipart=True)
    body.add_field("alt_text", "no file")
    missing = await upload(client, key, post["id"], body)
    assert missing.status == 422 and "file" in (await missing.json())["error"]["details"]
    as_json = await client.post(f"/api/posts/{post['id']}/media", json={"file": "x"}, headers=key.headers())
    assert as_json.status == 415


async def test_a_fifth_image_on_a_post_targeting_x_is_refused(client: Any, key: Any) -> None:
    post = await new_post(client, key, ["twitter", "facebook"])
    for _ in range(4):
        assert (await upload(client, key, post["id"], form(jpeg_bytes()))).status == 201
    resp = await upload(client, key, post["id"], form(jpeg_bytes()))
    assert resp.status == 422
    assert list((await resp.json())["error"]["details"]) == ["twitter"]


async def test_delete_media_then_its_url_is_404(client: Any, key: Any) -> None:
    post = await new_post(client, key)
    item = (await (await upload(client, key, post["id"], form(jpeg_bytes()))).json())["data"]["media"]
    resp = await client.delete(f"/api/media/{item['id']}", headers=key.headers())
    assert resp.status == 200
    assert (await resp.json())["data"] == {"message": "Media deleted successfully"}
    assert (await client.get(local_path(item["url"]))).status == 404
    assert (await client.delete(f"/api/media/{item['id']}", headers=key.headers())).status == 404


async def test_media_of_a_published_post_cannot_be_deleted_or_added(client: Any, key: Any, engine: Any) -> None:
    post = await new_post(client, key)
    item = (await (await upload(client, key, post["id"], form(jpeg_bytes()))).json())["data"]["media"]
    async with engine.begin() as conn:  # publishing arrives with the queue
        await conn.execute(posts.update().where(posts.c.id == post["id"]).values(status="published"))
    resp = await client.delete(f"/api/media/{item['id']}", headers=key.headers())
    assert resp.status == 409
    assert (await upload(client, key, post["id"], form(jpeg_bytes()))).status == 409
    assert (await client.get(local_path(item["url"]))).status == 200


async def test_other_workspaces_cannot_touch_media_or_upload(client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    post = await new_post(client, theirs)
    item = (await (await upload(client, theirs, post["id"], form(jpeg_bytes()))).json())["data"]["media"]
    assert (await upload(client, mine, post["id"], form(jpeg_bytes()))).status == 404
    assert (await client.delete(f"/api/media/{item['id']}", headers=mine.headers())).status == 404


async def test_deleting_a_post_removes_its_files(client: Any, key: Any, settings: Any) -> None:
    post = await new_post(client, key)
    await upload(client, key, post["id"], form(jpeg_bytes()))
    assert stored_files(Path(settings.data_dir) / "media")
    await client.delete(f"/api/posts/{post['id']}", headers=key.headers())
    assert [p for p in stored_files(Path(settings.data_dir) / "media") if not p.name.endswith(".meta")] == []


async def test_idempotent_upload_stores_once(client: Any, key: Any, engine: Any) -> None:
    post = await new_post(client, key)
    data = jpeg_bytes()
    first = await upload(client, key, post["id"], form(data), {"Idempotency-Key": "up-1"})
    second = await upload(client, key, post["id"], form(data), {"Idempotency-Key": "up-1"})
    assert first.status == second.status == 201
    assert (await first.json()) == (await second.json())
    other = await upload(client, key, post["id"], form(png_bytes(), "b.png", "image/png"), {"Idempotency-Key": "up-1"})
    assert other.status == 422
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(media)) == 1
