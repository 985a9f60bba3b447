"""X-API-Key and X-Workspace-ID handling, in the order DESIGN.md fixes."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from ouipost.api.auth import api_route
from ouipost.app import create_app
from ouipost.http.context import WORKSPACE_ID
from ouipost.http.web import ok
from ouipost.identity import api_keys


@pytest.fixture
async def scoped_client(aiohttp_client: Any, settings: Any, engine: Any, clock: Any) -> Any:
    """The app plus one workspace-scoped route guarded like every posts/accounts route will be."""

    @api_route("posts.read")
    async def scoped(request: web.Request) -> web.Response:
        return ok({"workspace_id": request[WORKSPACE_ID]})

    app = create_app(settings, engine=engine, clock=clock)
    app.router.add_get("/api/_scoped", scoped)
    return await aiohttp_client(app)


async def test_missing_key_is_401(client: Any) -> None:
    resp = await client.get("/api/platforms")
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert "X-RateLimit-Limit" not in resp.headers


@pytest.mark.parametrize("secret", ["nope", "pk_live_" + "a" * 32, "pk_live_"])
async def test_unknown_key_is_401(client: Any, secret: str) -> None:
    resp = await client.get("/api/platforms", headers={"X-API-Key": secret})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "UNAUTHORIZED"


async def test_revoked_key_is_401(client: Any, key: Any, engine: Any, clock: Any) -> None:
    assert (await client.get("/api/workspaces", headers=key.headers())).status == 200
    async with engine.begin() as conn:
        await api_keys.revoke_key(conn, key.id, clock.now())
    resp = await client.get("/api/workspaces", headers=key.headers())
    assert resp.status == 401


async def test_keys_are_stored_as_hashes_with_a_visible_prefix(engine: Any, key: Any) -> None:
    import sqlalchemy as sa

    from ouipost.db.tables import api_key_secrets
    from ouipost.db.tables import api_keys as keys_table

    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(keys_table).where(keys_table.c.id == key.id))).mappings().one()
        hashes = (await conn.execute(sa.select(api_key_secrets.c.secret_hash))).scalars().all()
    assert row["prefix"] == key.secret[:11] and row["prefix"].startswith("pk_live_")
    assert key.secret not in hashes and api_keys.hash_secret(key.secret) in hashes


async def test_scoped_route_without_workspace_header_is_400(scoped_client: Any, key: Any) -> None:
    resp = await scoped_client.get("/api/_scoped", headers={"X-API-Key": key.secret})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "WORKSPACE_REQUIRED"


async def test_scoped_route_with_reachable_workspace_passes(scoped_client: Any, key: Any) -> None:
    resp = await scoped_client.get("/api/_scoped", headers=key.headers())
    assert resp.status == 200
    assert (await resp.json())["data"]["workspace_id"] == key.workspace_id


async def test_another_keys_workspace_is_404_like_a_missing_one(scoped_client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    other = await scoped_client.get("/api/_scoped", headers=mine.headers(workspace=theirs.workspace_id))
    missing = await scoped_client.get(
        "/api/_scoped", headers=mine.headers(workspace="ws_01939c4e-0000-7000-8000-000000000000")
    )
    assert other.status == missing.status == 404
    assert (await other.json())["error"] == (await missing.json())["error"]


async def test_missing_permission_is_403(scoped_client: Any, make_key: Any) -> None:
    key = await make_key(permissions=["analytics.read"])
    resp = await scoped_client.get("/api/_scoped", headers=key.headers())
    assert resp.status == 403
    body = await resp.json()
    assert body["error"]["code"] == "FORBIDDEN"
    assert body["error"]["details"] == {"required": "posts.read"}


async def test_platforms_need_a_key_but_no_particular_permission(client: Any, make_key: Any) -> None:
    key = await make_key(permissions=["analytics.read"], workspace=None)
    assert (await client.get("/api/platforms", headers=key.headers())).status == 200


async def test_key_without_workspaces_reaches_only_those_it_creates(client: Any, make_key: Any) -> None:
    other = await make_key()
    key = await make_key(workspace=None)
    listed = await (await client.get("/api/workspaces", headers=key.headers())).json()
    assert listed["data"]["workspaces"] == []
    created = await (await client.post("/api/workspaces", json={"name": "Mine"}, headers=key.headers())).json()
    ws_id = created["data"]["workspace"]["id"]
    listed = await (await client.get("/api/workspaces", headers=key.headers())).json()
    assert [w["id"] for w in listed["data"]["workspaces"]] == [ws_id]
    assert (await client.get(f"/api/workspaces/{ws_id}", headers=key.headers())).status == 200
    assert (await client.get(f"/api/workspaces/{ws_id}", headers=other.headers())).status == 404
