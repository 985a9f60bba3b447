"""API keys as the admin API manages them: listing with usage, changes, rotation, deletion.

Creation, hashing and authentication live in ouipost.identity.api_keys; this module adds what only admins do.
Rotation inserts a new secret and gives every older secret of the key at most 24 hours to live, so
clients can switch without downtime; `api_keys.authenticate` refuses a secret past its expires_at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.db.pages import fetch_page
from ouipost.db.rows import ApiKeyRow, record, records
from ouipost.db.tables import api_key_secrets, api_key_workspaces
from ouipost.db.tables import api_keys as keys_table
from ouipost.identity import api_keys
from ouipost.identity.audit import Actor, record_audit

ROTATION_GRACE = timedelta(hours=24)


def check_tier(body: Mapping[str, Any], tiers: Iterable[str]) -> None:
    """422 when `body` names a tier outside `tiers`. Tiers are configuration (OUIPOST_RATE_LIMITS),
    so they are checked here rather than in the schema."""
    tiers = list(tiers)
    if "tier" in body and body["tier"] not in tiers:
        raise errors.ValidationError(
            f"Unknown tier {body['tier']!r}",
            details={"tier": [f"Unknown value {body['tier']!r}; choose from {', '.join(tiers)}"]},
        )


async def get_key(conn: AsyncConnection, key_id: str) -> ApiKeyRow | None:
    row = (await conn.execute(sa.select(keys_table).where(keys_table.c.id == key_id))).mappings().first()
    return record(ApiKeyRow, row) if row else None


async def list_keys(
    conn: AsyncConnection, *, page: int, limit: int, is_active: bool | None = None
) -> tuple[list[ApiKeyRow], int]:
    """One page of keys, oldest first, and how many match."""
    conditions = [] if is_active is None else [keys_table.c.is_active == is_active]
    rows, total = await fetch_page(conn, keys_table, where=conditions, order_by=[keys_table.c.id], page=page,
                                   limit=limit)
    return records(ApiKeyRow, rows), total


async def workspaces_by_key(conn: AsyncConnection, key_ids: Sequence[str]) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = {k: [] for k in key_ids}
    if not key_ids:
        return grants
    rows = await conn.execute(
        sa.select(api_key_workspaces.c.key_id, api_key_workspaces.c.workspace_id)
        .where(api_key_workspaces.c.key_id.in_(key_ids))
        .order_by(api_key_workspaces.c.workspace_id)
    )
    for key_id, workspace_id in rows:
        grants[key_id].append(workspace_id)
    return grants


async def set_workspaces(conn: AsyncConnection, key_id: str, workspace_ids: Iterable[str]) -> None:
    """Replace the key's workspace grants (the caller checked that they exist)."""
    await conn.execute(api_key_workspaces.delete().where(api_key_workspaces.c.key_id == key_id))
    rows = [{"key_id": key_id, "workspace_id": w} for w in dict.fromkeys(workspace_ids)]
    if rows:
        await conn.execute(api_key_workspaces.insert(), rows)


async def update_key(
    conn: AsyncConnection, key: ApiKeyRow, changes: Mapping[str, Any], now: datetime
) -> tuple[ApiKeyRow, list[str]]:
    """Apply name/tier/permissions/is_active/workspaces changes; returns the new row and what changed.
    Deactivation takes effect on the key's next request (authentication reads is_active)."""
    values: dict[str, Any] = {}
    for field in ("name", "tier", "is_active"):
        if field in changes and changes[field] != key[field]:
            values[field] = changes[field]
    if "permissions" in changes:
        permissions = sorted(set(changes["permissions"]))  # stored sorted, as api_keys.create_key does
        if permissions != list(key["permissions"]):
            values["permissions"] = permissions
    changed = list(values)
    if values:
        values["updated_at"] = now
        await conn.execute(keys_table.update().where(keys_table.c.id == key["id"]).values(**values))
    if "workspaces" in changes:
        before = (await workspaces_by_key(conn, [key["id"]]))[key["id"]]
        if sorted(before) != sorted(dict.fromkeys(changes["workspaces"])):
            await set_workspaces(conn, key["id"], changes["workspaces"])
            changed.append("workspaces")
    return record(ApiKeyRow, {**key, **values}), changed


