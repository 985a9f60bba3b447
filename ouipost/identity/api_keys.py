"""API keys: generation, storage as hashes, lookup, workspace grants.

A key looks like `pk_live_<32 base62 chars>`; its first 11 characters are kept in clear as the
visible prefix (`pk_live_abc`). Only SHA-256 digests are stored.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core.ids import new_id
from ouipost.db.rows import ApiKeyRow
from ouipost.db.tables import api_key_secrets, api_key_workspaces, api_keys

PERMISSIONS: tuple[str, ...] = (
    "workspaces.read",
    "workspaces.manage",
    "posts.read",
    "posts.write",
    "posts.approve",
    "accounts.read",
    "accounts.manage",
    "schedules.read",
    "schedules.write",
    "analytics.read",
)
KEY_PREFIX = "pk_live_"
VISIBLE_PREFIX_LENGTH = 11
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ApiKey:
    """The authenticated API key of a request."""

    id: str
    name: str
    prefix: str
    tier: str
    permissions: frozenset[str]
    last_used_at: datetime | None = None  # as stored when the request began
    reaches: str | None = None  # the request's X-Workspace-ID, when the key reaches it


@dataclass(frozen=True)
class NewKey:
    record: ApiKeyRow
    secret: str  # shown once


def generate_secret() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(
    conn: AsyncConnection,
    *,
    name: str,
    tier: str,
    permissions: Iterable[str] | None,
    workspace_ids: Iterable[str] = (),
    created_by: str | None = None,
    now: datetime,
) -> NewKey:
    """Insert a key (all permissions when `permissions` is None) and its workspace grants."""
    secret = generate_secret()
    key_id = new_id("key")
    perms = list(PERMISSIONS) if permissions is None else sorted(set(permissions))
    record: ApiKeyRow = {
        "id": key_id,
        "name": name,
        "prefix": secret[:VISIBLE_PREFIX_LENGTH],
        "tier": tier,
        "permissions": perms,
        "is_active": True,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
        "last_used_at": None,
    }
    await conn.execute(api_keys.insert().values(**record))
    await conn.execute(
        api_key_secrets.insert().values(secret_hash=hash_secret(secret), key_id=key_id, created_at=now)
    )
    for workspace_id in dict.fromkeys(workspace_ids):
        await grant_workspace(conn, key_id, workspace_id)
    return NewKey(record, secret)


_AUTHENTICATE = (
    sa.select(
        api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.tier, api_keys.c.permissions,
        api_keys.c.is_active, api_keys.c.last_used_at, api_key_secrets.c.expires_at,
    )
    .join(api_key_secrets, api_key_secrets.c.key_id == api_keys.c.id)
    .where(api_key_secrets.c.secret_hash == sa.bindparam("secret_hash"))
)
# The same lookup, and whether the key reaches one workspace (the request's X-Workspace-ID): one
# round trip where the route guard would otherwise ask a second time.
_AUTHENTICATE_FOR_WORKSPACE = _AUTHENTICATE.add_columns(
    sa.exists().where(
        api_key_workspaces.c.key_id == api_keys.c.id,
        api_key_workspaces.c.workspace_id == sa.bindparam("workspace_id"),
    ).label("reaches")
)


async def authenticate(
    conn: AsyncConnection, secret: str, now: datetime, *, workspace_id: str | None = None
) -> ApiKey | None:
    """The active key this secret belongs to, or None (unknown, revoked, or rotated out and expired).

    A read only, one query: nothing is cached, so a revoked or expired key is refused at once by
    every process. With `workspace_id`, `ApiKey.reaches` tells whether the key reaches it (see
    can_reach). Usage and last_used_at are written in batches by ouipost.http.usage.
    """
    if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
        return None
    if workspace_id is None:
        result = await conn.execute(_AUTHENTICATE, {"secret_hash": hash_secret(secret)})
    else:
        result = await conn.execute(
            _AUTHENTICATE_FOR_WORKSPACE, {"secret_hash": hash_secret(secret), "workspace_id": workspace_id}
        )
    row = result.first()
    if row is None or not row.is_active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return ApiKey(
        id=row.id, name=row.name, prefix=row.prefix, tier=row.tier, permissions=frozenset(row.permissions),
        last_used_at=row.last_used_at,
        reaches=workspace_id if workspace_id is not None and row.reaches else None,
    )


async def grant_workspace(conn: AsyncConnection, key_id: str, workspace_id: str) -> None:
    exists = await conn.scalar(
        sa.select(sa.func.count()).select_from(api_key_workspaces).where(
            api_key_workspaces.c.key_id == key_id, api_key_workspaces.c.workspace_id == workspace_id
        )
    )
    if not exists:
        await conn.execute(api_key_workspaces.insert().values(key_id=key_id, workspace_id=workspace_id))


async def can_reach(conn: AsyncConnection, key_id: str, workspace_id: str) -> bool:
    """True when the key was granted this workspace (or created it)."""
    found = await conn.scalar(
        sa.select(api_key_workspaces.c.workspace_id).where(
            api_key_workspaces.c.key_id == key_id, api_key_workspaces.c.workspace_id == workspace_id
        )
    )
    return found is not None


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> bool:
    result = await conn.execute(
        api_keys.update().where(api_keys.c.id == key_id).values(is_active=False, updated_at=now)
    )
    return result.rowcount > 0


async def count_keys(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)) or 0)
