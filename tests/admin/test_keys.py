"""/admin/keys: creation, listing with usage, changes, deletion, rotation with its 24 h grace."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.db.tables import api_keys as keys_table
from ouipost.identity import api_keys

NEW_KEY = {"name": "Integration", "tier": "professional", "permissions": ["posts.read", "analytics.read"]}


async def _keys_snapshot(engine: Any) -> list[Any]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.select(keys_table).order_by(keys_table.c.id))).all()]


async def test_create_key_shows_the_secret_once(client: Any, admin: Any, make_key: Any) -> None:
    existing = await make_key()  # for its workspace
    resp = await client.post("/admin/keys", json={**NEW_KEY, "workspaces": [existing.workspace_id]},
                             headers=admin.headers)
    assert resp.status == 201
    key = (await resp.json())["data"]["key"]
    assert key["id"].startswith("key_") and key["api_key"].startswith(key["prefix"])
    assert key["tier"] == "professional" and key["permissions"] == ["analytics.read", "posts.read"]
    assert key["workspaces"] == [existing.workspace_id] and key["is_active"] is True
    assert key["usage"] == {"requests_today": 0, "requests_this_month": 0}
    listed = await client.get("/admin/keys", headers=admin.headers)
    text = await listed.text()
    assert key["api_key"] not in text and key["prefix"] in text
    # The new key works on /api.
    resp = await client.get("/api/workspaces", headers={"X-API-Key": key["api_key"]})
    assert resp.status == 403  # it lacks workspaces.read, but it authenticated


async def test_a_key_without_permissions_gets_all_and_starter_tier(client: Any, admin: Any) -> None:
    resp = await client.post("/admin/keys", json={"name": "All"}, headers=admin.headers)
    key = (await resp.json())["data"]["key"]
    assert key["tier"] == "starter" and set(key["permissions"]) == set(api_keys.PERMISSIONS)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NEW_KEY, "tier": "platinum"}, "tier"),
        ({**NEW_KEY, "permissions": ["posts.read", "posts.delete"]}, "permissions"),
        ({**NEW_KEY, "workspaces": ["ws_missing"]}, "workspaces"),
        ({**NEW_KEY, "name": ""}, "name"),
        ({"tier": "starter"}, "name"),
        ({**NEW_KEY, "secret": "x"}, "secret"),
    ],
)
async def test_bad_key_input_is_422_and_creates_nothing(
    client: Any, admin: Any, engine: Any, body: dict[str, Any], field: str
) -> None:
    before = await _keys_snapshot(engine)
    resp = await client.post("/admin/keys", json=body, headers=admin.headers)
    assert resp.status == 422
    assert field in (await resp.json())["error"]["details"]
    assert await _keys_snapshot(engine) == before


async def test_update_key(client: Any, admin: Any, make_key: Any) -> None:
    key = await make_key()
    resp = await client.put(
        f"/admin/keys/{key.id}",
        json={"name": "Renamed", "tier": "enterprise", "permissions": ["posts.read"], "workspaces": []},
        headers=admin.headers,
    )
    assert resp.status == 200
    data = (await resp.json())["data"]["key"]
    assert (data["name"], data["tier"], data["permissions"], data["workspaces"]) == (
        "Renamed", "enterprise", ["posts.read"], []
    )
    resp = await client.put(f"/admin/keys/{key.id}", json={"is_active": False}, headers=admin.headers)
    assert (await resp.json())["data"]["key"]["is_active"] is False
    assert (await client.get("/api/platforms", headers=key.headers())).status == 401
    await client.put(f"/admin/keys/{key.id}", json={"is_active": True}, headers=admin.headers)
    assert (await client.get("/api/platforms", headers=key.headers())).status == 200


@pytest.mark.parametrize("body", [{}, {"tier": "gold"}, {"permissions": ["nope"]}, {"is_active": 1},
                                  {"workspaces": ["ws_missing"]}])
async def test_bad_key_updates_are_422_and_change_nothing(client: Any, admin: Any, make_key: Any, engine: Any,
                                                          body: dict[str, Any]) -> None:
    key = await make_key()
    before = await _keys_snapshot(engine)
    resp = await client.put(f"/admin/keys/{key.id}", json=body, headers=admin.headers)
    assert resp.status == 422
    assert await _keys_snapshot(engine) == before


async def test_delete_key_revokes_it_at_once(client: Any, admin: Any, make_key: Any) -> None:
    key = await make_key()
    assert (await client.get("/api/platforms", headers=key.headers())).status == 200
    resp = await client.delete(f"/admin/keys/{key.id}", headers=admin.headers)
    assert resp.status == 200
    assert (await client.get("/api/platforms", headers=key.headers())).status == 401
    assert (await client.delete(f"/admin/keys/{key.id}", headers=admin.headers)).status == 404


async def test_rotation_keeps_the_old_key_for_24_hours(
    frozen_client: Any, make_user: Any, make_key: Any, frozen_clock: Any
) -> None:
    from tests.admin.conftest import login

    user = await make_user()
    headers = {"Authorization": f"Bearer {await login(frozen_client, user['email'])}"}
    key = await make_key()
    resp = await frozen_client.post(f"/admin/keys/{key.id}/rotate", headers=headers)
    assert resp.status == 200
    rotated = (await resp.json())["data"]["key"]
    assert rotated["id"] == key.id and rotated["new_api_key"].startswith("pk_live_")
    expected = (frozen_clock.now().replace(microsecond=0)).timestamp() + 24 * 3600
    from datetime import datetime

    assert datetime.fromisoformat(rotated["old_key_expires_at"]).timestamp() == pytest.approx(expected, abs=1)
    new_headers = {"X-API-Key": rotated["new_api_key"]}
    assert (await frozen_client.get("/api/platforms", headers=key.headers())).status == 200
    assert (await frozen_client.get("/api/platforms", headers=new_headers)).status == 200
    frozen_clock.advance(hours=23, minutes=59)
    assert (await frozen_client.get("/api/platforms", headers=key.headers())).status == 200
    frozen_clock.advance(minutes=2)
    resp = await frozen_client.get("/api/platforms", headers=key.headers())
    assert resp.status == 401
    assert (await frozen_client.get("/api/platforms", headers=new_headers)).status == 200


async def test_rotating_twice_does_not_extend_the_first_secret(
    frozen_client: Any, make_user: Any, make_key: Any, frozen_clock: Any
) -> None:
    from tests.admin.conftest import login

    user = await make_user()
    headers = {"Authorization": f"Bearer {await login(frozen_client, user['email'])}"}
    key = await make_key()
    await frozen_client.post(f"/admin/keys/{key.id}/rotate", headers=headers)
    frozen_clock.advance(hours=12)
    second = (await (await frozen_client.post(f"/admin/keys/{key.id}/rotate", headers=headers)).json())["data"]
    frozen_clock.advance(hours=12, seconds=1)
    assert (await frozen_client.get("/api/platforms", headers=key.headers())).status == 401
    newest = {"X-API-Key": second["key"]["new_api_key"]}
    assert (await frozen_client.get("/api/platforms", headers=newest)).status == 200


async def test_usage_counts_requests_today_and_this_month(client: Any, admin: Any, make_key: Any) -> None:
    key = await make_key()
    for _ in range(3):
        assert (await client.get("/api/platforms", headers=key.headers())).status == 200
    listed = (await (await client.get("/admin/keys", headers=admin.headers)).json())["data"]["keys"]
    entry = next(k for k in listed if k["id"] == key.id)
    assert entry["usage"] == {"requests_today": 3, "requests_this_month": 3}
    assert entry["last_used_at"] is not None
