"""The audit log: who did what to which resource, from where. Written in the same transaction as the
change it records, so a change and its entry commit (or roll back) together.

Actions are `<resource>.<verb>`; details never hold secrets (no passwords, keys, webhook secrets or
tokens): callers pass names, tiers, changed field names and the like.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core.clock import isoformat
from ouipost.core.ids import new_id
from ouipost.db.admin_tables import audit_logs
from ouipost.db.pages import fetch_page

ACTIONS: frozenset[str] = frozenset({
    "auth.login_succeeded",
    "auth.login_failed",
    "auth.logout",
    "user.created",
    "user.updated",
    "user.deleted",
    "api_key.created",
    "api_key.updated",
    "api_key.rotated",
    "api_key.deleted",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "workspace.deleted",
    "account.disconnected",
    "post.submitted",
    "post.approved",
    "post.rejected",
})
_SECRET_WORDS = ("password", "secret", "token", "api_key")


@dataclass(frozen=True)
class Actor:
    """Who acts and from where. user_id/user_email are None for anonymous attempts and for API keys;
    api_key_id names the API key that acted through /api (written to the entry's details)."""

    user_id: str | None
    user_email: str | None
    ip_address: str | None
    user_agent: str | None
    api_key_id: str | None = None


async def record_audit(
    conn: AsyncConnection,
    *,
    action: str,
    actor: Actor,
    now: datetime,
    resource_type: str | None = None,
    resource_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> str:
    """Insert one entry and return its id.

    Raises ValueError for an action outside ACTIONS or details whose keys name a secret (a
    programming error, caught by tests, never a client's).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    details = dict(details or {})
    if actor.api_key_id is not None:
        details.setdefault("api_key_id", actor.api_key_id)
    # An id names a secret without being one (api_key_id): only other secret-sounding keys are refused.
    leaking = [k for k in details if any(word in k.lower() for word in _SECRET_WORDS) and not k.endswith("_id")]
    if leaking:
        raise ValueError(f"audit details must not carry secrets: {leaking}")
    log_id = new_id("log")
    await conn.execute(
        audit_logs.insert().values(
            id=log_id,
            user_id=actor.user_id,
            user_email=actor.user_email,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=details,
            ip_address=(actor.ip_address or None) and actor.ip_address[:45],
            user_agent=(actor.user_agent or None) and actor.user_agent[:500],
            created_at=now,
        )
    )
    return log_id


def _filters(
    user_id: str | None, action: str | None, resource_type: str | None,
    since: datetime | None, until: datetime | None,
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if user_id:
        conditions.append(audit_logs.c.user_id == user_id)
    if action:
        conditions.append(audit_logs.c.action == action)
    if resource_type:
        conditions.append(audit_logs.c.resource_type == resource_type)
    if since is not None:
        conditions.append(audit_logs.c.created_at >= since)
    if until is not None:
        conditions.append(audit_logs.c.created_at <= until)
    return conditions


async def list_audit(
    conn: AsyncConnection,
    *,
    page: int,
    limit: int,
    user_id: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of entries, newest first, and the total matching the filters (both bounds inclusive)."""
    conditions = _filters(user_id, action, resource_type, since, until)
    return await fetch_page(conn, audit_logs, where=conditions,
                            order_by=[audit_logs.c.created_at.desc(), audit_logs.c.id.desc()], page=page, limit=limit)


def audit_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "user_email": row["user_email"],
        "action": row["action"],
        "resource_type": row["resource_type"],
        "resource_id": row["resource_id"],
        "details": row["details"],
        "ip_address": row["ip_address"],
        "user_agent": row["user_agent"],
        "created_at": isoformat(row["created_at"]),
    }
