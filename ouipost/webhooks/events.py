"""Domain events, written to the outbox in the caller's transaction (see `events` in tables.py).

Types: post.created, post.scheduled, post.published, post.partial, post.failed, post.submitted,
post.approved, post.rejected (approval, ouipost/posts/approval.py), account.connected,
account.disconnected, account.expired. Each payload holds the resource as the API shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core.ids import new_id
from ouipost.db.tables import events
from ouipost.webhooks.dispatch import prepare_dispatch_many
from ouipost.webhooks.event_types import TYPES


async def record_event(
    conn: AsyncConnection, event_type: str, data: Mapping[str, Any], *, workspace_id: str | None, now: datetime
) -> str:
    """Add an event to the outbox; it is delivered only if the caller's transaction commits."""
    return (await record_events(conn, [(event_type, data, workspace_id)], now=now))[0]


async def record_events(
    conn: AsyncConnection, items: Sequence[tuple[str, Mapping[str, Any], str | None]], *, now: datetime
) -> list[str]:
    """Add events (type, data, workspace id) to the outbox in one INSERT, in the caller's transaction."""
    for event_type, _, _ in items:
        if event_type not in TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
    # Webhooks: a dispatch job follows in this transaction, or the event needs none (no subscriber).
    pending = await prepare_dispatch_many(conn, {t for t, _, _ in items}, now=now)
    rows: list[dict[str, Any]] = [
        {"id": new_id("evt"), "type": event_type, "workspace_id": workspace_id, "payload": dict(data),
         "created_at": now, "dispatched_at": None if event_type in pending else now}
        for event_type, data, workspace_id in items
    ]
    if rows:
        await conn.execute(events.insert(), rows)
    return [r["id"] for r in rows]
