"""Workspaces: the tenant boundary. Every query here is named for what it answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.core.clock import isoformat
from ouipost.core.ids import new_id
from ouipost.db.pages import fetch_page
from ouipost.db.rows import WorkspaceRow, record, records
from ouipost.db.schedule_tables import schedules
from ouipost.db.tables import api_key_workspaces, media, posts, social_accounts, workspace_members, workspaces
from ouipost.identity.audit import Actor, record_audit
from ouipost.storage import Storage, StorageError

log = logging.getLogger(__name__)

DEFAULT_SETTINGS: dict[str, Any] = {"timezone": "UTC", "default_hashtags": [], "approval_required": False}


async def create_workspace(
    conn: AsyncConnection,
    *,
    name: str,
    description: str | None,
    settings: Mapping[str, Any] | None,
    now: datetime,
) -> WorkspaceRow:
    row: WorkspaceRow = {
        "id": new_id("ws"),
        "name": name,
        "description": description,
        "settings": {**DEFAULT_SETTINGS, **(settings or {})},
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(workspaces.insert().values(**row))
    return row


async def list_for_key(
    conn: AsyncConnection, key_id: str, *, page: int, limit: int,
) -> tuple[list[WorkspaceRow], int]:
    """One page of the workspaces a key reaches, oldest first (ids are time-ordered, so stable), and
    how many it reaches."""
    granted = workspaces.join(api_key_workspaces, api_key_workspaces.c.workspace_id == workspaces.c.id)
    rows, total = await fetch_page(conn, granted, where=[api_key_workspaces.c.key_id == key_id],
                                   order_by=[workspaces.c.id], page=page, limit=limit, columns=workspaces)
    return records(WorkspaceRow, rows), total


async def get_workspace(conn: AsyncConnection, workspace_id: str) -> WorkspaceRow | None:
    row = (await conn.execute(sa.select(workspaces).where(workspaces.c.id == workspace_id))).mappings().first()
    return record(WorkspaceRow, row) if row else None


async def counts_by_workspace(conn: AsyncConnection, workspace_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """accounts_count, posts_count and members_count for each workspace, in three grouped queries."""
    counts = {ws: {"accounts_count": 0, "posts_count": 0, "members_count": 0} for ws in workspace_ids}
    if not workspace_ids:
        return counts
    for table, name in (
        (social_accounts, "accounts_count"),
        (posts, "posts_count"),
        (workspace_members, "members_count"),
    ):
        rows = await conn.execute(
            sa.select(table.c.workspace_id, sa.func.count())
            .where(table.c.workspace_id.in_(workspace_ids))
            .group_by(table.c.workspace_id)
        )
        for workspace_id, count in rows:
            counts[workspace_id][name] = int(count)
    return counts


async def post_stats(conn: AsyncConnection, workspace_id: str) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(posts.c.status, sa.func.count()).where(posts.c.workspace_id == workspace_id).group_by(posts.c.status)
    )
    by_status = {status: int(count) for status, count in rows}
    return {
        "total_posts": sum(by_status.values()),
        "scheduled_posts": by_status.get("scheduled", 0),
        "published_posts": by_status.get("published", 0) + by_status.get("partially_published", 0),
    }


async def connected_accounts(conn: AsyncConnection, workspace_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(
            social_accounts.c.id, social_accounts.c.platform, social_accounts.c.name,
            social_accounts.c.status, social_accounts.c.connected_at,
        )
        .where(social_accounts.c.workspace_id == workspace_id)
        .order_by(social_accounts.c.id)
    )
    return [
        {
            "id": r.id, "platform": r.platform, "name": r.name, "status": r.status,
            "connected_at": isoformat(r.connected_at),
        }
        for r in rows
    ]


async def update_workspace(
    conn: AsyncConnection, workspace: WorkspaceRow, changes: Mapping[str, Any], now: datetime
) -> WorkspaceRow:
    """Apply a partial update; `settings` is merged key by key into the current settings."""
    values: dict[str, Any] = {k: v for k, v in changes.items() if k in ("name", "description")}
    if "settings" in changes:
        values["settings"] = {**workspace["settings"], **changes["settings"]}
    values["updated_at"] = now
    await conn.execute(workspaces.update().where(workspaces.c.id == workspace["id"]).values(**values))
    return record(WorkspaceRow, {**workspace, **values})


async def owned_counts(conn: AsyncConnection, workspace_id: str) -> dict[str, int]:
    """What deleting the workspace deletes with it: its posts, accounts, schedules and media."""
    counts: dict[str, int] = {}
    for name, table in (("posts", posts), ("accounts", social_accounts), ("schedules", schedules),
                        ("media", media)):
        stmt = sa.select(sa.func.count()).select_from(table).where(table.c.workspace_id == workspace_id)
        counts[name] = int(await conn.scalar(stmt) or 0)
    return counts


async def add_member(conn: AsyncConnection, workspace_id: str, user_id: str, now: datetime) -> None:
    """Make an admin user a member of the workspace (so that a non-admin who creates one sees it)."""
    await conn.execute(workspace_members.insert().values(workspace_id=workspace_id, user_id=user_id, created_at=now))


async def delete_workspace(conn: AsyncConnection, workspace_id: str, *, actor: Actor, now: datetime) -> bool:
    """Delete the workspace (False when there is none); every table it owns cascades (posts,
    accounts, schedules, media, grants, members...). The `workspace.deleted` audit entry, with its
    name and what went with it, commits with the deletion."""
    row = await get_workspace(conn, workspace_id)
    if row is None:
        return False
    counts = await owned_counts(conn, workspace_id)
    result = await conn.execute(workspaces.delete().where(workspaces.c.id == workspace_id))
    if result.rowcount == 0:  # deleted by a concurrent request since it was read
        return False
    await record_audit(conn, action="workspace.deleted", actor=actor, now=now, resource_type="workspace",
                       resource_id=workspace_id, details={"name": row["name"], **counts})
    return True


async def media_keys(conn: AsyncConnection, workspace_id: str) -> list[str]:
    """The storage keys of every file the workspace's media hold (originals and thumbnails)."""
    rows = await conn.execute(
        sa.select(media.c.storage_key, media.c.thumbnail_key).where(media.c.workspace_id == workspace_id)
    )
    return [key for row in rows for key in row if key]


