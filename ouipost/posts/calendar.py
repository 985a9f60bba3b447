"""The posts a calendar shows: published ones at their publication, the others at their scheduled
time, day by day of the workspace's zone.

The caller gives the instants (UTC) at which each local day starts, so that days are right across
DST changes (a 23- or 25-hour day is just two instants further apart or closer). The database
numbers each post's day and keeps the first `per_day` of each with the day's total, so a month of
a busy workspace sends a few hundred rows, not every post.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.db.tables import posts

EXCERPT_LENGTH = 80


@dataclass
class CalendarDays:
    """`posts[i]`: the first posts of day i, soonest first (id, status, excerpt, at in UTC);
    `totals[i]`: how many posts day i has in all."""

    posts: list[list[dict[str, Any]]] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)


async def posts_by_day(
    conn: AsyncConnection, workspace_id: str, day_starts: Sequence[datetime], per_day: int,
) -> CalendarDays:
    """Posts of the days [day_starts[i], day_starts[i + 1]) (the last instant ends the last day):
    published ones by published_at, the others by scheduled_at. Two index ranges of the workspace,
    one statement."""
    if len(day_starts) < 2:
        raise ValueError("give the start of each day and the end of the last one")
    start, end = day_starts[0], day_starts[-1]
    published = sa.select(posts.c.id, posts.c.published_at.label("at")).where(
        posts.c.workspace_id == workspace_id, posts.c.published_at >= start, posts.c.published_at < end,
    )
    planned = sa.select(posts.c.id, posts.c.scheduled_at.label("at")).where(
        posts.c.workspace_id == workspace_id, posts.c.published_at.is_(None),
        posts.c.scheduled_at >= start, posts.c.scheduled_at < end,
    )
    timed = sa.union_all(published, planned).subquery("timed")
    dated = sa.select(timed.c.id, timed.c.at, sa.case(
        *[(timed.c.at < bound, index) for index, bound in enumerate(day_starts[1:-1])],
        else_=len(day_starts) - 2,
    ).label("day")).subquery("dated")
    numbered = sa.select(
        dated.c.id, dated.c.at, dated.c.day,
        sa.func.row_number().over(partition_by=dated.c.day, order_by=(dated.c.at, dated.c.id)).label("rank"),
        sa.func.count().over(partition_by=dated.c.day).label("day_total"),
    ).subquery("numbered")
    rows = await conn.execute(
        sa.select(numbered.c.id, numbered.c.at, numbered.c.day, numbered.c.day_total, posts.c.status,
                  sa.func.substr(posts.c.content, 1, EXCERPT_LENGTH).label("excerpt"))
        .join(posts, posts.c.id == numbered.c.id)
        .where(numbered.c.rank <= per_day)
        .order_by(numbered.c.at, numbered.c.id)
    )
    found = CalendarDays(posts=[[] for _ in day_starts[1:]], totals=[0 for _ in day_starts[1:]])
    for r in rows.mappings():
        at = r["at"] if r["at"].tzinfo is not None else r["at"].replace(tzinfo=UTC)
        found.posts[r["day"]].append({"id": r["id"], "status": r["status"], "excerpt": r["excerpt"], "at": at})
        found.totals[r["day"]] = int(r["day_total"])
    return found
