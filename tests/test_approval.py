"""Approval: a workspace that requires it lets only posts.approve keys schedule or publish; the others
submit, and an approver approves (at the requested time, a new one, or now) or rejects with a reason.

The app runs on a FrozenClock shared with its embedded worker; accounts connect through the sandbox
over real HTTP as in every API test.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from ouipost.app import create_app
from ouipost.db.admin_tables import audit_logs
from ouipost.db.engine import create_engine
from ouipost.db.migrations import alembic_config, upgrade
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import api_keys as api_keys_table
from ouipost.db.tables import events
from ouipost.identity import api_keys
from tests.test_accounts import connect

WRITER = [p for p in api_keys.PERMISSIONS if p != "posts.approve"]


@pytest.fixture
async def team(aiohttp_client: Any, settings: Any, engine: Any, frozen_clock: Any, make_key: Any) -> Any:
    """(client, writer key, approver key, clock): two keys of one workspace that requires approval,
    with a Bluesky account connected."""
    client = await aiohttp_client(create_app(settings, engine=engine, clock=frozen_clock))
    approver = await make_key()
    writer = await make_key(permissions=WRITER, workspace=approver.workspace_id)
    await connect(client, approver, "bluesky")
    resp = await client.put(f"/api/workspaces/{approver.workspace_id}", headers=approver.headers(),
                            json={"name": "Reviewed", "settings": {"approval_required": True}})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["workspace"]["settings"]["approval_required"] is True
    return client, writer, approver, frozen_clock


async def draft(client: Any, key: Any, content: str = "Launch day") -> dict[str, Any]:
    resp = await client.post("/api/posts", json={"content": content, "platforms": ["bluesky"]}, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["post"]


async def call(client: Any, key: Any, post_id: str, step: str, body: dict[str, Any] | None = None) -> Any:
    resp = await client.post(f"/api/posts/{post_id}/{step}", json=body or {}, headers=key.headers())
    return resp.status, await resp.json()


async def get_post(client: Any, key: Any, post_id: str) -> dict[str, Any]:
    return (await (await client.get(f"/api/posts/{post_id}", headers=key.headers())).json())["data"]["post"]


def in_hours(clock: Any, hours: int) -> str:
    return (clock.now() + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def publish_jobs(engine: Any, post_id: str) -> int:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(jobs.c.payload).where(jobs.c.kind == "publish_post"))).scalars()
        return sum(1 for payload in rows if payload.get("post_id") == post_id)


async def event_types(engine: Any) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(events.c.type).order_by(events.c.created_at, events.c.id))).scalars())


async def test_without_approval_posts_write_keys_schedule_as_before(client: Any, make_key: Any) -> None:
    approver = await make_key()
    writer = await make_key(permissions=WRITER, workspace=approver.workspace_id)
    await connect(client, approver, "bluesky")
    post = await draft(client, writer)
    status, body = await call(client, writer, post["id"], "schedule", {"scheduled_at": "2031-01-01T09:00:00Z"})
    assert status == 200 and body["data"]["post"]["status"] == "scheduled"


async def test_a_key_without_posts_approve_cannot_schedule_or_publish(team: Any, engine: Any) -> None:
    client, writer, _, clock = team
    post = await draft(client, writer)
    for step, body in (("schedule", {"scheduled_at": in_hours(clock, 2)}), ("publish", {})):
        status, answer = await call(client, writer, post["id"], step, body)
        assert status == 403, answer
        assert answer["error"]["code"] == "FORBIDDEN"
        assert "requires approval" in answer["error"]["message"]
        assert answer["error"]["details"] == {"required_permission": "posts.approve"}
    assert (await get_post(client, writer, post["id"]))["status"] == "draft"
    assert await publish_jobs(engine, post["id"]) == 0


async def test_submit_then_approve_schedules_at_the_requested_time(team: Any, engine: Any) -> None:
    client, writer, approver, _ = team
    post = await draft(client, writer)
    status, body = await call(client, writer, post["id"], "submit",
                              {"scheduled_at": "2031-06-01T09:30:00", "timezone": "Europe/Paris"})
    assert status == 200, body
    pending = body["data"]["post"]
    assert pending["status"] == "pending_approval"
    assert pending["scheduled_at"] == "2031-06-01T07:30:00Z" and pending["scheduled_timezone"] == "Europe/Paris"
    assert pending["submitted_at"] is not None and pending["rejection_reason"] is None
    assert await publish_jobs(engine, post["id"]) == 0  # nothing goes out before approval

    listed = await (await client.get("/api/posts?status=pending_approval", headers=writer.headers())).json()
    assert [p["id"] for p in listed["data"]["posts"]] == [post["id"]]

    status, body = await call(client, writer, post["id"], "approve")
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"  # the writer cannot approve its own post

    status, body = await call(client, approver, post["id"], "approve")
    assert status == 200, body
    approved = body["data"]["post"]
    assert approved["status"] == "scheduled" and approved["scheduled_at"] == "2031-06-01T07:30:00Z"
    assert approved["submitted_at"] is None
    assert await publish_jobs(engine, post["id"]) == 1
    assert (await event_types(engine))[-3:] == ["post.submitted", "post.scheduled", "post.approved"]

    async with engine.connect() as conn:
        audit = (await conn.execute(
            sa.select(audit_logs.c.action, audit_logs.c.details).where(audit_logs.c.resource_id == post["id"])
            .order_by(audit_logs.c.created_at, audit_logs.c.id)
        )).all()
    assert [a.action for a in audit] == ["post.submitted", "post.approved"]
    assert audit[0].details["api_key_id"] == writer.id and audit[1].details["api_key_id"] == approver.id


async def test_approving_a_post_that_asked_for_no_time_publishes_it_now(team: Any) -> None:
    client, writer, approver, _ = team
    post = await draft(client, writer)
    status, body = await call(client, writer, post["id"], "submit")
    assert status == 200 and body["data"]["post"]["scheduled_at"] is None
    status, body = await call(client, approver, post["id"], "approve")
    assert status == 200, body
    assert body["data"]["post"]["status"] == "publishing"
    assert await wait_for_status(client, writer, post["id"], "published") == "published"


async def test_a_requested_time_that_passed_is_never_used_silently(team: Any, engine: Any) -> None:
    client, writer, approver, clock = team
    post = await draft(client, writer)
    status, _ = await call(client, writer, post["id"], "submit", {"scheduled_at": in_hours(clock, 1)})
    assert status == 200
    clock.advance(hours=2)

    status, body = await call(client, approver, post["id"], "approve")
    assert status == 422, body
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert "publish_now" in body["error"]["message"] and "scheduled_at" in body["error"]["details"]
    assert (await get_post(client, writer, post["id"]))["status"] == "pending_approval"
    assert await publish_jobs(engine, post["id"]) == 0

    status, body = await call(client, approver, post["id"], "approve",
                              {"scheduled_at": "2031-01-01T08:00:00Z", "publish_now": True})
    assert status == 422 and "publish_now" in body["error"]["details"]

    new_time = in_hours(clock, 3)
    status, body = await call(client, approver, post["id"], "approve", {"scheduled_at": new_time})
    assert status == 200, body
    assert body["data"]["post"]["status"] == "scheduled" and body["data"]["post"]["scheduled_at"] == new_time


async def test_approve_with_publish_now_after_the_time_passed(team: Any) -> None:
    client, writer, approver, clock = team
    post = await draft(client, writer)
    await call(client, writer, post["id"], "submit", {"scheduled_at": in_hours(clock, 1)})
    clock.advance(hours=2)
    status, body = await call(client, approver, post["id"], "approve", {"publish_now": True})
    assert status == 200, body
    assert await wait_for_status(client, writer, post["id"], "published") == "published"


async def test_reject_returns_the_post_to_draft_with_the_reason(team: Any, engine: Any) -> None:
    client, writer, approver, clock = team
    post = await draft(client, writer)
    await call(client, writer, post["id"], "submit", {"scheduled_at": in_hours(clock, 5)})

    for bad in ({}, {"reason": "   "}, {"reason": "x" * 1001}, {"reason": 7}):
        status, body = await call(client, approver, post["id"], "reject", bad)
        assert status == 422 and "reason" in body["error"]["details"], (bad, body)
    status, body = await call(client, writer, post["id"], "reject", {"reason": "Not mine to reject"})
    assert status == 403

    status, body = await call(client, approver, post["id"], "reject", {"reason": "Wrong launch date"})
    assert status == 200, body
    rejected = body["data"]["post"]
    assert rejected["status"] == "draft" and rejected["rejection_reason"] == "Wrong launch date"
    assert rejected["scheduled_at"] is None and rejected["submitted_at"] is None
    assert (await event_types(engine))[-1] == "post.rejected"

    # Submitting again clears the reason.
    status, body = await call(client, writer, post["id"], "submit")
    assert status == 200 and body["data"]["post"]["rejection_reason"] is None


async def test_editing_a_pending_post_returns_it_to_draft(team: Any) -> None:
    client, writer, approver, clock = team
    post = await draft(client, writer)
    await call(client, writer, post["id"], "submit", {"scheduled_at": in_hours(clock, 5)})
    resp = await client.put(f"/api/posts/{post['id']}", json={"content": "Launch day, revised"},
                            headers=writer.headers())
    assert resp.status == 200, await resp.text()
    edited = (await resp.json())["data"]["post"]
    assert edited["status"] == "draft" and edited["scheduled_at"] is None and edited["content"] == "Launch day, revised"
    status, body = await call(client, approver, post["id"], "approve")
    assert status == 409 and body["error"]["code"] == "CONFLICT"


async def test_wrong_states_and_bad_input_change_nothing(team: Any, make_key: Any) -> None:
    client, writer, approver, _ = team
    post = await draft(client, writer)
    status, body = await call(client, approver, post["id"], "approve")
    assert status == 409 and body["error"]["details"] == {"status": "draft"}
    status, body = await call(client, approver, post["id"], "reject", {"reason": "no"})
    assert status == 409
    status, body = await call(client, writer, post["id"], "submit", {"scheduled_at": "2001-01-01T00:00:00Z"})
    assert status == 422 and "scheduled_at" in body["error"]["details"]
    status, body = await call(client, writer, post["id"], "submit", {"scheduled_at": "next tuesday"})
    assert status == 422
    status, body = await call(client, writer, post["id"], "submit", {"timezone": "Europe/Paris"})
    assert status == 422 and "timezone" in body["error"]["details"]
    status, body = await call(client, writer, post["id"], "submit", {"timezone": "Mars/Olympus", "scheduled_at": "x"})
    assert status == 422
    assert (await get_post(client, writer, post["id"]))["status"] == "draft"

    # A post that could not be published (no LinkedIn account) cannot be submitted.
    resp = await client.post("/api/posts", json={"content": "Hi", "platforms": ["linkedin"]}, headers=writer.headers())
    unpublishable = (await resp.json())["data"]["post"]
    status, body = await call(client, writer, unpublishable["id"], "submit")
    assert status == 422 and "linkedin" in body["error"]["details"]

    # Submitted twice: the second is a conflict.
    assert (await call(client, writer, post["id"], "submit"))[0] == 200
    status, body = await call(client, writer, post["id"], "submit")
    assert status == 409

    # Another workspace's key sees no such post.
    stranger = await make_key()
    for step, payload in (("submit", {}), ("approve", {}), ("reject", {"reason": "x"})):
        status, body = await call(client, stranger, post["id"], step, payload)
        assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    assert (await get_post(client, writer, post["id"]))["status"] == "pending_approval"


async def test_workspace_setting_is_a_strict_boolean(client: Any, key: Any) -> None:
    resp = await client.put(f"/api/workspaces/{key.workspace_id}", headers=key.headers(),
                            json={"name": "W", "settings": {"approval_required": "yes"}})
    assert resp.status == 422
    assert "approval_required" in (await resp.json())["error"]["details"]["settings"]
    ws = await (await client.get(f"/api/workspaces/{key.workspace_id}", headers=key.headers())).json()
    assert ws["data"]["workspace"]["settings"]["approval_required"] is False


async def test_migration_gives_posts_approve_to_keys_that_held_every_permission(tmp_path: Path) -> None:
    """0016: a key made with every permission keeps every permission; a chosen subset stays as chosen."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    cfg = alembic_config()

    def to(revision: str) -> Any:
        def run(conn: Any) -> None:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return run

    async with engine.begin() as conn:
        await conn.run_sync(to("0015_instance_apps"))
    everything = [p for p in api_keys.PERMISSIONS if p != "posts.approve"]
    async with engine.begin() as conn:
        for key_id, permissions in (("key_all", everything), ("key_some", ["posts.read", "posts.write"])):
            await conn.execute(api_keys_table.insert().values(
                id=key_id, name=key_id, prefix=key_id, tier="starter", permissions=permissions, is_active=True,
                created_at=sa.func.current_timestamp(), updated_at=sa.func.current_timestamp(),
            ))
    await upgrade(engine)
    async with engine.connect() as conn:
        held = dict((await conn.execute(sa.select(api_keys_table.c.id, api_keys_table.c.permissions))).all())
    await engine.dispose()
    assert set(held["key_all"]) == set(api_keys.PERMISSIONS)
    assert held["key_some"] == ["posts.read", "posts.write"]


async def wait_for_status(client: Any, key: Any, post_id: str, status: str, timeout: float = 10) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = (await get_post(client, key, post_id))["status"]
        if current == status or asyncio.get_running_loop().time() > deadline:
            return current
        await asyncio.sleep(0.05)