async def delete_workspace_and_media(
    engine: AsyncEngine, storage: Storage, workspace_id: str, *, actor: Actor, now: datetime
) -> bool:
    """`delete_workspace` in a transaction of its own, then its media files from the storage (local
    disk or S3), so that their signed URLs answer 404 from then on. False when there is no such
    workspace. The files go only after the commit (a rolled-back deletion keeps them); a file that
    cannot be deleted is logged and left, never failing the deletion already done."""
    async with engine.begin() as conn:
        keys = await media_keys(conn, workspace_id)
        if not await delete_workspace(conn, workspace_id, actor=actor, now=now):
            return False
    for key in keys:
        try:
            await storage.delete(key)
        except (StorageError, OSError) as exc:
            log.warning("could not delete media file %s of deleted workspace %s: %s", key, workspace_id, exc)
    return True


def workspace_view(row: WorkspaceRow, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "settings": {**DEFAULT_SETTINGS, **row["settings"]},
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }
    if counts is not None:
        view.update(counts)
    return view


async def names_by_id(conn: AsyncConnection, workspace_ids: Sequence[str]) -> dict[str, str]:
    """The names of the workspaces among `workspace_ids` that exist, in one query."""
    wanted = list(dict.fromkeys(workspace_ids))
    if not wanted:
        return {}
    rows = await conn.execute(sa.select(workspaces.c.id, workspaces.c.name).where(workspaces.c.id.in_(wanted)))
    return {workspace_id: name for workspace_id, name in rows}
