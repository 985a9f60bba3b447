"""Follow-ups: what is published after a post on each network, and each one's state.

A post may carry `thread` (up to 25 parts, `[{content, media_ids?}]`), `thread_mode` and
`first_comment`. Once a target is published, its follow-ups are sent in this order, each a step of
its own (a row of `post_target_parts`) with its own exactly-once guarantee:

    seq 1         first_comment: a comment on the post (on a network with reply chains, the
                  account's own reply to it)
    seq 2..       thread parts, on networks with reply chains (X, Bluesky, Threads, Mastodon):
                  each a reply to the one before it, the first to the post itself
                  thread_mode first_comment, on networks without chains but with comments
                  (Facebook, Instagram, LinkedIn, YouTube): the first part as a comment, the
                  others not published there

A part goes pending -> publishing (committed before the call) -> published | failed, like a target;
one still `publishing` when the job runs again failed OUTCOME_UNKNOWN (its answer was lost: never
sent again), and the thread's later replies are not sent (THREAD_BROKEN: a reply needs its parent).
A comment does not depend on the thread. The post is final once every target and every part is
(ouipost/publishing/service.py finish_posts); a part that failed makes it partially_published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core.clock import isoformat
from ouipost.core.ids import new_id
from ouipost.db.batch import expanding
from ouipost.db.rows import PartRow, PostRow, TargetRow, ThreadPart, records
from ouipost.db.tables import post_target_parts, post_targets
from ouipost.platforms.registry import PlatformSpec, get_platform

MAX_THREAD_PARTS = 25


class ThreadMode(StrEnum):
    THREAD = "thread"  # a reply chain; refused on networks without one
    FIRST_COMMENT = "first_comment"  # where there is no chain, the first part as a comment


class PartKind(StrEnum):
    REPLY = "reply"  # the next part of a reply chain
    COMMENT = "comment"  # a comment on the post (a self-reply on reply-chain networks)


class PartSource(StrEnum):
    THREAD = "thread"
    FIRST_COMMENT = "first_comment"


class PartStatus(StrEnum):
    PENDING = "pending"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"


OPEN = frozenset({PartStatus.PENDING, PartStatus.PUBLISHING})
THREAD_BROKEN_MESSAGE = "Not sent: the part before it in the thread was not published"


@dataclass(frozen=True)
class PartPlan:
    """One follow-up as the post asks for it on one network."""

    seq: int
    source: PartSource
    source_index: int | None
    kind: PartKind
    content: str
    media_ids: tuple[str, ...] = ()


def thread_of(post: PostRow) -> list[ThreadPart]:
    return list(post.get("thread") or [])


def thread_media_ids(thread: Iterable[Mapping[str, Any]]) -> set[str]:
    """The media a thread's parts name (a post's: thread_of): not part of the post itself unless its
    override says so."""
    return {mid for part in thread for mid in part.get("media_ids") or ()}


def plan(post: PostRow, spec: PlatformSpec | str) -> list[PartPlan]:
    """The follow-ups of `post` on a network, in the order they are sent (empty when none). Assumes
    a validated post: what a network cannot carry was refused when the post was written."""
    spec = get_platform(spec) if isinstance(spec, str) else spec
    parts: list[PartPlan] = []
    comment = post.get("first_comment")
    if comment and spec.comments:
        parts.append(PartPlan(len(parts) + 1, PartSource.FIRST_COMMENT, None, PartKind.COMMENT, comment))
    thread = thread_of(post)
    if thread and spec.reply_chains:
        parts += [PartPlan(len(parts) + 1 + n, PartSource.THREAD, n, PartKind.REPLY, part["content"],
                           tuple(part.get("media_ids") or ())) for n, part in enumerate(thread)]
    elif thread and spec.comments and post.get("thread_mode") == ThreadMode.FIRST_COMMENT:
        parts.append(PartPlan(len(parts) + 1, PartSource.THREAD, 0, PartKind.COMMENT, thread[0]["content"]))
    return parts


def has_followups(post: PostRow) -> bool:
    return bool(post.get("first_comment") or post.get("thread"))


# --- the parts' rows ---------------------------------------------------------------------------

_PARTS_OF_POSTS = (sa.select(post_target_parts).where(post_target_parts.c.post_id.in_(expanding()))
                   .order_by(post_target_parts.c.target_id, post_target_parts.c.seq))
_PARTS_OF_TARGET = (sa.select(post_target_parts).where(post_target_parts.c.target_id == sa.bindparam("target_id"))
                    .order_by(post_target_parts.c.seq))


async def parts_of(conn: AsyncConnection, post_ids: Sequence[str]) -> dict[str, list[PartRow]]:
    """Every part of the posts' targets, by target id, in sending order."""
    found: dict[str, list[PartRow]] = {}
    if not post_ids:
        return found
    for part in records(PartRow, await conn.execute(_PARTS_OF_POSTS, {"ids": sorted(set(post_ids))})):
        found.setdefault(part["target_id"], []).append(part)
    return found


async def parts_of_target(conn: AsyncConnection, target_id: str) -> list[PartRow]:
    return records(PartRow, await conn.execute(_PARTS_OF_TARGET, {"target_id": target_id}))


