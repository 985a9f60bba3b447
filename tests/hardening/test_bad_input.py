"""Bad input is a 4xx in the envelope, never a 500: deep JSON, lone surrogates, awkward upload
file names, multipart bodies without a boundary."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.db.tables import media
from tests.media_samples import png_bytes


async def _error(resp: Any) -> dict[str, Any]:
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["success"] is False
    return body["error"]


@pytest.mark.parametrize("depth", [40, 100_000])
async def test_deeply_nested_json_is_invalid_json(client: Any, key: Any, depth: int) -> None:
    body = '{"name": "deep", "settings": {"x": ' + "[" * depth + "]" * depth + "}}"
    resp = await client.post("/api/workspaces", data=body, headers=key.headers())
    assert resp.status == 400
    error = await _error(resp)
    assert error["code"] == "INVALID_JSON" and "nests deeper" in error["message"]


async def test_a_lone_surrogate_in_a_text_field_is_a_validation_error_naming_it(client: Any, key: Any) -> None:
    resp = await client.post("/api/workspaces", data='{"name": "bad \\ud800 name"}', headers=key.headers())
    assert resp.status == 422
    error = await _error(resp)
    assert error["code"] == "VALIDATION_ERROR" and list(error["details"]) == ["name"]
    post = await client.post(
        "/api/posts", headers=key.headers(),
        data='{"content": "ok", "platforms": ["twitter"], "platform_content": {"twitter": {"content": "\\udfff"}}}',
    )
    assert post.status == 422
    assert list((await _error(post))["details"]) == ["platform_content.twitter.content"]
    # A valid pair (an emoji written as two escapes) is text like any other.
    fine = await client.post("/api/workspaces", data='{"name": "ok \\ud83d\\ude00"}', headers=key.headers())
    assert fine.status == 201 and (await fine.json())["data"]["workspace"]["name"] == "ok \U0001f600"


async def _new_post(client: Any, key: Any) -> str:
    resp = await client.post("/api/posts", json={"content": "media", "platforms": ["facebook"]}, headers=key.headers())
    assert resp.status == 201
    return (await resp.json())["data"]["post"]["id"]


def _raw_file_form(filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body written by hand: client libraries refuse to send some of these names."""
    boundary = "hardening-boundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("filename", [
    "é" * 200 + ".png",  # 400 bytes of UTF-8: longer than any file name a disk takes
    "日本語のとても長いファイル名" * 12 + ".png",
])
async def test_awkward_upload_file_names_are_stored(
    client: Any, key: Any, engine: AsyncEngine, filename: str
) -> None:
    post_id = await _new_post(client, key)
    data = png_bytes()
    body, content_type = _raw_file_form(filename, data)
    resp = await client.post(
        f"/api/posts/{post_id}/media", data=body, headers={**key.headers(), "Content-Type": content_type}
    )
    assert resp.status == 201, await resp.text()
    item = (await resp.json())["data"]["media"]
    assert len(item["filename"].encode()) <= 255 and "\x00" not in item["filename"]
    assert item["filename"].endswith(".png")
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(media).where(media.c.id == item["id"]))).mappings().one()
    # The stored path is ours alone: no part of the client's name.
    assert row["storage_key"] == f"{row['workspace_id']}/{item['id']}/original.png"
    url = urlsplit(item["url"])
    fetched = await client.get(f"{url.path}?{url.query}")
    assert fetched.status == 200 and await fetched.read() == data


async def test_a_nul_in_a_multipart_file_name_is_a_bad_request(client: Any, key: Any) -> None:
    post_id = await _new_post(client, key)
    body, content_type = _raw_file_form("nul\x00in the name.png", png_bytes())
    resp = await client.post(
        f"/api/posts/{post_id}/media", data=body, headers={**key.headers(), "Content-Type": content_type}
    )
    assert resp.status == 400
    error = await _error(resp)
    assert error["code"] == "BAD_REQUEST" and "nul" not in error["message"]


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
async def test_multipart_without_a_boundary_is_a_client_error(client: Any, key: Any, content_type: str) -> None:
    post_id = await _new_post(client, key)
    resp = await client.post(
        f"/api/posts/{post_id}/media", data=b"--x\r\n\r\nhello\r\n--x--\r\n",
        headers={**key.headers(), "Content-Type": content_type},
    )
    assert resp.status in (400, 415)
    assert (await _error(resp))["code"] in ("BAD_REQUEST", "UNSUPPORTED_MEDIA_TYPE")


