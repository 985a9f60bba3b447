"""What a user does to a post, in one place for the API handlers (ouipost/api/posts.py) and the admin
UI (ouipost/ui/views/posts.py): create, validate, update, delete, schedule (at a time or into a
recurring schedule's queue), publish now and wait for the outcome.

Each function runs inside the caller's transaction (except `wait_for_outcome`, which reads with
fresh connections while the worker publishes) and raises the API's errors: 404 for a post of another
workspace, 409 for a post in the wrong state, 422 VALIDATION_ERROR with details keyed by field or by
network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.core import errors
from ouipost.db.rows import MediaRow, PostRow, TargetRow
from ouipost.posts import approval, rules, service, statuses
from ouipost.publishing import service as publishing
from ouipost.schedules.service import workspace_timezone
from ouipost.webhooks.events import record_event

PUBLISH_WAIT_SECONDS = 5.0  # how long publish-now waits for the outcome before answering "still running"


def enforce_rules(
    body: Mapping[str, Any], targets: Sequence[service.Target], media: Sequence[MediaRow],
) -> None:
    """422 with the errors of rules.check keyed by network when the post breaks a rule a draft must
    obey. Only those: what scheduling also needs (media a network requires, an active account) is
    checked when the post is scheduled or published, so creating a draft reads no accounts."""
    problems = rules.draft_errors(body, targets, media)
    if problems:
        raise errors.ValidationError("The post breaks the rules of some networks", details=problems)


async def validate_body(
    conn: AsyncConnection, workspace_id: str, body: Mapping[str, Any], media: Sequence[MediaRow] = (),
) -> rules.Report:
    """The checks of create, and those of scheduling, on a body (PostBody) that is not saved, with
    the media of the post it would become (none for a new one). 422 for unknown targets."""
    targets = await service.resolve_targets(conn, workspace_id, body["platforms"])
    return await rules.check(conn, workspace_id, body, targets, media=media)


async def create_draft(
    conn: AsyncConnection, workspace_id: str, body: Mapping[str, Any], now: datetime,
) -> PostRow:
    """A new draft from a loaded PostBody, with its targets and its post.created event."""
    targets = await service.resolve_targets(conn, workspace_id, body["platforms"])
    enforce_rules(body, targets, media=[])
    post = await service.insert_post(conn, workspace_id=workspace_id, fields=body, targets=targets, now=now)
    await record_event(conn, "post.created", {"post": service.post_view(post)}, workspace_id=workspace_id, now=now)
    return post


async def update_draft(
    conn: AsyncConnection, workspace_id: str, post_id: str, changes: Mapping[str, Any], now: datetime,
) -> tuple[PostRow, list[MediaRow]]:
    """Apply `changes` (a partial PostBody) to a draft or scheduled post; returns (post, its media).
    409 for a post past scheduling; 422 when the merged post breaks a rule."""
    post = await service.get_post(conn, workspace_id, post_id, for_update=True)
    service.ensure_editable(post)
    merged = {**post, **changes}
    targets = await service.resolve_targets(conn, workspace_id, merged["platforms"])
    media = (await service.media_of(conn, [post["id"]]))[post["id"]]
    enforce_rules(merged, targets, media=media)
    post = await service.update_post(conn, post, changes, targets if "platforms" in changes else None, now)
    post = await approval.withdraw_on_edit(conn, post, now)
    return post, media


async def delete(
    conn: AsyncConnection, workspace_id: str, post_id: str,
) -> tuple[PostRow, list[MediaRow]]:
    """Delete a post and cancel its queued publish job; returns (the post, its media rows) so that
    the caller removes the stored files once the transaction has committed."""
    post = await service.get_post(conn, workspace_id, post_id, for_update=True)
    media = (await service.media_of(conn, [post["id"]]))[post["id"]]
    await service.delete_post(conn, post["id"])
    await publishing.drop_publish_job(conn, post["id"])
    return post, media


def deletion_message(post: PostRow) -> str:
    """What deleting `post` did, as the API says it."""
    if post["status"] in statuses.PUBLISHED_SOMEWHERE:
        return ("Post deleted from Oui Post; it remains on the social networks, where it must be removed "
                "separately")
    return "Post deleted successfully"


def scheduled_instant(value: str, zone: str) -> datetime:
    """An ISO 8601 time; without an offset it is a wall-clock time in `zone` (an explicit offset wins).
    422 when it is not a date and time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise errors.ValidationError(
            "scheduled_at is not an ISO 8601 date and time", details={"scheduled_at": ["e.g. 2025-01-25T09:00:00Z"]}
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed.astimezone(UTC)


async def schedule(
    conn: AsyncConnection, post: PostRow, body: Mapping[str, Any], now: datetime,
) -> PostRow:
    """Schedule `post` (locked by the caller) as a loaded ScheduleBody says: into a recurring
    schedule's queue (`schedule_id`), or at `scheduled_at` read in `timezone`, else in the
    workspace's zone. 409 for a post that cannot be scheduled; 422 for a past time or a target that
    cannot be published."""
    if "schedule_id" in body:
        return await publishing.queue_into_schedule(conn, post, body["schedule_id"], now)
    instant, zone = await requested_time(conn, post["workspace_id"], body)
    assert instant is not None and zone is not None  # ScheduleBody: scheduled_at when no schedule_id
    return await publishing.schedule_post(conn, post, instant, zone, now)


async def requested_time(
    conn: AsyncConnection, workspace_id: str, body: Mapping[str, Any],
) -> tuple[datetime | None, str | None]:
    """(instant, zone) of a body's `scheduled_at`, read in its `timezone`, else in the workspace's
    (an explicit offset wins); (None, None) without scheduled_at. 422 when it is not a time."""
    if "scheduled_at" not in body:
        return None, None
    zone = body.get("timezone") or await workspace_timezone(conn, workspace_id)
    return scheduled_instant(body["scheduled_at"], zone), zone


async def wait_for_outcome(
    engine: AsyncEngine, workspace_id: str, post_id: str, seconds: float = PUBLISH_WAIT_SECONDS,
) -> tuple[PostRow, list[TargetRow], bool]:
    """Poll a post being published until it reaches a final status or `seconds` pass.
    Returns (post, its targets, whether it is done)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        async with engine.connect() as conn:
            post = await service.get_post(conn, workspace_id, post_id)
            targets = (await service.targets_of(conn, [post["id"]]))[post["id"]]
        done = post["status"] in statuses.FINAL
        if done or loop.time() >= deadline:
            return post, targets, done
        await asyncio.sleep(0.1)
