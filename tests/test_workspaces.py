"""The five workspace endpoints of the reference, their validation and their tenant boundary."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.db.tables import api_key_workspaces, posts, social_accounts, workspace_members, workspaces
from ouipost.identity.users import create_user


async def create(client: Any, key: Any, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/workspaces", json=body, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["workspace"]


async def test_create_answers_201_with_the_workspace(client: Any, key: Any) -> None:
    ws = await create(
        client, key, name="Marketing Team", description="Campaigns",
        settings={"timezone": "Europe/Paris", "default_hashtags": ["marketing", "#brand"]},
    )
    assert ws["id"].startswith("ws_") and len(ws["id"]) == 39
    assert ws["name"] == "Marketing Team" and ws["description"] == "Campaigns"
    assert ws["settings"] == {"timezone": "Europe/Paris", "default_hashtags": ["#marketing", "#brand"],
                              "approval_required": False}
    assert ws["created_at"].endswith("Z")


async def test_settings_default_to_utc_and_no_hashtags(client: Any, key: Any) -> None:
    ws = await create(client, key, name="Plain")
    assert ws["settings"] == {"timezone": "UTC", "default_hashtags": [], "approval_required": False}
    assert ws["description"] is None


async def test_list_paginates_in_creation_order(client: Any, make_key: Any) -> None:
    key = await make_key(workspace=None)
    names = [f"ws {i}" for i in range(5)]
    for name in names:
        await create(client, key, name=name)
    page = await (await client.get("/api/workspaces?limit=2&page=2", headers=key.headers())).json()
    assert [w["name"] for w in page["data"]["workspaces"]] == names[2:4]
    assert page["data"]["pagination"] == {"current_page": 2, "total_pages": 3, "total_items": 5, "per_page": 2}
    item = page["data"]["workspaces"][0]
    assert {"accounts_count", "posts_count", "members_count", "updated_at"} <= set(item)


async def test_page_beyond_the_end_is_an_empty_list(client: Any, key: Any) -> None:
    resp = await client.get("/api/workspaces?page=9", headers=key.headers())
    assert resp.status == 200
    body = await resp.json()
    assert body["data"]["workspaces"] == []
    assert body["data"]["pagination"]["total_items"] == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=-1", "limit=abc", "page=0", "page=x", "sort=name"])
async def test_bad_pagination_is_422(client: Any, key: Any, query: str) -> None:
    resp = await client.get(f"/api/workspaces?{query}", headers=key.headers())
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert query.split("=")[0] in body["error"]["details"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 42}, "name"),
        ({"name": "ok", "description": ["no"]}, "description"),
        ({"name": "ok", "settings": "UTC"}, "settings"),
        ({"name": "ok", "settings": {"timezone": "Mars/Olympus"}}, "settings"),
        ({"name": "ok", "settings": {"timezone": "../../etc/passwd"}}, "settings"),
        ({"name": "ok", "settings": {"colour": "red"}}, "settings"),
        ({"name": "ok", "settings": {"default_hashtags": ["two words"]}}, "settings"),
        ({"name": "ok", "owner": "me"}, "owner"),
    ],
)
async def test_invalid_create_is_422_and_creates_nothing(client: Any, key: Any, body: dict, field: str) -> None:
    resp = await client.post("/api/workspaces", json=body, headers=key.headers())
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    listed = await (await client.get("/api/workspaces", headers=key.headers())).json()
    assert listed["data"]["pagination"]["total_items"] == 1


async def test_unknown_field_is_named_in_the_message(client: Any, key: Any) -> None:
    resp = await client.post("/api/workspaces", json={"name": "ok", "owner": "me"}, headers=key.headers())
    assert "owner" in (await resp.json())["error"]["message"]


async def test_a_name_of_100_characters_is_accepted(client: Any, key: Any) -> None:
    ws = await create(client, key, name="x" * 100)
    assert len(ws["name"]) == 100


async def test_get_shows_settings_accounts_and_stats(client: Any, key: Any, engine: Any, clock: Any) -> None:
    ws = await create(client, key, name="Stats")
    now = clock.now()
    async with engine.begin() as conn:
        # Posts and accounts arrive with their own endpoints; rows stand in for them here.
        for i, status in enumerate(["draft", "scheduled", "published", "published"]):
            await conn.execute(posts.insert().values(
                id=f"post_0193{i:04d}-0000-7000-8000-000000000000", workspace_id=ws["id"], status=status,
                content="hi", hashtags=[], platforms=["twitter"], platform_content={}, created_at=now, updated_at=now,
            ))
        await conn.execute(social_accounts.insert().values(
            id="acc_01930000-0000-7000-8000-000000000000", workspace_id=ws["id"], platform="facebook",
            remote_id="1", type="page", name="Company Page", status="active", is_default=True, settings={},
            metadata={}, permissions=[], stats={}, connected_at=now, updated_at=now,
        ))
        user = await create_user(conn, email="m@example.com", password="p" * 12, name="M", role="editor", now=now)
        await conn.execute(workspace_members.insert().values(workspace_id=ws["id"], user_id=user["id"], created_at=now))
    body = await (await client.get(f"/api/workspaces/{ws['id']}", headers=key.headers())).json()
    got = body["data"]["workspace"]
    assert got["stats"] == {"total_posts": 4, "scheduled_posts": 1, "published_posts": 2}
    assert [(a["platform"], a["name"]) for a in got["accounts"]] == [("facebook", "Company Page")]
    assert (got["accounts_count"], got["posts_count"], got["members_count"]) == (1, 4, 1)


async def test_update_merges_settings_and_bumps_updated_at(client: Any, key: Any, frozen_clock: Any) -> None:
    ws = await create(client, key, name="Old", settings={"timezone": "Europe/Paris", "default_hashtags": ["#a"]})
    resp = await client.put(
        f"/api/workspaces/{ws['id']}",
        json={"name": "Marketing Team - 2024", "settings": {"timezone": "Europe/London"}},
        headers=key.headers(),
    )
    assert resp.status == 200
    updated = (await resp.json())["data"]["workspace"]
    assert updated["name"] == "Marketing Team - 2024"
    assert updated["settings"] == {"timezone": "Europe/London", "default_hashtags": ["#a"], "approval_required": False}
    assert updated["updated_at"] >= ws["updated_at"]
    again = await (await client.get(f"/api/workspaces/{ws['id']}", headers=key.headers())).json()
    assert again["data"]["workspace"]["settings"]["timezone"] == "Europe/London"


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": None}, {"settings": {"timezone": "Nowhere/City"}}, {"extra": 1}]
)
async def test_invalid_update_changes_nothing(client: Any, key: Any, body: dict) -> None:
    ws = await create(client, key, name="Keep", settings={"timezone": "Europe/Paris"})
    resp = await client.put(f"/api/workspaces/{ws['id']}", json=body, headers=key.headers())
    assert resp.status == 422
    again = (await (await client.get(f"/api/workspaces/{ws['id']}", headers=key.headers())).json())["data"]
    assert again["workspace"]["name"] == "Keep"
    assert again["workspace"]["settings"]["timezone"] == "Europe/Paris"


async def test_delete_removes_everything_the_workspace_owns(client: Any, key: Any, engine: Any, clock: Any) -> None:
    doomed = await create(client, key, name="Doomed")
    kept = await create(client, key, name="Kept")
    now = clock.now()
    async with engine.begin() as conn:
        for ws_id, suffix in ((doomed["id"], "1"), (kept["id"], "2")):
            await conn.execute(posts.insert().values(
                id=f"post_01930000-0000-7000-8000-00000000000{suffix}", workspace_id=ws_id, status="draft",
                content="x", hashtags=[], platforms=[], platform_content={}, created_at=now, updated_at=now,
            ))
    resp = await client.delete(f"/api/workspaces/{doomed['id']}", headers=key.headers())
    assert resp.status == 200
    assert (await resp.json())["data"] == {"message": "Workspace deleted successfully"}
    assert (await client.get(f"/api/workspaces/{doomed['id']}", headers=key.headers())).status == 404
    assert (await client.delete(f"/api/workspaces/{doomed['id']}", headers=key.headers())).status == 404
    async with engine.connect() as conn:
        for table in (workspaces, posts, api_key_workspaces):
            column = table.c.id if table is workspaces else table.c.workspace_id
            left = await conn.scalar(sa.select(sa.func.count()).select_from(table).where(column == doomed["id"]))
            assert left == 0, table.name
        assert await conn.scalar(sa.select(sa.func.count()).select_from(posts)) == 1


async def test_other_tenants_workspace_is_invisible(client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    target = theirs.workspace_id
    for method, body in (("GET", None), ("PUT", {"name": "hijack"}), ("DELETE", None)):
        resp = await client.request(method, f"/api/workspaces/{target}", json=body, headers=mine.headers())
        assert resp.status == 404, method
        assert (await resp.json())["error"]["code"] == "NOT_FOUND"
    listed = await (await client.get("/api/workspaces", headers=mine.headers())).json()
    assert target not in [w["id"] for w in listed["data"]["workspaces"]]
    still = await (await client.get(f"/api/workspaces/{target}", headers=theirs.headers())).json()
    assert still["data"]["workspace"]["name"] == "Test workspace"


async def test_read_only_key_cannot_create_update_or_delete(client: Any, make_key: Any) -> None:
    key = await make_key(permissions=["workspaces.read"])
    assert (await client.get("/api/workspaces", headers=key.headers())).status == 200
    assert (await client.post("/api/workspaces", json={"name": "x"}, headers=key.headers())).status == 403
    path = f"/api/workspaces/{key.workspace_id}"
    assert (await client.put(path, json={"name": "x"}, headers=key.headers())).status == 403
    assert (await client.delete(path, headers=key.headers())).status == 403
