"""Approval in the admin UI without a browser: in a workspace that requires it, an editor submits
instead of publishing, and a user with posts.approve approves or rejects on the post page."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ouipost.db.tables import posts, workspaces
from tests.ui.conftest import PASSWORD, client_sign_in, make_workspace
from tests.ui.test_posts_ui import _account, _insert_post


async def _reviewed_workspace(engine: Any, clock: Any, member: str) -> str:
    ws = (await make_workspace(engine, clock, "Reviewed", member=member, timezone="Europe/Paris"))["id"]
    async with engine.begin() as conn:
        await conn.execute(workspaces.update().where(workspaces.c.id == ws).values(
            settings={"timezone": "Europe/Paris", "default_hashtags": [], "approval_required": True}))
    await _account(engine, clock, ws, "twitter", "Xavier")
    return ws


async def _post(engine: Any, post_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return dict((await conn.execute(sa.select(posts).where(posts.c.id == post_id))).mappings().one())


async def test_an_editor_submits_and_an_admin_approves_or_rejects(client: Any, make_user: Any, engine: Any,
                                                                  clock: Any) -> None:
    editor = await make_user("editor")
    ws = await _reviewed_workspace(engine, clock, editor["id"])
    base = f"/ui/w/{ws}"
    draft = await _insert_post(engine, ws)
    csrf = await client_sign_in(client, editor["email"], PASSWORD)

    page = await (await client.get(f"{base}/posts/{draft}")).text()
    assert "Submit for approval" in page and "Publish now" not in page and "Approve" not in page

    refused = await client.post(f"{base}/posts/{draft}/publish", data={"csrf_token": csrf}, allow_redirects=False)
    assert refused.status == 403 and "requires approval" in await refused.text()
    assert (await _post(engine, draft))["status"] == "draft"

    bad = await client.post(f"{base}/posts/{draft}/submit", data={"csrf_token": csrf, "scheduled_at": "soon"},
                            allow_redirects=False)
    assert bad.status == 422 and (await _post(engine, draft))["status"] == "draft"

    submitted = await client.post(f"{base}/posts/{draft}/submit",
                                  data={"csrf_token": csrf, "scheduled_at": "2031-06-01T09:30"}, allow_redirects=False)
    assert submitted.status == 303, await submitted.text()
    row = await _post(engine, draft)
    assert row["status"] == "pending_approval" and row["scheduled_timezone"] == "Europe/Paris"
    assert row["scheduled_at"].strftime("%Y-%m-%d %H:%M") == "2031-06-01 07:30"
    page = await (await client.get(submitted.headers["Location"])).text()
    assert "Submitted for approval." in page and "Waiting for approval since" in page and "Asked for" in page

    refused = await client.post(f"{base}/posts/{draft}/approve", data={"csrf_token": csrf}, allow_redirects=False)
    assert refused.status == 403 and (await _post(engine, draft))["status"] == "pending_approval"

    admin = await make_user("admin")
    csrf = await client_sign_in(client, admin["email"], PASSWORD)
    page = await (await client.get(f"{base}/posts/{draft}")).text()
    assert "Approve" in page and "Reject" in page

    empty = await client.post(f"{base}/posts/{draft}/reject", data={"csrf_token": csrf, "reason": "  "},
                              allow_redirects=False)
    assert empty.status == 422 and "Say why" in await empty.text()
    rejected = await client.post(f"{base}/posts/{draft}/reject",
                                 data={"csrf_token": csrf, "reason": "Wrong <launch> date"}, allow_redirects=False)
    assert rejected.status == 303
    row = await _post(engine, draft)
    assert row["status"] == "draft" and row["rejection_reason"] == "Wrong <launch> date"
    page = await (await client.get(f"{base}/posts/{draft}")).text()
    assert "Rejected because" in page and "Wrong &lt;launch&gt; date" in page

    # The admin may publish directly; a second post is submitted by the editor and approved.
    other = await _insert_post(engine, ws, content="Second")
    async with engine.begin() as conn:
        await conn.execute(posts.update().where(posts.c.id == other).values(status="pending_approval",
                                                                           submitted_at=clock.now()))
    approved = await client.post(f"{base}/posts/{other}/approve",
                                 data={"csrf_token": csrf, "scheduled_at": "2031-07-01T12:00"}, allow_redirects=False)
    assert approved.status == 303, await approved.text()
    row = await _post(engine, other)
    assert row["status"] == "scheduled" and row["scheduled_at"].strftime("%Y-%m-%d %H:%M") == "2031-07-01 10:00"
    assert "Approved: scheduled for 2031-07-01 12:00" in await (await client.get(approved.headers["Location"])).text()


async def test_workspace_form_turns_approval_on(client: Any, make_user: Any, engine: Any, clock: Any) -> None:
    admin = await make_user("admin")
    ws = (await make_workspace(engine, clock, "Plain"))["id"]
    csrf = await client_sign_in(client, admin["email"], PASSWORD)
    page = await (await client.get(f"/ui/workspaces/{ws}/edit")).text()
    assert 'name="settings.approval_required"' in page and "checked" not in page.split("approval_required")[1][:40]
    saved = await client.post(f"/ui/workspaces/{ws}/edit", allow_redirects=False, data={
        "csrf_token": csrf, "name": "Plain", "settings.timezone": "UTC", "settings.default_hashtags": "",
        "settings.approval_required": "on",
    })
    assert saved.status == 303, await saved.text()
    async with engine.connect() as conn:
        settings = await conn.scalar(sa.select(workspaces.c.settings).where(workspaces.c.id == ws))
    assert settings["approval_required"] is True
