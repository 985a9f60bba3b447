"""The dashboard (/ui): counts limited to the workspaces a user may see, the global queue, workers
and network health, and the last failures linking to where they are fixed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from ouipost.core.ids import new_id
from ouipost.db.tables import post_targets, posts, social_accounts
from ouipost.jobs import queue
from ouipost.publishing import platform_calls
from tests.ui.conftest import PASSWORD, client_sign_in, make_workspace


async def _workspace(engine: Any, clock: Any, name: str, member: str | None = None) -> str:
    return (await make_workspace(engine, clock, name, member=member, timezone="Europe/Paris"))["id"]


async def _account(engine: Any, clock: Any, workspace_id: str, status: str, name: str) -> str:
    account_id = new_id("acc")
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(social_accounts.insert().values(
            id=account_id, workspace_id=workspace_id, platform="twitter", remote_id=account_id, type="profile",
            name=name, status=status, is_default=False, settings={}, metadata={}, permissions=[], stats={},
            last_error="Token expired" if status == "expired" else None, connected_at=now, updated_at=now,
        ))
    return account_id


async def _post(
    engine: Any, clock: Any, workspace_id: str, status: str, *, content: str = "Hello",
    target: str | None = None, error: tuple[str, str] | None = None, scheduled_in: timedelta | None = None,
) -> str:
    """A post row, with one target in `target` status (the publishing state machine's outcome)."""
    post_id = new_id("post")
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(posts.insert().values(
            id=post_id, workspace_id=workspace_id, status=status, content=content, hashtags=[],
            platforms=["twitter"], platform_content={}, created_at=now, updated_at=now,
            scheduled_at=now + scheduled_in if scheduled_in is not None else None,
        ))
        if target:
            await conn.execute(post_targets.insert().values(
                id=new_id("tgt"), post_id=post_id, workspace_id=workspace_id, network="twitter",
                requested="twitter", status=target, error_code=error[0] if error else None,
                error_message=error[1] if error else None, attempts=1, created_at=now, updated_at=now,
            ))
    return post_id


async def test_an_admin_sees_every_workspaces_figures_and_the_failures_link_to_the_post(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    admin = await make_user("admin")
    ws_a = await _workspace(engine, clock, "Alpha")
    ws_b = await _workspace(engine, clock, "Beta")
    await _post(engine, clock, ws_a, "published", target="published")
    await _post(engine, clock, ws_a, "published", target="published")
    await _post(engine, clock, ws_a, "published", target="published")
    failed = await _post(engine, clock, ws_b, "failed", content="Doomed <b>post</b>", target="failed",
                         error=("CONTENT_REJECTED", "Duplicate content"))
    await _post(engine, clock, ws_b, "scheduled", scheduled_in=timedelta(hours=3))
    await _post(engine, clock, ws_b, "scheduled", scheduled_in=timedelta(hours=30))
    expired = await _account(engine, clock, ws_b, "expired", "Beta on X")
    await _account(engine, clock, ws_a, "active", "Alpha on X")

    await client_sign_in(client, admin["email"], PASSWORD)
    response = await client.get("/ui")
    html = await response.text()
    assert response.status == 200
    assert "Dashboard" in html
    assert '<span class="value">2</span>\n      <span class="label">Workspaces</span>' in html
    assert '<span class="value">1</span>\n      <span class="label">Scheduled in the next 24 hours</span>' in html
    assert "75.0 %" in html  # 3 published, 1 failed in the last 7 days
    assert f'href="/ui/w/{ws_b}/posts/{failed}"' in html
    assert "CONTENT_REJECTED" in html and "Duplicate content" in html
    assert "Doomed &lt;b&gt;post&lt;/b&gt;" in html  # user text escaped
    assert f'href="/ui/w/{ws_b}/accounts"' in html and "Beta on X" in html
    assert expired  # the expired account is the one listed
    assert "Alpha on X" not in html  # active accounts need no attention
    for network in ("twitter", "bluesky", "linkedin"):
        assert f"<td>{network}</td>" in html


async def test_a_member_sees_only_their_workspaces_figures(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    editor = await make_user("editor")
    mine = await _workspace(engine, clock, "Mine", member=editor["id"])
    theirs = await _workspace(engine, clock, "Theirs")
    await _post(engine, clock, mine, "published", target="published")
    hidden = await _post(engine, clock, theirs, "failed", target="failed", error=("SECRET_CODE", "Hidden failure"))
    await _account(engine, clock, theirs, "expired", "Their account")

    await client_sign_in(client, editor["email"], PASSWORD)
    html = await (await client.get("/ui")).text()
    assert "Your 1 workspace " in html
    assert "100.0 %" in html
    assert "SECRET_CODE" not in html and hidden not in html and theirs not in html
    assert "Their account" not in html
    assert "No failed posts" in html


async def test_queue_depth_oldest_due_job_and_workers_are_global(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    viewer = await make_user("viewer")
    now = clock.now()
    async with engine.begin() as conn:
        await queue.enqueue(conn, kind="housekeeping", payload={}, now=now, run_at=now - timedelta(minutes=12))
        await queue.enqueue(conn, kind="housekeeping", payload={}, now=now, run_at=now + timedelta(hours=1))
    await queue.register_worker(engine, "worker-1", hostname="host", pid=1, queues=None, concurrency=2,
                                now=now - timedelta(seconds=5))
    await client_sign_in(client, viewer["email"], PASSWORD)
    html = await (await client.get("/ui")).text()
    assert '<span class="value">2</span>\n      <span class="label">Jobs queued</span>' in html
    assert "1 due now" in html
    assert "12 min" in html  # the oldest due job's lateness
    assert '<span class="value">1</span>\n      <span class="label">Live workers</span>' in html
    assert "last heartbeat" in html


async def test_platform_health_shows_a_degraded_network(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    viewer = await make_user("viewer")
    async with engine.begin() as conn:
        for ok in (True, False, False):
            await platform_calls.record_platform_call(conn, network="bluesky", ok=ok, status=200 if ok else 503,
                                                  latency_ms=120, at=clock.now())
    await client_sign_in(client, viewer["email"], PASSWORD)
    html = await (await client.get("/ui")).text()
    assert "66.7 %" in html and "status-down" in html


async def test_the_dashboard_offers_nothing_to_mutate(client: Any, make_user: Any) -> None:
    viewer = await make_user("viewer")
    await client_sign_in(client, viewer["email"], PASSWORD)
    html = await (await client.get("/ui")).text()
    assert html.count('method="post"') == 1  # sign out only
    assert 'action="/ui/logout"' in html


async def test_the_dashboard_needs_signing_in(client: Any) -> None:
    response = await client.get("/ui", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/ui/login")


async def test_workspace_counts_come_from_grouped_queries(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    """Many workspaces and posts render in one page with the same handful of queries."""
    admin = await make_user("admin")
    ws = await _workspace(engine, clock, "Busy")
    now = clock.now()
    async with engine.begin() as conn:
        await conn.execute(posts.insert(), [
            {"id": new_id("post"), "workspace_id": ws, "status": "draft", "content": "x", "hashtags": [],
             "platforms": ["twitter"], "platform_content": {}, "created_at": now, "updated_at": now}
            for _ in range(300)
        ])
        total = await conn.scalar(sa.select(sa.func.count()).select_from(posts))
    await client_sign_in(client, admin["email"], PASSWORD)
    html = await (await client.get("/ui")).text()
    assert f'<span class="value">{total}</span>\n      <span class="label">Posts</span>' in html
