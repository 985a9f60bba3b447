"""Approval: a workspace may require that someone with `posts.approve` lets each post out.

With the workspace setting `approval_required` on, an API key or admin-UI user without the
permission cannot schedule or publish (`ensure_may_publish` answers 403); they submit instead:

    draft --submit--> pending_approval --approve--> scheduled (at the requested time) | publishing (now)
                            |   \\--reject (reason)--> draft, with rejection_reason
                            \\--any edit-------------> draft (what was approved must be what is sent)

`submit` checks what scheduling would check (every target has an active account, media rules) so
that an approver never approves a post that cannot go out. The time asked for stays in
`scheduled_at`/`scheduled_timezone` while the post waits; none means "publish when approved". A
requested time that passed while the post waited is never used silently: `approve` then needs a
new `scheduled_at` or `publish_now`. Each step writes an audit entry and raises a webhook event
(post.submitted, post.approved, post.rejected) in the caller's transaction.

With the setting off, anyone with posts.write schedules and publishes as before; submitting still
works (a team may want a review for one post) and approving still needs the permission.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.db.rows import PostRow, record
from ouipost.db.tables import posts, workspaces
from ouipost.identity.audit import Actor, record_audit
from ouipost.posts import rules, service
from ouipost.publishing import service as publishing
from ouipost.webhooks.events import record_event

PERMISSION = "posts.approve"  # API keys and admin users alike
PENDING = "pending_approval"
MAX_REASON = 1000


async def approval_required(conn: AsyncConnection, workspace_id: str) -> bool:
    settings = await conn.scalar(sa.select(workspaces.c.settings).where(workspaces.c.id == workspace_id))
    return bool((settings or {}).get("approval_required"))


async def ensure_may_publish(conn: AsyncConnection, workspace_id: str, *, may_approve: bool) -> None:
    """403 when the workspace requires approval and the caller may not approve: they must submit."""
    if not may_approve and await approval_required(conn, workspace_id):
        raise errors.Forbidden(
            "This workspace requires approval before a post is scheduled or published: submit it with "
            "POST /api/posts/{id}/submit, or use a key with the posts.approve permission",
            details={"required_permission": PERMISSION},
        )


async def submit(
    conn: AsyncConnection, post: PostRow, *, requested_at: datetime | None, timezone: str | None,
    actor: Actor, now: datetime,
) -> PostRow:
    """Move a draft (locked by the caller) to pending_approval, asking for `requested_at` (None:
    publish when approved). 409 for a post that is not a draft; 422 for a past time or a post that
    could not be published (the errors scheduling would give, keyed by network)."""
    if post["status"] != "draft":
        raise errors.Conflict(f"Only a draft can be submitted for approval; this post is {post['status']}",
                              details={"status": post["status"]})
    if requested_at is not None and requested_at <= now:
        raise errors.ValidationError("scheduled_at must be in the future",
                                     details={"scheduled_at": ["must be in the future"]})
    targets = await service.resolve_targets(conn, post["workspace_id"], post["platforms"])
    media = (await service.media_of(conn, [post["id"]]))[post["id"]]
    report = await rules.check(conn, post["workspace_id"], post, targets, media=media)
    problems = {**report.publish_errors, **report.errors}
    if problems:
        raise errors.ValidationError("The post could not be published as it is", details=problems)
    values = {
        "status": PENDING, "scheduled_at": requested_at, "scheduled_timezone": timezone if requested_at else None,
        "submitted_at": now, "rejection_reason": None, "updated_at": now,
    }
    updated = await _update(conn, post, values)
    await _record(conn, "post.submitted", updated, actor, now,
                  {"requested_at": isoformat(requested_at), "timezone": values["scheduled_timezone"]})
    return updated


async def approve(
    conn: AsyncConnection, post: PostRow, *, scheduled_at: datetime | None, timezone: str | None,
    publish_now: bool, actor: Actor, now: datetime,
) -> PostRow:
    """Let a pending post (locked by the caller) out: scheduled at `scheduled_at` if given, else at
    the time it asked for; published now with `publish_now` or when it asked for no time. 409 for a
    post that is not pending; 422 when the time it asked for has passed and no new one is given."""
    if post["status"] != PENDING:
        raise errors.Conflict(f"Only a post pending approval can be approved; this post is {post['status']}",
                              details={"status": post["status"]})
    if scheduled_at is None and not publish_now and post["scheduled_at"] is not None:
        if post["scheduled_at"] <= now:
            raise errors.ValidationError(
                "The time this post asked for has passed while it waited for approval; approve it with a new "
                "scheduled_at, or with publish_now: true",
                details={"scheduled_at": [f"{isoformat(post['scheduled_at'])} has passed"]},
            )
        scheduled_at, timezone = post["scheduled_at"], post["scheduled_timezone"]
    draft: PostRow = {**post, "status": "draft", "submitted_at": None}
    await _update(conn, post, {"submitted_at": None})
    if scheduled_at is not None:
        updated = await publishing.schedule_post(conn, draft, scheduled_at, timezone or "UTC", now)
    else:
        updated = await publishing.request_publish(conn, draft, now)
    await _record(conn, "post.approved", updated, actor, now,
                  {"scheduled_at": isoformat(scheduled_at), "publish_now": scheduled_at is None})
    return updated


async def reject(
    conn: AsyncConnection, post: PostRow, *, reason: str, actor: Actor, now: datetime,
) -> PostRow:
    """Return a pending post (locked by the caller) to draft with the reason. 409 when not pending."""
    if post["status"] != PENDING:
        raise errors.Conflict(f"Only a post pending approval can be rejected; this post is {post['status']}",
                              details={"status": post["status"]})
    updated = await _update(conn, post, {**_BACK_TO_DRAFT, "rejection_reason": reason, "updated_at": now})
    await _record(conn, "post.rejected", updated, actor, now, {"reason": reason})
    return updated


async def withdraw_on_edit(conn: AsyncConnection, post: PostRow, now: datetime) -> PostRow:
    """A pending post that is edited is a draft again (what was approved must be what is sent);
    other posts are returned as they are."""
    if post["status"] != PENDING:
        return record(PostRow, post)
    await withdraw_pending(conn, post["id"], now)
    return record(PostRow, {**post, **_BACK_TO_DRAFT, "updated_at": now})


async def withdraw_pending(conn: AsyncConnection, post_id: str, now: datetime) -> None:
    """withdraw_on_edit for a post known to be pending, of which the caller has only the id."""
    await conn.execute(posts.update().where(posts.c.id == post_id).values(**_BACK_TO_DRAFT, updated_at=now))


_BACK_TO_DRAFT = {"status": "draft", "scheduled_at": None, "scheduled_timezone": None, "submitted_at": None}


async def _update(conn: AsyncConnection, post: PostRow, values: Mapping[str, Any]) -> PostRow:
    await conn.execute(posts.update().where(posts.c.id == post["id"]).values(**values))
    return record(PostRow, {**post, **values})


async def _record(
    conn: AsyncConnection, step: str, post: PostRow, actor: Actor, now: datetime, details: Mapping[str, Any],
) -> None:
    await record_event(conn, step, {"post": service.post_view(post)}, workspace_id=post["workspace_id"], now=now)
    await record_audit(conn, action=step, actor=actor, now=now, resource_type="post", resource_id=post["id"],
                       details={"workspace_id": post["workspace_id"], **details})
