"""The workspaces pages (/ui/workspaces): the list with its counts, create, edit and delete through the
same schema and domain functions as /api/workspaces, roles, CSRF, and other workspaces kept out of sight."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ouipost.core.ids import new_id
from ouipost.db.admin_tables import audit_logs
from ouipost.db.tables import posts, workspace_members
from ouipost.db.tables import workspaces as workspaces_table
from tests.ui.conftest import PASSWORD, client_sign_in, make_workspace


async def _make_workspace(engine: Any, clock: Any, name: str, member: str | None = None) -> dict[str, Any]:
    return await make_workspace(engine, clock, name, member=member)


async def _workspace_rows(engine: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(workspaces_table))).mappings()]


async def _audit(engine: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(audit_logs).order_by(audit_logs.c.created_at)))
                .mappings()]


async def test_the_list_shows_each_workspace_with_its_counts(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    ws = await _make_workspace(engine, clock, "Acme <Marketing>")
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(posts.insert(), [
            {"id": new_id("post"), "workspace_id": ws["id"], "status": "draft", "content": "x", "hashtags": [],
             "platforms": ["twitter"], "platform_content": {}, "created_at": now, "updated_at": now}
            for _ in range(3)
        ])
    await client_sign_in(client, admin["email"], PASSWORD)
    html = await (await client.get("/ui/workspaces")).text()
    assert "Acme &lt;Marketing&gt;" in html
    assert f'href="/ui/w/{ws["id"]}/posts">3</a>' in html
    assert 'href="/ui/workspaces/new"' in html
    assert f'href="/ui/workspaces/{ws["id"]}/edit"' in html and f'href="/ui/workspaces/{ws["id"]}/delete"' in html


async def test_the_list_paginates(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    admin = await make_user("admin")
    for i in range(23):
        await _make_workspace(engine, clock, f"Workspace {i:02d}")
    await client_sign_in(client, admin["email"], PASSWORD)
    first = await (await client.get("/ui/workspaces")).text()
    assert "Page 1 of 2" in first
    assert "/posts\">Workspace 19</a>" in first and "/posts\">Workspace 20</a>" not in first
    second = await (await client.get("/ui/workspaces?page=2")).text()
    assert "/posts\">Workspace 22</a>" in second and "/posts\">Workspace 00</a>" not in second


async def test_creating_a_workspace_through_the_form(client: Any, make_user: Any, engine: Any) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    page = await client.get("/ui/workspaces/new")
    html = await page.text()
    assert page.status == 200
    assert '<option value="Europe/Paris"' in html and '<label for="f-settings-timezone">' in html
    response = await client.post("/ui/workspaces/new", data={
        "csrf_token": token, "name": "  Launch team ", "description": "", "settings.timezone": "Europe/Paris",
        "settings.default_hashtags": "launch, #Oui",
    }, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/workspaces"
    [row] = await _workspace_rows(engine)
    assert row["name"] == "Launch team" and row["description"] is None
    assert row["settings"] == {"timezone": "Europe/Paris", "default_hashtags": ["#launch", "#Oui"],
                               "approval_required": False}
    listing = await (await client.get("/ui/workspaces")).text()
    assert "Workspace “Launch team” created." in listing


async def test_bad_input_re_renders_with_the_apis_messages_and_values_and_saves_nothing(
    client: Any, make_user: Any, engine: Any,
) -> None:
    admin = await make_user("admin")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post("/ui/workspaces/new", data={
        "csrf_token": token, "name": "   ", "description": "Kept <text>", "settings.timezone": "Mars/Olympus",
        "settings.default_hashtags": "good, bad-tag",
    })
    html = await response.text()
    assert response.status == 422
    assert "Length must be between 1 and 100." in html  # the schema's own message for the name
    assert "Unknown time zone &#39;Mars/Olympus&#39;; use an IANA name such as Europe/Paris" in html
    assert "hashtags may hold only letters, digits and underscores" in html
    assert "Kept &lt;text&gt;</textarea>" in html and 'value="good, bad-tag"' in html
    assert await _workspace_rows(engine) == []


async def test_a_non_admin_creator_becomes_a_member_and_sees_the_workspace(
    client: Any, make_user: Any, engine: Any,
) -> None:
    manager = await make_user("editor", permissions=["workspaces.manage", "posts.manage"])
    token = await client_sign_in(client, manager["email"], PASSWORD)
    response = await client.post("/ui/workspaces/new", data={
        "csrf_token": token, "name": "Mine", "description": "", "settings.timezone": "UTC",
        "settings.default_hashtags": "",
    }, allow_redirects=False)
    assert response.status == 303
    [row] = await _workspace_rows(engine)
    async with engine.connect() as conn:
        members = (await conn.execute(sa.select(workspace_members.c.user_id)
                                      .where(workspace_members.c.workspace_id == row["id"]))).scalars().all()
    assert members == [manager["id"]]
    assert "Mine" in await (await client.get("/ui/workspaces")).text()


async def test_editing_keeps_values_and_saves_through_the_domain(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    ws = await _make_workspace(engine, clock, "Before")
    token = await client_sign_in(client, admin["email"], PASSWORD)
    html = await (await client.get(f"/ui/workspaces/{ws['id']}/edit")).text()
    assert 'value="Before"' in html and '<option value="UTC" selected>' in html

    bad = await client.post(f"/ui/workspaces/{ws['id']}/edit", data={
        "csrf_token": token, "name": "x" * 101, "description": "", "settings.timezone": "UTC",
        "settings.default_hashtags": "",
    })
    assert bad.status == 422
    assert "Length must be between 1 and 100." in await bad.text()
    assert (await _workspace_rows(engine))[0]["name"] == "Before"

    response = await client.post(f"/ui/workspaces/{ws['id']}/edit", data={
        "csrf_token": token, "name": "After", "description": "Our brand", "settings.timezone": "America/New_York",
        "settings.default_hashtags": "#one,two",
    }, allow_redirects=False)
    assert response.status == 303
    [row] = await _workspace_rows(engine)
    assert row["name"] == "After" and row["description"] == "Our brand"
    assert row["settings"] == {"timezone": "America/New_York", "default_hashtags": ["#one", "#two"],
                               "approval_required": False}


async def test_deleting_confirms_what_goes_then_deletes_with_an_audit_entry(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    ws = await _make_workspace(engine, clock, "Doomed")
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(posts.insert(), [
            {"id": new_id("post"), "workspace_id": ws["id"], "status": "draft", "content": "x", "hashtags": [],
             "platforms": ["twitter"], "platform_content": {}, "created_at": now, "updated_at": now}
            for _ in range(2)
        ])
    token = await client_sign_in(client, admin["email"], PASSWORD)
    confirm = await client.get(f"/ui/workspaces/{ws['id']}/delete")
    html = await confirm.text()
    assert confirm.status == 200
    assert "2 posts" in html and "0 connected accounts" in html and "0 schedules" in html and "0 media files" in html
    assert await _workspace_rows(engine) != []  # the GET changed nothing

    response = await client.post(f"/ui/workspaces/{ws['id']}/delete", data={"csrf_token": token},
                                 allow_redirects=False)
    assert response.status == 303
    assert await _workspace_rows(engine) == []
    [entry] = [e for e in await _audit(engine) if e["action"] == "workspace.deleted"]
    assert entry["user_id"] == admin["id"] and entry["resource_id"] == ws["id"]
    assert entry["details"] == {"name": "Doomed", "posts": 2, "accounts": 0, "schedules": 0, "media": 0}


async def test_the_api_and_the_ui_delete_through_one_function_with_one_audit_entry(
    client: Any, make_key: Any, engine: Any,
) -> None:
    key = await make_key(permissions=["workspaces.read", "workspaces.manage"])
    response = await client.delete(f"/api/workspaces/{key.workspace_id}", headers=key.headers())
    assert response.status == 200
    [entry] = [e for e in await _audit(engine) if e["action"] == "workspace.deleted"]
    assert entry["resource_id"] == key.workspace_id and entry["details"]["name"] == "Test workspace"


async def test_a_viewer_sees_no_mutating_control_and_forged_posts_are_refused(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    viewer = await make_user("viewer")
    ws = await _make_workspace(engine, clock, "Read only", member=viewer["id"])
    token = await client_sign_in(client, viewer["email"], PASSWORD)
    html = await (await client.get("/ui/workspaces")).text()
    assert "Read only" in html
    assert "/ui/workspaces/new" not in html and "/edit" not in html and "/delete" not in html
    assert html.count('method="post"') == 1  # sign out only
    for path in ("/ui/workspaces/new", f"/ui/workspaces/{ws['id']}/edit", f"/ui/workspaces/{ws['id']}/delete"):
        assert (await client.get(path)).status == 403
    forged = [
        ("/ui/workspaces/new", {"name": "Sneaky", "settings.timezone": "UTC"}),
        (f"/ui/workspaces/{ws['id']}/edit", {"name": "Renamed", "settings.timezone": "UTC"}),
        (f"/ui/workspaces/{ws['id']}/delete", {}),
    ]
    for path, data in forged:
        response = await client.post(path, data={"csrf_token": token, **data})
        assert response.status == 403, path
    assert [r["name"] for r in await _workspace_rows(engine)] == ["Read only"]


async def test_a_post_without_the_csrf_token_is_refused(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    ws = await _make_workspace(engine, clock, "Kept")
    await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.post(f"/ui/workspaces/{ws['id']}/delete", data={})
    assert response.status == 403
    response = await client.post("/ui/workspaces/new", data={"name": "New", "settings.timezone": "UTC"})
    assert response.status == 403
    assert [r["name"] for r in await _workspace_rows(engine)] == ["Kept"]


async def test_another_workspace_is_not_found(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    manager = await make_user("editor", permissions=["workspaces.manage"])
    await _make_workspace(engine, clock, "Mine", member=manager["id"])
    other = await _make_workspace(engine, clock, "Theirs")
    token = await client_sign_in(client, manager["email"], PASSWORD)
    assert "Theirs" not in await (await client.get("/ui/workspaces")).text()
    for path in (f"/ui/workspaces/{other['id']}/edit", f"/ui/workspaces/{other['id']}/delete",
                 "/ui/workspaces/ws_nope/edit"):
        assert (await client.get(path)).status == 404, path
    response = await client.post(f"/ui/workspaces/{other['id']}/delete", data={"csrf_token": token})
    assert response.status == 404
    assert len(await _workspace_rows(engine)) == 2
