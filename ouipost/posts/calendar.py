"""The posts a calendar shows: published ones at their publication, the others at their scheduled
time, over a range of instants (the caller turns local days of the workspace's zone into them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.db.tables import posts

EXCERPT_LENGTH = 80


async def posts_between(
    conn: AsyncConnection, workspace_id: str, start: datetime, end: datetime, limit: int,
) -> list[dict[str, Any]]:
    """Posts published (by published_at) or still to publish (by scheduled_at) in [start, end),
    soonest first, at most `limit`: id, status, `excerpt` (the first EXCERPT_LENGTH characters) and `at` (UTC)."""
    when = sa.case((posts.c.published_at.is_not(None), posts.c.published_at), else_=posts.c.scheduled_at)
    rows = await conn.execute(
        sa.select(posts.c.id, posts.c.status, sa.func.substr(posts.c.content, 1, EXCERPT_LENGTH).label("excerpt"),
                  posts.c.published_at, posts.c.scheduled_at)
        .where(
            posts.c.workspace_id == workspace_id,
            sa.or_(
                sa.and_(posts.c.published_at >= start, posts.c.published_at < end),
                sa.and_(posts.c.published_at.is_(None), posts.c.scheduled_at >= start, posts.c.scheduled_at < end),
            ),
        )
        .order_by(when, posts.c.id).limit(limit)
    )
    found = []
    for r in rows.mappings():
        at = r["published_at"] or r["scheduled_at"]
        found.append({**dict(r), "at": at.replace(tzinfo=UTC) if at.tzinfo is None else at})
    return found
