"""Periodic jobs: exactly one live job per periodic kind, which re-enqueues itself.

A periodic job has a fixed unique key (`periodic:<kind>`). Workers call `ensure_periodic_jobs`
when they start and every prune interval: the unique index turns every call after the first into
a no-op, so however many workers start at once, one chain exists. Each run first hands its key to
its successor (`schedule_next_run`): in one transaction it clears its own `live_key` and enqueues
the next run under the same key. Doing that before the work means a run that fails cannot break
the chain; a run retried after a crash finds the successor already there (its enqueue is a no-op).

Handing a key over is `queue.release_unique_key`, also how a publish job held back by pacing gives
way to a fresh job (workers/publish_post.py): waiting must not use up attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.accounts.statuses import AccountStatus
from ouipost.core.clock import Clock
from ouipost.db.tables import social_accounts
from ouipost.housekeeping import service as housekeeping
from ouipost.jobs import queue
from ouipost.webhooks import dispatch as webhook_dispatch

log = logging.getLogger("ouipost.periodic")

REFRESH_TOKENS_KIND = "refresh_tokens"
HOUSEKEEPING_KIND = "housekeeping"


async def _has_expiring_tokens(conn: AsyncConnection, now: datetime) -> bool:
    """Any active account whose token expires at all: only then is a refresh chain worth running."""
    found = await conn.scalar(
        sa.select(social_accounts.c.id)
        .where(social_accounts.c.status == AccountStatus.ACTIVE, social_accounts.c.token_expires_at.is_not(None))
        .limit(1)
    )
    return found is not None


@dataclass(frozen=True)
class Periodic:
    kind: str
    every_seconds: float
    queue: str = queue.DEFAULT_QUEUE
    # Started only when this says so (checked again at every ensure), so that an installation with
    # nothing to do runs no chain, and the queue stays empty for tests that count jobs. Given the
    # clock's time, for predicates about age.
    needed: Callable[[AsyncConnection, datetime], Awaitable[bool]] | None = None


async def _webhook_active(conn: AsyncConnection, now: datetime) -> bool:
    return await webhook_dispatch.sweep_needed(conn)


PERIODIC: tuple[Periodic, ...] = (
    Periodic(REFRESH_TOKENS_KIND, 300.0, needed=_has_expiring_tokens),
    Periodic(webhook_dispatch.DISPATCH_KIND, 60.0, queue=webhook_dispatch.QUEUE, needed=_webhook_active),
    Periodic(HOUSEKEEPING_KIND, 600.0, needed=housekeeping.anything_to_prune),
)


def periodic_key(kind: str) -> str:
    return f"periodic:{kind}"


def periodic(kind: str) -> Periodic:
    for entry in PERIODIC:
        if entry.kind == kind:
            return entry
    raise KeyError(kind)


async def ensure_periodic_jobs(engine: AsyncEngine, clock: Clock, kinds: Collection[str] | None = None) -> list[str]:
    """Enqueue, due now, each periodic job (of `kinds`, when given) that has no live job yet.

    Returns the kinds enqueued. Safe to call from every worker at once (the unique key dedupes).
    Database errors propagate.
    """
    started = []
    for entry in PERIODIC:
        if kinds is not None and entry.kind not in kinds:
            continue
        async with engine.begin() as conn:
            if entry.needed is not None and not await entry.needed(conn, clock.now()):
                continue
            job_id = await queue.enqueue(
                conn, kind=entry.kind, payload={}, queue=entry.queue, now=clock.now(),
                unique_key=periodic_key(entry.kind), max_attempts=3,
            )
        if job_id is not None:
            log.info("periodic job %s enqueued (every %gs)", entry.kind, entry.every_seconds)
            started.append(entry.kind)
    return started


async def schedule_next_run(engine: AsyncEngine, job: queue.Job, now: datetime) -> int | None:
    """Hand this periodic job's key to its next run, `every_seconds` from now. Returns the new id,
    or None when a live successor already exists (a retried run)."""
    entry = periodic(job.kind)
    async with engine.begin() as conn:
        await queue.release_unique_key(conn, job)
        return await queue.enqueue(
            conn, kind=job.kind, payload=dict(job.payload), queue=job.queue, now=now,
            run_at=now + timedelta(seconds=entry.every_seconds), unique_key=periodic_key(job.kind), max_attempts=3,
        )
