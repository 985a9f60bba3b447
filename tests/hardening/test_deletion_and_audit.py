"""Deleting a workspace deletes its media files (local disk and S3) and their signed URLs answer 404;
deleting a workspace and disconnecting an account are audited with the API key that did it."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.db.admin_tables import audit_logs
from ouipost.http.context import STORAGE
from ouipost.storage import create_storage
from tests.media_samples import jpeg_bytes
from tests.test_accounts import connect
from tests.test_storage import ACCESS_KEY, REGION, SECRET_KEY, make_sigv4_gateway, moto_endpoint  # noqa: F401


async def _upload_image(client: Any, key: Any) -> dict[str, Any]:
    resp = await client.post("/api/posts", json={"content": "with media", "platforms": ["facebook"]},
                             headers=key.headers())
    post_id = (await resp.json())["data"]["post"]["id"]
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(jpeg_bytes(800, 600)), filename="photo.jpg", content_type="image/jpeg")
    resp = await client.post(f"/api/posts/{post_id}/media", data=form, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["media"]


async def _audit(engine: AsyncEngine, action: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(audit_logs).where(audit_logs.c.action == action))
        return [dict(r) for r in rows.mappings()]


async def test_deleting_a_workspace_deletes_its_files_and_audits_the_key(
    client: Any, key: Any, engine: AsyncEngine, settings: Settings
) -> None:
    item = await _upload_image(client, key)
    urls = [urlsplit(item["url"]), urlsplit(item["thumbnail_url"])]
    for url in urls:
        assert (await client.get(f"{url.path}?{url.query}")).status == 200
    media_root = Path(settings.data_dir) / "media"
    assert any(p.is_file() for p in media_root.rglob("*") if ".meta" not in p.parts)

    resp = await client.delete(f"/api/workspaces/{key.workspace_id}", headers={"X-API-Key": key.secret})
    assert resp.status == 200
    for url in urls:
        gone = await client.get(f"{url.path}?{url.query}")
        assert gone.status == 404 and (await gone.json())["error"]["code"] == "NOT_FOUND"
    assert [p for p in media_root.rglob("*") if p.is_file()] == []
    [entry] = await _audit(engine, "workspace.deleted")
    assert (entry["resource_type"], entry["resource_id"]) == ("workspace", key.workspace_id)
    assert entry["details"]["api_key_id"] == key.id and entry["user_id"] is None


async def test_deleting_a_workspace_deletes_its_files_from_s3(
    aiohttp_client: Any, aiohttp_server: Any, settings: Settings, engine: AsyncEngine, key: Any, moto_endpoint: str,  # noqa: F811
) -> None:
    gateway = await aiohttp_server(make_sigv4_gateway(moto_endpoint))
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    storage = create_storage("s3", bucket=bucket, endpoint_url=str(gateway.make_url("")).rstrip("/"), region=REGION,
                             access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
    s3 = await storage._get_client()
    await s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    app = create_app(settings.with_overrides(workers=0), engine=engine)
    app[STORAGE] = storage
    client = await aiohttp_client(app)
    item = await _upload_image(client, key)
    stored = [obj["Key"] for obj in (await s3.list_objects_v2(Bucket=bucket))["Contents"]]
    assert sorted(k.rsplit("/", 1)[1] for k in stored) == ["original.jpg", "thumbnail"]
    assert all(item["id"] in k for k in stored)
    resp = await client.delete(f"/api/workspaces/{key.workspace_id}", headers={"X-API-Key": key.secret})
    assert resp.status == 200
    # Presigned URLs of missing objects answer 404 (tests/test_storage.py checks that S3 does so).
    assert [await storage.exists(k) for k in stored] == [False, False]
    assert (await s3.list_objects_v2(Bucket=bucket)).get("KeyCount", 0) == 0


@pytest.mark.usefixtures("sandbox_url")
async def test_disconnecting_an_account_is_audited_with_the_key_and_workspace(
    client: Any, key: Any, engine: AsyncEngine
) -> None:
    [account] = await connect(client, key, "bluesky")
    resp = await client.delete(f"/api/accounts/{account['id']}", headers=key.headers())
    assert resp.status == 200
    [entry] = await _audit(engine, "account.disconnected")
    assert entry["resource_id"] == account["id"]
    assert entry["details"]["api_key_id"] == key.id and entry["details"]["workspace_id"] == key.workspace_id
    listed = await client.get("/admin/audit?action=account.disconnected")
    assert listed.status == 401  # the log itself stays behind admin tokens