async def materialize(conn: AsyncConnection, target: TargetRow, post: PostRow, now: datetime) -> list[PartRow]:
    """The target's parts, written from the post's plan the first time (pending), read back after."""
    existing = await parts_of_target(conn, target["id"])
    if existing:
        return existing
    planned = plan(post, target["network"])
    if planned:
        await conn.execute(post_target_parts.insert(), [
            {"id": new_id("part"), "target_id": target["id"], "post_id": target["post_id"],
             "workspace_id": target["workspace_id"], "seq": p.seq, "source": p.source,
             "source_index": p.source_index, "kind": p.kind, "status": PartStatus.PENDING, "attempts": 0,
             "created_at": now, "updated_at": now}
            for p in planned
        ])
    return await parts_of_target(conn, target["id"])


def open_followups(post: PostRow, target: TargetRow, parts: Sequence[PartRow]) -> bool:
    """True while a published target still has follow-ups to send (planned but not written yet,
    or pending or publishing)."""
    if target["status"] != "published":
        return False
    if not parts:
        return bool(plan(post, target["network"]))
    return any(p["status"] in OPEN for p in parts)


def part_view(part: PartRow) -> dict[str, Any]:
    """A part as the API shows it under platform_posts[].parts."""
    failed = part["status"] == PartStatus.FAILED
    return {
        "source": part["source"], "index": part["source_index"], "kind": part["kind"],
        "status": part["status"], "post_id": part["remote_id"], "url": part["remote_url"],
        "published_at": isoformat(part["published_at"]),
        "error": {"code": part["error_code"], "message": part["error_message"]}
        if failed and part["error_code"] else None,
    }


# --- moves -------------------------------------------------------------------------------------

_BY_ID = post_target_parts.c.id == sa.bindparam("part_id")


async def claim(conn: AsyncConnection, part_id: str, now: datetime) -> bool:
    """pending -> publishing (attempts + 1), committed by the caller before the network call. False
    when the part is no longer pending."""
    result = await conn.execute(
        post_target_parts.update().where(_BY_ID, post_target_parts.c.status == PartStatus.PENDING)
        .values(status=PartStatus.PUBLISHING, attempts=post_target_parts.c.attempts + 1, updated_at=now),
        {"part_id": part_id})
    return result.rowcount == 1


async def mark_published(conn: AsyncConnection, part_id: str, remote_id: str, url: str | None,
                         extra: Mapping[str, Any], now: datetime) -> None:
    await conn.execute(post_target_parts.update().where(_BY_ID).values(
        status=PartStatus.PUBLISHED, remote_id=remote_id, remote_url=url, remote_extra=dict(extra) or None,
        error_code=None, error_message=None, published_at=now, updated_at=now), {"part_id": part_id})


async def mark_failed(conn: AsyncConnection, part_ids: Sequence[str], code: str, message: str, now: datetime) -> None:
    if part_ids:
        await conn.execute(post_target_parts.update().where(_BY_ID).values(
            status=PartStatus.FAILED, error_code=code[:64], error_message=message[:2000], updated_at=now),
            [{"part_id": pid} for pid in part_ids])


async def mark_retrying(conn: AsyncConnection, part_id: str, message: str, now: datetime) -> None:
    """Back to pending after a retryable error: nothing was published."""
    await conn.execute(post_target_parts.update().where(_BY_ID).values(
        status=PartStatus.PENDING, error_code="RETRYING", error_message=message[:2000], updated_at=now),
        {"part_id": part_id})


async def reopen_failed(conn: AsyncConnection, post_id: str, now: datetime) -> list[str]:
    """Publish again: every failed part of the post back to pending. Returns their targets' ids."""
    rows = (await conn.execute(sa.select(post_target_parts.c.target_id).distinct().where(
        post_target_parts.c.post_id == post_id, post_target_parts.c.status == PartStatus.FAILED))).scalars().all()
    if rows:
        await conn.execute(post_target_parts.update().where(
            post_target_parts.c.post_id == post_id, post_target_parts.c.status == PartStatus.FAILED,
        ).values(status=PartStatus.PENDING, error_code=None, error_message=None, updated_at=now))
    return sorted(rows)


async def reopen_never_sent(conn: AsyncConnection, account_id: str, codes: Sequence[str],
                            now: datetime) -> list[tuple[str, str]]:
    """An account came back: its published targets' parts that failed before reaching the network
    (`codes`: an expired token, the account unavailable) are pending again. Returns their
    (target id, post id) pairs."""
    rows = (await conn.execute(
        sa.select(post_target_parts.c.id, post_target_parts.c.target_id, post_target_parts.c.post_id)
        .join(post_targets, post_targets.c.id == post_target_parts.c.target_id)
        .where(post_targets.c.account_id == account_id, post_target_parts.c.status == PartStatus.FAILED,
               post_target_parts.c.error_code.in_(list(codes)))
    )).all()
    if rows:
        await conn.execute(post_target_parts.update().where(post_target_parts.c.id.in_([r.id for r in rows])).values(
            status=PartStatus.PENDING, error_code=None, error_message=None, updated_at=now))
    return sorted({(r.target_id, r.post_id) for r in rows})