async def rotate_key(conn: AsyncConnection, key_id: str, now: datetime) -> tuple[str, datetime]:
    """Issue a new secret for the key; every older secret stays valid for at most 24 hours more.
    Returns the new secret (shown once) and when the old one stops working."""
    old_expires_at = now + ROTATION_GRACE
    await conn.execute(
        api_key_secrets.update()
        .where(
            api_key_secrets.c.key_id == key_id,
            sa.or_(api_key_secrets.c.expires_at.is_(None), api_key_secrets.c.expires_at > old_expires_at),
        )
        .values(expires_at=old_expires_at)
    )
    secret = api_keys.generate_secret()
    await conn.execute(
        api_key_secrets.insert().values(secret_hash=api_keys.hash_secret(secret), key_id=key_id, created_at=now)
    )
    # The visible prefix follows the current secret, so admins can tell which one a client holds.
    await conn.execute(
        keys_table.update()
        .where(keys_table.c.id == key_id)
        .values(prefix=secret[: api_keys.VISIBLE_PREFIX_LENGTH], updated_at=now)
    )
    await conn.execute(
        api_key_secrets.delete().where(api_key_secrets.c.key_id == key_id, api_key_secrets.c.expires_at <= now)
    )
    return secret, old_expires_at


async def delete_key(conn: AsyncConnection, key_id: str) -> bool:
    """Delete the key at once: its secrets, grants, counters and usage cascade."""
    result = await conn.execute(keys_table.delete().where(keys_table.c.id == key_id))
    return result.rowcount > 0


def key_view(row: ApiKeyRow, workspace_ids: Sequence[str], usage: Mapping[str, int]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "tier": row["tier"],
        "permissions": list(row["permissions"]),
        "workspaces": list(workspace_ids),
        "is_active": bool(row["is_active"]),
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
        "last_used_at": isoformat(row["last_used_at"]),
        "usage": {"requests_today": usage["requests_today"], "requests_this_month": usage["requests_this_month"]},
    }


# ------------------------------------------------------------------------------------------------
# The audit entries of key changes, written by the admin API and the admin UI alike (never the secret)


async def audit_key_created(conn: AsyncConnection, actor: Actor, view: Mapping[str, Any], now: datetime) -> None:
    await record_audit(
        conn, action="api_key.created", actor=actor, now=now, resource_type="api_key", resource_id=view["id"],
        details={"key_name": view["name"], "tier": view["tier"], "permissions": view["permissions"],
                 "workspaces": view["workspaces"]},
    )


async def audit_key_updated(
    conn: AsyncConnection, actor: Actor, row: ApiKeyRow, changed: Sequence[str], now: datetime,
) -> None:
    """The entry for a change (nothing is written when nothing changed)."""
    if not changed:
        return
    details: dict[str, Any] = {"key_name": row["name"], "changed": list(changed)}
    for field in ("tier", "is_active", "permissions"):
        if field in changed:
            details[field] = row[field]
    await record_audit(conn, action="api_key.updated", actor=actor, now=now, resource_type="api_key",
                       resource_id=row["id"], details=details)


async def audit_key_rotated(
    conn: AsyncConnection, actor: Actor, key: ApiKeyRow, old_expires_at: datetime, now: datetime,
) -> None:
    await record_audit(
        conn, action="api_key.rotated", actor=actor, now=now, resource_type="api_key", resource_id=key["id"],
        details={"key_name": key["name"], "old_key_expires_at": isoformat(old_expires_at)},
    )


async def audit_key_deleted(conn: AsyncConnection, actor: Actor, key: ApiKeyRow, now: datetime) -> None:
    await record_audit(conn, action="api_key.deleted", actor=actor, now=now, resource_type="api_key",
                       resource_id=key["id"], details={"key_name": key["name"], "tier": key["tier"]})
