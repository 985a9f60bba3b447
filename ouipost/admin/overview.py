"""What the admin UI's dashboard counts per workspace, limited to the workspaces a user may see.

Every function takes `member_of`: None counts every workspace (the admin role sees them all), a
user id counts only the workspaces that user is a member of (`workspace_members`), as one subquery
rather than a list of ids, so a user of a thousand workspaces costs no more than one of three.
Counts are grouped queries served by the `(workspace_id, status)` indexes; the lists are bounded.

The global figures (queue, workers, platform health) live in ouipost.admin.monitoring, ouipost.jobs.queue and
ouipost.publishing.platform_calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.accounts.statuses import AccountStatus
from ouipost.db.tables import post_targets, posts, social_accounts, workspace_members, workspaces

# Accounts in these states cannot publish until someone reconnects them.
ACCOUNT_ATTENTION_STATUSES = (AccountStatus.EXPIRED, AccountStatus.ERROR)


def _in_scope(column: sa.ColumnElement[Any], member_of: str | None) -> sa.ColumnElement[bool]:
    if member_of is None:
        return sa.true()
    return column.in_(sa.select(workspace_members.c.workspace_id).where(workspace_members.c.user_id == member_of))


async def count_workspaces(conn: AsyncConnection, member_of: str | None) -> int:
    stmt = sa.select(sa.func.count()).select_from(workspaces).where(_in_scope(workspaces.c.id, member_of))
    return int(await conn.scalar(stmt) or 0)


async def accounts_by_status(conn: AsyncConnection, member_of: str | None) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(social_accounts.c.status, sa.func.count())
        .where(_in_scope(social_accounts.c.workspace_id, member_of))
        .group_by(social_accounts.c.status)
    )
    return {str(status): int(count) for status, count in rows}


async def posts_by_status(conn: AsyncConnection, member_of: str | None) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(posts.c.status, sa.func.count())
        .where(_in_scope(posts.c.workspace_id, member_of))
        .group_by(posts.c.status)
    )
    return {str(status): int(count) for status, count in rows}


async def count_scheduled_between(
    conn: AsyncConnection, member_of: str | None, start: datetime, end: datetime,
) -> int:
    """Scheduled posts due in [start, end)."""
    stmt = sa.select(sa.func.count()).select_from(posts).where(
        _in_scope(posts.c.workspace_id, member_of),
        posts.c.status == "scheduled",
        posts.c.scheduled_at >= start,
        posts.c.scheduled_at < end,
    )
    return int(await conn.scalar(stmt) or 0)


async def publishing_outcomes(conn: AsyncConnection, member_of: str | None, since: datetime) -> dict[str, Any]:
    """Targets published and failed since `since`, and the success rate in percent (None when
    nothing was attempted). A target's last change is its outcome's time."""
    rows = await conn.execute(
        sa.select(post_targets.c.status, sa.func.count())
        .where(
            _in_scope(post_targets.c.workspace_id, member_of),
            post_targets.c.status.in_(("published", "failed")),
            post_targets.c.updated_at >= since,
        )
        .group_by(post_targets.c.status)
    )
    counts = {str(status): int(count) for status, count in rows}
    published, failed = counts.get("published", 0), counts.get("failed", 0)
    attempted = published + failed
    return {
        "published": published,
        "failed": failed,
        "success_rate": round(published / attempted * 100, 1) if attempted else None,
    }


async def recent_failures(conn: AsyncConnection, member_of: str | None, *, limit: int = 10) -> list[dict[str, Any]]:
    """The last failed post targets, newest first, with their post, workspace and error.

    The newest ids are picked first from the narrow target rows alone (a derived table), and only
    those few are joined to their posts and workspaces: sorting whole joined rows, texts and JSON
    included, would cost MySQL a temporary table on disk."""
    newest = (
        sa.select(post_targets.c.id)
        .where(_in_scope(post_targets.c.workspace_id, member_of), post_targets.c.status == "failed")
        .order_by(post_targets.c.updated_at.desc(), post_targets.c.id.desc())
        .limit(limit)
        .subquery("newest")
    )
    rows = await conn.execute(
        sa.select(
            post_targets.c.id, post_targets.c.post_id, post_targets.c.network, post_targets.c.error_code,
            post_targets.c.error_message, post_targets.c.updated_at, post_targets.c.workspace_id,
            workspaces.c.name.label("workspace_name"), workspaces.c.settings.label("workspace_settings"),
            posts.c.content,
        )
        .join(newest, newest.c.id == post_targets.c.id)
        .join(posts, posts.c.id == post_targets.c.post_id)
        .join(workspaces, workspaces.c.id == post_targets.c.workspace_id)
        .order_by(post_targets.c.updated_at.desc(), post_targets.c.id.desc())
    )
    return [dict(r) for r in rows.mappings()]


async def accounts_needing_attention(
    conn: AsyncConnection, member_of: str | None, *, limit: int = 10,
) -> list[dict[str, Any]]:
    """Accounts that cannot publish (expired or in error), most recently changed first."""
    rows = await conn.execute(
        sa.select(
            social_accounts.c.id, social_accounts.c.platform, social_accounts.c.name, social_accounts.c.username,
            social_accounts.c.status, social_accounts.c.last_error, social_accounts.c.updated_at,
            social_accounts.c.workspace_id, workspaces.c.name.label("workspace_name"),
        )
        .join(workspaces, workspaces.c.id == social_accounts.c.workspace_id)
        .where(
            _in_scope(social_accounts.c.workspace_id, member_of),
            social_accounts.c.status.in_(ACCOUNT_ATTENTION_STATUSES),
        )
        .order_by(social_accounts.c.updated_at.desc(), social_accounts.c.id)
        .limit(limit)
    )
    return [dict(r) for r in rows.mappings()]
