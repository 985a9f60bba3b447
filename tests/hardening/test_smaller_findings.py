"""Issue 15's smaller findings: webhook targets behind IPv4-embedding IPv6 prefixes (NAT64) are
refused like the private addresses they reach; ids and Idempotency-Keys compare byte for byte on a
MariaDB database created with a case-insensitive collation; uploads are stored under the extension
of the type their bytes are."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.core.clock import Clock
from ouipost.db.engine import create_engine
from ouipost.db.migrations import upgrade
from ouipost.db.tables import idempotency_keys, media
from ouipost.identity import api_keys, users, workspaces
from ouipost.webhooks.service import is_allowed_address
from tests.conftest import DatabaseUnderTest, _exec_server, _mysql_server_url
from tests.media_samples import jpeg_bytes


@pytest.mark.parametrize("address", [
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254, the cloud metadata service
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::808:808",  # local-use NAT64 (RFC 8215): an operator's own translator
    "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
    "::7f00:1",  # IPv4-compatible 127.0.0.1
])
def test_ipv4_embedding_prefixes_are_checked_as_the_ipv4_they_reach(address: str) -> None:
    assert not is_allowed_address(address)


def test_nat64_of_a_public_ipv4_stays_allowed() -> None:
    assert is_allowed_address("64:ff9b::808:808") and is_allowed_address("2001:4860:4860::8888")


async def test_a_webhook_to_a_nat64_private_address_is_refused(client: Any, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await users.create_user(conn, email="a@example.com", password="correct horse battery", name="A",
                                role="admin", now=Clock().now())
    login = await client.post("/admin/login", json={"email": "a@example.com", "password": "correct horse battery"})
    token = (await login.json())["data"]["token"]
    resp = await client.post("/admin/webhooks", headers={"Authorization": f"Bearer {token}"},
                             json={"url": "https://[64:ff9b::a9fe:a9fe]/hook", "events": ["post.failed"]})
    assert resp.status == 422 and "url" in (await resp.json())["error"]["details"]


async def test_ids_and_idempotency_keys_compare_byte_for_byte_on_a_case_insensitive_database(
    test_database: DatabaseUnderTest,
) -> None:
    if not test_database.is_mysql:
        pytest.skip("SQLite compares bytes by nature; the migration is for MySQL/MariaDB")
    server_url, name = _mysql_server_url(test_database.url)
    name = f"{name}_ci"
    await _exec_server(server_url, f"DROP DATABASE IF EXISTS `{name}`")
    await _exec_server(server_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    engine = create_engine(make_url(test_database.url).set(database=name).render_as_string(hide_password=False))
    try:
        await upgrade(engine)
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            ws = await workspaces.create_workspace(conn, name="W", description=None, settings=None, now=now)
            key = await api_keys.create_key(conn, name="k", tier="starter", permissions=None,
                                            workspace_ids=[ws["id"]], now=now)
            for idem in ("order-abc", "ORDER-ABC", "order-àbc"):
                await conn.execute(idempotency_keys.insert().values(
                    api_key_id=key.record["id"], key=idem, fingerprint="f", created_at=now))
        async with engine.connect() as conn:
            assert await workspaces.get_workspace(conn, ws["id"].upper()) is None
            assert await workspaces.get_workspace(conn, ws["id"]) is not None
            found = await conn.scalar(sa.select(sa.func.count()).select_from(idempotency_keys).where(
                idempotency_keys.c.key == "order-abc"))
            assert found == 1
            loose = (await conn.execute(sa.text(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND collation_name IS NOT NULL AND collation_name <> 'utf8mb4_bin'"
            ))).all()
            assert loose == []
    finally:
        await engine.dispose()
        await _exec_server(server_url, f"DROP DATABASE IF EXISTS `{name}`")


async def test_an_upload_named_for_another_type_is_stored_under_its_own(
    client: Any, key: Any, engine: AsyncEngine
) -> None:
    resp = await client.post("/api/posts", json={"content": "x", "platforms": ["facebook"]}, headers=key.headers())
    post_id = (await resp.json())["data"]["post"]["id"]
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(jpeg_bytes()), filename="photo.png", content_type="image/png")
    resp = await client.post(f"/api/posts/{post_id}/media", data=form, headers=key.headers())
    assert resp.status == 201
    item = (await resp.json())["data"]["media"]
    assert item["mime_type"] == "image/jpeg" and item["filename"] == "photo.jpg"
    async with engine.connect() as conn:
        stored = await conn.scalar(sa.select(media.c.storage_key).where(media.c.id == item["id"]))
    assert stored.endswith("/original.jpg")
