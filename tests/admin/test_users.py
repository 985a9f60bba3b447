"""/admin/users: listing, creation, changes, deletion, the last-admin rule, bad input."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.db.tables import users as users_table
from ouipost.db.tables import workspace_members
from ouipost.identity import workspaces
from tests.admin.conftest import PASSWORD, login

NEW_USER = {"email": "New.User@Example.com", "name": "New User", "password": "long enough password",
            "role": "editor"}


async def _snapshot(engine: Any) -> list[Any]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.select(users_table).order_by(users_table.c.id))).all()]


async def _workspace(engine: Any, clock: Any) -> str:
    async with engine.begin() as conn:
        return (await workspaces.create_workspace(conn, name="W", description=None, settings=None,
                                                  now=clock.now()))["id"]


async def test_create_user_answers_201_with_the_user_and_role_defaults(client: Any, admin: Any) -> None:
    resp = await client.post("/admin/users", json=NEW_USER, headers=admin.headers)
    assert resp.status == 201
    user = (await resp.json())["data"]["user"]
    assert user["id"].startswith("user_") and user["email"] == "new.user@example.com"
    assert user["role"] == "editor" and user["is_active"] is True
    assert user["permissions"] == ["posts.manage", "analytics.view"]
    assert user["workspaces"] == [] and user["last_login"] is None
    assert "password" not in user and "password_hash" not in user
    assert (await client.post("/admin/login", json={"email": NEW_USER["email"],
                                                    "password": NEW_USER["password"]})).status == 200


async def test_create_user_with_permissions_and_workspaces(client: Any, admin: Any, engine: Any, clock: Any) -> None:
    ws = await _workspace(engine, clock)
    body = {**NEW_USER, "role": "viewer", "permissions": ["analytics.view", "audit.view"], "workspaces": [ws]}
    resp = await client.post("/admin/users", json=body, headers=admin.headers)
    assert resp.status == 201
    user = (await resp.json())["data"]["user"]
    assert user["permissions"] == ["analytics.view", "audit.view"] and user["workspaces"] == [ws]
    token = await login(client, NEW_USER["email"], NEW_USER["password"])
    assert (await client.get("/admin/audit", headers={"Authorization": f"Bearer {token}"})).status == 200
    async with engine.connect() as conn:
        members = (await conn.execute(sa.select(workspace_members.c.user_id))).scalars().all()
    assert members == [user["id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 11}, "password"),
        ({"role": "superuser"}, "role"),
        ({"permissions": ["users.manage", "root"]}, "permissions"),
        ({"permissions": "users.manage"}, "permissions"),
        ({"name": ""}, "name"),
        ({"workspaces": ["ws_missing"]}, "workspaces"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
        ({"role": "admin", "permissions": ["analytics.view"]}, "permissions"),
    ],
)
async def test_bad_user_input_is_422_and_creates_nothing(
    client: Any, admin: Any, engine: Any, change: dict[str, Any], field: str
) -> None:
    before = await _snapshot(engine)
    resp = await client.post("/admin/users", json={**NEW_USER, **change}, headers=admin.headers)
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == "VALIDATION_ERROR" and field in body["error"]["details"]
    assert await _snapshot(engine) == before


async def test_a_taken_email_is_409(client: Any, admin: Any) -> None:
    resp = await client.post("/admin/users", json={**NEW_USER, "email": admin.email.upper()}, headers=admin.headers)
    assert resp.status == 409


async def test_list_users_paginates(client: Any, admin: Any, make_user: Any) -> None:
    for _ in range(3):
        await make_user("viewer")
    resp = await client.get("/admin/users?limit=2&page=2", headers=admin.headers)
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert len(data["users"]) == 2
    assert data["pagination"] == {"current_page": 2, "total_pages": 2, "total_items": 4, "per_page": 2}
    viewers = await client.get("/admin/users?role=viewer", headers=admin.headers)
    assert {u["role"] for u in (await viewers.json())["data"]["users"]} == {"viewer"}
    assert (await client.get("/admin/users?limit=101", headers=admin.headers)).status == 422
    assert (await client.get("/admin/users?sort=name", headers=admin.headers)).status == 422


async def test_update_user(client: Any, admin: Any, make_user: Any, engine: Any, clock: Any) -> None:
    user = await make_user("viewer")
    ws = await _workspace(engine, clock)
    resp = await client.put(
        f"/admin/users/{user['id']}", json={"name": "Renamed", "role": "editor", "workspaces": [ws]},
        headers=admin.headers,
    )
    assert resp.status == 200
    data = (await resp.json())["data"]["user"]
    assert data["name"] == "Renamed" and data["role"] == "editor"
    assert data["permissions"] == ["posts.manage", "analytics.view"] and data["workspaces"] == [ws]


@pytest.mark.parametrize("body", [{}, {"is_active": "no"}, {"role": "owner"}, {"email": "bad"}, {"password": "short"}])
async def test_bad_updates_are_422_and_change_nothing(client: Any, admin: Any, make_user: Any, engine: Any,
                                                      body: dict[str, Any]) -> None:
    user = await make_user("viewer")
    before = await _snapshot(engine)
    resp = await client.put(f"/admin/users/{user['id']}", json=body, headers=admin.headers)
    assert resp.status == 422
    assert await _snapshot(engine) == before


async def test_unknown_user_is_404(client: Any, admin: Any) -> None:
    assert (await client.put("/admin/users/user_nope", json={"name": "x"}, headers=admin.headers)).status == 404
    assert (await client.delete("/admin/users/user_nope", headers=admin.headers)).status == 404


async def test_the_last_active_admin_cannot_be_deleted_demoted_or_deactivated(
    client: Any, admin: Any, engine: Any
) -> None:
    before = await _snapshot(engine)
    for method, body in (("delete", None), ("put", {"role": "editor"}), ("put", {"is_active": False})):
        resp = await client.request(method, f"/admin/users/{admin.user_id}", json=body, headers=admin.headers)
        assert resp.status == 409, (method, body)
        assert (await resp.json())["error"]["code"] == "CONFLICT"
    assert await _snapshot(engine) == before
    assert (await client.get("/admin/profile", headers=admin.headers)).status == 200


async def test_an_admin_can_be_removed_while_another_active_admin_remains(
    client: Any, admin: Any, make_user: Any
) -> None:
    inactive = await make_user("admin", is_active=False)
    other = await make_user("admin")
    assert (await client.delete(f"/admin/users/{inactive['id']}", headers=admin.headers)).status == 200
    assert (await client.put(f"/admin/users/{other['id']}", json={"role": "viewer"},
                             headers=admin.headers)).status == 200
    # Now `admin` is the last one again.
    assert (await client.delete(f"/admin/users/{admin.user_id}", headers=admin.headers)).status == 409


async def test_delete_user(client: Any, admin: Any, make_user: Any) -> None:
    user = await make_user("editor")
    resp = await client.delete(f"/admin/users/{user['id']}", headers=admin.headers)
    assert resp.status == 200
    assert (await resp.json())["data"] == {"message": "User deleted successfully"}
    assert (await client.post("/admin/login", json={"email": user["email"], "password": PASSWORD})).status == 401
