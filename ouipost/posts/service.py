"""Posts: create, read, update and delete drafts and their targets; the views the API shows.

A post names its targets in `platforms`: network names (the network's default account, resolved when
the post is scheduled or published) and/or account ids of its workspace (exactly that account).
Each entry becomes one `post_targets` row. Only draft and scheduled posts can change.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.analytics import service as analytics
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.core.ids import new_id
from ouipost.db.batch import expanding
from ouipost.db.rows import MediaRow, PartRow, PostRow, TargetRow, ThreadPart, record, records
from ouipost.db.tables import media as media_table
from ouipost.db.tables import post_targets, posts, social_accounts
from ouipost.db.types import UTCDateTime
from ouipost.platforms.registry import NETWORKS
from ouipost.posts import statuses
from ouipost.posts.followups import ThreadMode, part_view
from ouipost.posts.statuses import PostStatus, TargetStatus


@dataclass(frozen=True)
class Target:
    requested: str  # as the client wrote it
    network: str
    account_id: str | None


async def resolve_targets(conn: AsyncConnection, workspace_id: str, platforms: Sequence[str]) -> list[Target]:
    """Turn `platforms` entries into targets; 422 naming every unknown network or account.

    An account id of another workspace is reported exactly like one that does not exist.
    """
    problems: list[str] = []
    account_ids = [p for p in platforms if p not in NETWORKS]
    accounts: dict[str, str] = {}
    if account_ids:
        rows = await conn.execute(
            sa.select(social_accounts.c.id, social_accounts.c.platform).where(
                social_accounts.c.workspace_id == workspace_id, social_accounts.c.id.in_(account_ids)
            )
        )
        accounts = {r.id: r.platform for r in rows}
    targets: list[Target] = []
    for entry in dict.fromkeys(platforms):
        if entry in NETWORKS:
            targets.append(Target(entry, entry, None))
        elif entry in accounts:
            targets.append(Target(entry, accounts[entry], entry))
        elif entry.startswith("acc_"):
            problems.append(f"Unknown account {entry}")
        else:
            problems.append(f"Unknown network {entry!r}; use one of {', '.join(NETWORKS)} or an account id")
    if problems:
        raise errors.ValidationError("Some platforms are not valid targets", details={"platforms": problems})
    return targets


def may_have_insights(post: PostRow) -> bool:
    """False for a post none of whose targets was ever published: lists skip its insights query."""
    return post["status"] not in statuses.NEVER_PUBLISHED


def target_networks(targets: Sequence[Target]) -> list[str]:
    return list(dict.fromkeys(t.network for t in targets))


async def insert_post(
    conn: AsyncConnection, *, workspace_id: str, fields: Mapping[str, Any], targets: Sequence[Target], now: datetime
) -> PostRow:
    row = _new_post_row(workspace_id, fields, targets, now)
    await conn.execute(posts.insert(), row)  # parameters, not values(): one cached compiled INSERT
    await _insert_targets(conn, row, targets, now)  # a new post has no targets to replace
    return row


async def insert_posts(
    conn: AsyncConnection, *, workspace_id: str, items: Sequence[tuple[Mapping[str, Any], Sequence[Target]]],
    now: datetime,
) -> list[PostRow]:
    """insert_post for many drafts at once (a CSV import): one INSERT of the posts and one of all
    their targets, each with many parameter sets, instead of two statements per post."""
    rows = [_new_post_row(workspace_id, fields, targets, now) for fields, targets in items]
    if rows:
        await conn.execute(posts.insert(), rows)
        target_rows = [t for row, (_, targets) in zip(rows, items, strict=True)
                       for t in _target_rows(row, targets, now)]
        if target_rows:
            await conn.execute(post_targets.insert(), target_rows)
    return rows


def _new_post_row(
    workspace_id: str, fields: Mapping[str, Any], targets: Sequence[Target], now: datetime,
) -> PostRow:
    return {
        "id": new_id("post"),
        "workspace_id": workspace_id,
        "status": PostStatus.DRAFT,
        "content": fields["content"],
        "title": fields.get("title"),
        "link": fields.get("link"),
        "hashtags": fields.get("hashtags", []),
        "platforms": [t.requested for t in targets],
        "platform_content": fields.get("platform_content", {}),
        **followup_columns(fields),
        "scheduled_at": None,
        "scheduled_timezone": None,
        "published_at": None,
        "created_at": now,
        "updated_at": now,
        "submitted_at": None,
        "rejection_reason": None,
    }


FOLLOWUP_FIELDS = ("thread", "thread_mode", "first_comment")


class FollowupColumns(TypedDict):
    thread: list[ThreadPart] | None
    thread_mode: str | None
    first_comment: str | None


def followup_columns(fields: Mapping[str, Any]) -> FollowupColumns:
    """The follow-up columns of a post with these (merged) fields: `thread` as [{content, media_ids}]
    or NULL when it has none, `thread_mode` as given (null: "thread") or NULL without a thread,
    `first_comment` or NULL."""
    thread: list[ThreadPart] = [{"content": part["content"], "media_ids": list(part.get("media_ids") or [])}
                                for part in fields.get("thread") or []]
    return {
        "thread": thread or None,
        "thread_mode": str(fields.get("thread_mode") or ThreadMode.THREAD) if thread else None,
        "first_comment": fields.get("first_comment") or None,
    }


async def replace_targets(
    conn: AsyncConnection, post: PostRow, targets: Sequence[Target], now: datetime
) -> None:
    await conn.execute(post_targets.delete().where(post_targets.c.post_id == post["id"]))
    await _insert_targets(conn, post, targets, now)


async def _insert_targets(
    conn: AsyncConnection, post: PostRow, targets: Sequence[Target], now: datetime
) -> None:
    if targets:
        await conn.execute(post_targets.insert(), _target_rows(post, targets, now))


def _target_rows(post: PostRow, targets: Sequence[Target], now: datetime) -> list[TargetRow]:
    return [
        {
            "id": new_id("tgt"), "post_id": post["id"], "workspace_id": post["workspace_id"],
            "network": t.network, "requested": t.requested, "account_id": t.account_id,
            "status": TargetStatus.PENDING, "remote_id": None, "remote_url": None, "error_code": None,
            "error_message": None, "attempts": 0, "published_at": None, "created_at": now, "updated_at": now,
        }
        for t in targets
    ]


async def get_post(
    conn: AsyncConnection, workspace_id: str, post_id: str, *, for_update: bool = False
) -> PostRow:
    """The post of this workspace; NOT_FOUND otherwise (another workspace's post included)."""
    query = sa.select(posts).where(posts.c.id == post_id, posts.c.workspace_id == workspace_id)
    if for_update and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise errors.NotFound("Post not found")
    return record(PostRow, row)


def ensure_editable(post: PostRow) -> None:
    if post["status"] not in statuses.EDITABLE:
        raise errors.Conflict(
            f"A {post['status']} post cannot be changed; only draft, pending_approval and scheduled posts can",
            details={"status": post["status"]},
        )


async def update_post(
    conn: AsyncConnection, post: PostRow, changes: Mapping[str, Any],
    targets: Sequence[Target] | None, now: datetime,
) -> PostRow:
    values = {k: v for k, v in changes.items() if k in ("content", "title", "link", "hashtags", "platform_content")}
    if any(name in changes for name in FOLLOWUP_FIELDS):
        values.update(followup_columns({**post, **changes}))
    if targets is not None:
        values["platforms"] = [t.requested for t in targets]
        await replace_targets(conn, post, targets, now)
    values["updated_at"] = now
    await conn.execute(posts.update().where(posts.c.id == post["id"]).values(**values))
    return record(PostRow, {**post, **values})


async def delete_post(conn: AsyncConnection, post_id: str) -> None:
    """Delete the post; its targets, snapshots and latest totals cascade, and its published targets
    leave the analytics rollups in the same transaction."""
    await analytics.forget_post(conn, post_id)
    await conn.execute(posts.delete().where(posts.c.id == post_id))


def effective_date() -> sa.ColumnElement[Any]:
    """published_at, else scheduled_at, else created_at: what from/to filter on."""
    return sa.func.coalesce(posts.c.published_at, posts.c.scheduled_at, posts.c.created_at)


def list_filter(
    workspace_id: str, *, status: str | None, platform: str | None, start: datetime | None, end: datetime | None
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = [posts.c.workspace_id == workspace_id]
    if status:
        clauses.append(posts.c.status == status)
    if platform:
        clauses.append(
            sa.exists().where(post_targets.c.post_id == posts.c.id, post_targets.c.network == platform)
        )
    if start is not None:
        clauses.append(effective_date() >= start)
    if end is not None:
        clauses.append(effective_date() <= end)
    return clauses


async def list_posts(
    conn: AsyncConnection, clauses: Sequence[sa.ColumnElement[bool]], *, page: int, limit: int
) -> tuple[list[PostRow], int]:
    """One page, newest first, and the number of posts on all pages; ids are time-ordered, so ties
    never reorder between pages.

    One statement: the total rides along as an uncorrelated scalar subquery (evaluated once, on the
    same index as a separate count would be). Only a page past the end, which brings no row to
    carry it, asks for the total apart.
    """
    offset = (page - 1) * limit
    # correlate(None): the count reads a posts table of its own, not the outer query's row.
    total_of_all = sa.select(sa.func.count()).select_from(posts).where(*clauses).correlate(None).scalar_subquery()
    result = await conn.execute(
        sa.select(posts, total_of_all.label("total_of_all")).where(*clauses)
        .order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(limit).offset(offset)
    )
    found = records(dict[str, Any], result)
    if found:
        total = found[0]["total_of_all"]
        for row in found:
            del row["total_of_all"]
    else:
        total = await conn.scalar(sa.select(sa.func.count()).select_from(posts).where(*clauses))
    return cast(list[PostRow], found), int(total or 0)


async def list_page(
    conn: AsyncConnection, workspace_id: str, *, status: str | None, platform: str | None,
    start: datetime | None, end: datetime | None, page: int, limit: int,
) -> tuple[list[PostRow], int, dict[str, list[dict[str, Any]]]]:
    """What GET /api/posts shows: the page of list_posts (the filters of list_filter), its total, and
    each post's media in media_of's order ({post_id: [media, ...]}), with the columns a list shows
    (LIST_MEDIA_COLUMNS: its view and its signed URLs).

    One statement: the page (with its total) is a derived table left-joined to its media, so a post
    with n media comes back n times and once without (on MySQL every column of a result costs a
    descriptor parsed in Python, hence only the media columns the list needs). The statement is built
    once per filter shape (which filters are given) with the values bound, so SQLAlchemy's compile
    cache finds it without walking a new statement tree each request. A page past the end brings no
    row: the total is asked apart, as list_posts does.
    """
    given = {"status": bool(status), "platform": bool(platform), "start": start is not None, "end": end is not None}
    statement = _page_statement(**given)
    params: dict[str, Any] = {"workspace_id": workspace_id, "limit": limit, "offset": (page - 1) * limit}
    params.update((name, value) for name, value in
                  (("status", status), ("platform", platform), ("start", start), ("end", end)) if given[name])
    result = await conn.execute(statement, params)
    keys = tuple(result.keys())
    split = keys.index("total_of_all")
    post_keys, media_keys = keys[:split], tuple(k[len(_MEDIA_PREFIX):] for k in keys[split + 1:])
    found: list[dict[str, Any]] = []
    media: dict[str, list[dict[str, Any]]] = {}
    total = None
    for row in result:
        post_id = row[0]
        if post_id not in media:
            found.append(dict(zip(post_keys, row[:split], strict=True)))
            media[post_id] = []
            total = row[split]
        if row[split + 1] is not None:  # media.id: None when the post has no media
            media[post_id].append(dict(zip(media_keys, row[split + 1:], strict=True)))
    # The page's order and media_of's, put back here: ids and times compare in Python as in either
    # database (ASCII ids, binary collation), and an ORDER BY over the join cost MariaDB a filesort.
    rows = cast(list[PostRow], found)  # every column of posts, as list_posts
    rows.sort(key=_newest_first, reverse=True)
    for items in media.values():
        if len(items) > 1:
            items.sort(key=_by_id)
    if not rows:
        clauses = list_filter(workspace_id, status=status, platform=platform, start=start, end=end)
        total = await conn.scalar(sa.select(sa.func.count()).select_from(posts).where(*clauses))
    return rows, int(total or 0), media


_MEDIA_PREFIX = "media__"
LIST_MEDIA_COLUMNS = ("id", "type", "alt_text", "storage_key", "thumbnail_key")


@functools.cache
def _page_statement(status: bool, platform: bool, start: bool, end: bool) -> sa.Select[Any]:
    """list_page's statement for one filter shape (which of the filters are given), values bound."""
    # The clauses of list_filter, with bound values in place of the given ones.
    clauses: list[sa.ColumnElement[bool]] = [posts.c.workspace_id == sa.bindparam("workspace_id")]
    if status:
        clauses.append(posts.c.status == sa.bindparam("status"))
    if platform:
        clauses.append(sa.exists().where(post_targets.c.post_id == posts.c.id,
                                         post_targets.c.network == sa.bindparam("platform")))
    if start:
        clauses.append(effective_date() >= sa.bindparam("start", type_=UTCDateTime()))
    if end:
        clauses.append(effective_date() <= sa.bindparam("end", type_=UTCDateTime()))
    # correlate(None): the count reads a posts table of its own, not the outer query's row.
    total_of_all = sa.select(sa.func.count()).select_from(posts).where(*clauses).correlate(None).scalar_subquery()
    page = (
        sa.select(posts, total_of_all.label("total_of_all")).where(*clauses)
        .order_by(posts.c.created_at.desc(), posts.c.id.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer())).offset(sa.bindparam("offset", type_=sa.Integer()))
        .subquery("page")
    )
    # No ORDER BY outside: list_page orders the page and each post's media itself.
    return (
        sa.select(page, *(media_table.c[name].label(_MEDIA_PREFIX + name) for name in LIST_MEDIA_COLUMNS))
        .select_from(page.outerjoin(media_table, media_table.c.post_id == page.c.id))
    )


def _newest_first(row: PostRow) -> tuple[datetime, str]:
    return row["created_at"], row["id"]


def _by_id(row: Mapping[str, Any]) -> str:  # a list's media: the columns of LIST_MEDIA_COLUMNS
    return row["id"]


_TARGETS_OF = sa.select(post_targets).where(post_targets.c.post_id.in_(expanding())).order_by(post_targets.c.id)
_MEDIA_OF = sa.select(media_table).where(media_table.c.post_id.in_(expanding())).order_by(media_table.c.id)


async def targets_of(conn: AsyncConnection, post_ids: Sequence[str]) -> dict[str, list[TargetRow]]:
    found: dict[str, list[TargetRow]] = {pid: [] for pid in post_ids}
    if not post_ids:
        return found
    for r in records(TargetRow, await conn.execute(_TARGETS_OF, {"ids": list(post_ids)})):
        found[r["post_id"]].append(r)
    return found


async def media_of(conn: AsyncConnection, post_ids: Sequence[str]) -> dict[str, list[MediaRow]]:
    found: dict[str, list[MediaRow]] = {pid: [] for pid in post_ids}
    if not post_ids:
        return found
    for r in records(MediaRow, await conn.execute(_MEDIA_OF, {"ids": list(post_ids)})):
        found[r["post_id"]].append(r)  # type: ignore[index]  # post_id IN (post_ids): never NULL here
    return found


def post_view(
    post: PostRow, *, targets: Sequence[TargetRow] = (),
    media: Sequence[Mapping[str, Any]] = (), media_urls: Mapping[str, Mapping[str, str | None]] | None = None,
    detail: bool = False, analytics: Mapping[str, Any] | None = None,
    parts: Mapping[str, Sequence[PartRow]] | None = None,
) -> dict[str, Any]:
    """The post as the API shows it; `detail` adds platform_posts and per-network analytics.

    `analytics` is the post's entry of ouipost.analytics.service.post_totals (latest totals; zeros without it).
    `parts` are the targets' follow-ups by target id (ouipost.posts.followups.parts_of), shown under
    each platform_posts entry ([] for a target without any). `media` are media rows, or only the
    columns of LIST_MEDIA_COLUMNS (list_page).
    """
    media_urls = media_urls or {}
    totals = analytics or {}
    view: dict[str, Any] = {
        "id": post["id"],
        "content": post["content"],
        "title": post["title"],
        "link": post["link"],
        "hashtags": post["hashtags"],
        "status": post["status"],
        "platforms": post["platforms"],
        "platform_content": post["platform_content"],
        "thread": [{"content": part["content"], "media_ids": list(part.get("media_ids") or [])}
                   for part in post.get("thread") or []],
        "thread_mode": post.get("thread_mode") if post.get("thread") else None,
        "first_comment": post.get("first_comment"),
        "media": [
            {"id": m["id"], "type": m["type"], **media_urls.get(m["id"], {"url": None, "thumbnail_url": None}),
             "alt_text": m["alt_text"]}
            for m in media
        ],
        "scheduled_at": isoformat(post["scheduled_at"]),
        "scheduled_timezone": post["scheduled_timezone"],
        "published_at": isoformat(post["published_at"]),
        "submitted_at": isoformat(post.get("submitted_at")),
        "rejection_reason": post.get("rejection_reason"),
        "created_at": isoformat(post["created_at"]),
        "updated_at": isoformat(post["updated_at"]),
        "analytics": {name: int(totals.get(name, 0)) for name in ("impressions", "engagement", "clicks")},
    }
    if detail:
        view["platform_posts"] = [
            {
                "platform": t["network"], "account_id": t["account_id"], "post_id": t["remote_id"],
                "url": t["remote_url"], "status": t["status"],
                "error": {"code": t["error_code"], "message": t["error_message"]} if t["error_code"] else None,
                "parts": [part_view(p) for p in (parts or {}).get(t["id"], ())],
            }
            for t in targets
        ]
        view["analytics"] = {
            **{f"total_{name}": int(totals.get(name, 0)) for name in ("impressions", "engagement", "clicks")},
            "by_platform": {
                network: {name: int(values.get(name, 0)) for name in ("impressions", "engagement", "clicks")}
                for network, values in (totals.get("by_platform") or {}).items()
            },
        }
    return view
