"""Outbox events into webhook deliveries: the rules of `dispatch_events` and `deliver_webhook` jobs.

How an event reaches a webhook:

1. `record_events` (ouipost/webhooks/events.py) calls `prepare_dispatch_many` in the caller's transaction.
   When no active webhook subscribes to the event's type, the event is stored already dispatched (nobody
   to tell; it also keeps the outbox from growing for nothing). Otherwise a `dispatch_events` job
   is enqueued with the live unique key `dispatch_events`: one pending run serves every event, so a
   burst of events makes one job, not one per event.
2. A run (workers/dispatch_events.py) takes up to BATCH_SIZE undispatched events in order
   (created_at, id) and, in ONE transaction (`dispatch_batch`), creates one delivery per active
   webhook subscribed to each (`webhooks.create_delivery`), enqueues a `deliver_webhook` job per
   delivery (unique key per delivery and attempt, `enqueue_attempt`), marks the events dispatched,
   and enqueues a follow-up run when the batch was full. A crash before the commit leaves everything
   as it was; after it, everything is there: nothing lost, nothing doubled.
   Deliveries that already exist for an (endpoint, event) are skipped, and the unique
   (webhook_id, event_id) constraint stays the last guard, so a re-run never duplicates.
3. The run's first statement gives up its own live key (`queue.release_unique_key`). An event committed by
   a transaction whose enqueue was deduplicated against this job is then visible to the run: on
   MariaDB the dedupe holds a lock on the key's index entry that the release waits for; on SQLite
   the writer lock serialises them the same way. An event committed later finds no live job and
   enqueues a new one. Either way no event waits for the safety run below.
4. A periodic safety run (workers/periodic.py: key `periodic:dispatch_events`, every minute while
   an active webhook exists, `sweep_needed`; workers start the chain at start-up and every prune
   interval) dispatches whatever the prompt runs missed (a dispatch job that failed all its attempts
   while the database was away) and re-enqueues the jobs of pending deliveries that are due but have
   none (`requeue_due_deliveries`: a `deliver_webhook` job that failed all its attempts, or a crash
   between an attempt and the enqueue of the next). It hands its key to its successor first, as
   every periodic job does; with no active webhook left it has none, and the chain ends until one
   is active again.

Runs never overlap on the same events: a prompt run and a sweep can be claimed together, so the
batch is read with SELECT ... FOR UPDATE on MariaDB (the second waits, then skips what the first
dispatched) and begins with a write on SQLite (so it holds the single writer lock before reading).

Events recorded before an endpoint existed are not sent to it (with CLOCK_SKEW_MARGIN of slack, so
that clocks of different processes a little apart never lose an event).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.db.admin_tables import webhook_deliveries
from ouipost.db.admin_tables import webhooks as webhooks_table
from ouipost.db.tables import events
from ouipost.jobs import queue
from ouipost.webhooks import service as webhooks

DISPATCH_KIND = "dispatch_events"
QUEUE = "webhooks"  # webhook jobs have their own queue: slow receivers never delay publishing
DISPATCH_KEY = "dispatch_events"
BATCH_SIZE = 100
CLOCK_SKEW_MARGIN = timedelta(seconds=5)
MAX_ATTEMPTS = 10  # database trouble only; the sweep picks up what a failed run left
DELIVER_KIND = "deliver_webhook"  # workers/deliver_webhook.py (named here so both share the key scheme)
DELIVER_MAX_ATTEMPTS = 5

log = logging.getLogger(__name__)


# --- called from the domain (record_event) -------------------------------------------------


async def prepare_dispatch_many(conn: AsyncConnection, event_types: Iterable[str], *, now: datetime) -> set[str]:
    """In the caller's transaction: enqueue a dispatch run when an active webhook subscribes to one
    of `event_types`, and return the subscribed types (events of the others need no dispatch).

    The enqueue is deduplicated on the live key: when a run is already queued or running, it (or
    the run it leads to, see the module docstring) picks these events up. Call it BEFORE inserting
    the events: on MariaDB the enqueue may wait for a running dispatch transaction (which holds the
    key it released), and that transaction's locking read of the outbox must not find an
    uncommitted event of ours to wait for in turn (a deadlock). While it waits, the caller's
    transaction is delayed by one dispatch batch at most. Database errors propagate, so the
    caller's change is rolled back with its events rather than recorded without them.
    """
    subscribed = set(event_types) & await _subscribed_types(conn)
    if subscribed:
        await enqueue_dispatch_run(conn, now=now)
    return subscribed


async def enqueue_dispatch_run(conn: AsyncConnection, *, now: datetime) -> int | None:
    """Enqueue a prompt `dispatch_events` run under the live key DISPATCH_KEY, in the caller's
    transaction; None when one is queued or running already (it, or the run it leads to, takes
    the events: see the module docstring)."""
    return await queue.enqueue(
        conn, kind=DISPATCH_KIND, payload={}, now=now, queue=QUEUE, unique_key=DISPATCH_KEY, max_attempts=MAX_ATTEMPTS,
    )


# --- the dispatch run (workers/dispatch_events.py) -----------------------------------------------


async def dispatch_batch(conn: AsyncConnection, *, now: datetime, limit: int = BATCH_SIZE) -> tuple[int, bool]:
    """In the caller's transaction: dispatch up to `limit` undispatched events, oldest first.

    Returns (events dispatched, whether the batch was full, i.e. more may remain). Raises
    IntegrityError only if another transaction created a delivery for the same (endpoint, event)
    concurrently, which the serialisation of runs rules out; the caller's transaction then rolls
    back whole and the run is retried.
    """
    batch = (await conn.execute(
        sa.select(events.c.id, events.c.type, events.c.payload, events.c.created_at)
        .where(events.c.dispatched_at.is_(None))
        .order_by(events.c.created_at, events.c.id)
        .limit(limit)
        .with_for_update()  # MariaDB: a concurrent run waits here, then skips what this one dispatched
    )).all()
    if not batch:
        return 0, False
    endpoints = await _active_webhooks(conn)
    existing = await _existing_deliveries(conn, [e.id for e in batch])
    for event in batch:
        for endpoint in endpoints:
            if event.type not in endpoint.events or (endpoint.id, event.id) in existing:
                continue
            if event.created_at < endpoint.created_at - CLOCK_SKEW_MARGIN:
                continue  # the endpoint did not exist when this happened
            delivery = await webhooks.create_delivery(
                conn, endpoint.id, event.type, event.payload, now=now, event_id=event.id,
                occurred_at=event.created_at,
            )
            await enqueue_attempt(conn, delivery["id"], attempt=1, run_at=now, now=now)
    await conn.execute(
        events.update().where(events.c.id.in_([e.id for e in batch]), events.c.dispatched_at.is_(None))
        .values(dispatched_at=now)
    )
    return len(batch), len(batch) == limit


async def enqueue_attempt(conn: AsyncConnection, delivery_id: str, *, attempt: int, run_at: datetime,
                          now: datetime) -> int | None:
    """Enqueue the `deliver_webhook` job that makes attempt number `attempt` (from 1) of a delivery.

    The unique key names the delivery and the attempt, so the job of one attempt exists once while
    it is live, however many paths (the previous attempt, the sweep) ask for it. Returns the job id,
    or None when that job is already queued or running.
    """
    return await queue.enqueue(
        conn, kind=DELIVER_KIND, payload={"delivery_id": delivery_id, "attempt": attempt}, now=now, queue=QUEUE,
        run_at=run_at, unique_key=f"{DELIVER_KIND}:{delivery_id}:{attempt}", max_attempts=DELIVER_MAX_ATTEMPTS,
    )


async def requeue_due_deliveries(conn: AsyncConnection, *, now: datetime) -> int:
    """Enqueue the job of every pending delivery that is due (deduplicated against live jobs).

    A due pending delivery normally has its job queued; it has none only after a `deliver_webhook`
    job failed all its attempts or a worker died between an attempt and the next enqueue. Returns
    how many jobs were enqueued.
    """
    added = 0
    for delivery_id in await webhooks.due_delivery_ids(conn, now, limit=BATCH_SIZE):
        attempts = await conn.scalar(
            sa.select(webhook_deliveries.c.attempts).where(webhook_deliveries.c.id == delivery_id)
        )
        if attempts is None:
            continue
        if await enqueue_attempt(conn, delivery_id, attempt=int(attempts) + 1, run_at=now, now=now) is not None:
            added += 1
    if added:
        log.warning("re-queued %d due webhook deliveries that had no job", added)
    return added


# --- helpers -------------------------------------------------------------------------------------


class _Endpoint(NamedTuple):
    """What dispatching needs of an active webhook."""

    id: str
    events: set[str]
    created_at: datetime


async def _active_webhooks(conn: AsyncConnection) -> list[_Endpoint]:
    rows = await conn.execute(
        sa.select(webhooks_table.c.id, webhooks_table.c.events, webhooks_table.c.created_at)
        .where(webhooks_table.c.is_active.is_(True))
        .order_by(webhooks_table.c.id)
    )
    return [_Endpoint(r.id, set(r.events or ()), r.created_at) for r in rows]


async def sweep_needed(conn: AsyncConnection) -> bool:
    """Whether the periodic safety run is worth running: some webhook is active."""
    found = await conn.scalar(sa.select(webhooks_table.c.id).where(webhooks_table.c.is_active.is_(True)).limit(1))
    return found is not None


async def _subscribed_types(conn: AsyncConnection) -> set[str]:
    # The events column is JSON, which the two databases query differently; the table is small
    # (endpoints, not deliveries), so the subscriptions are gathered here.
    rows = await conn.execute(sa.select(webhooks_table.c.events).where(webhooks_table.c.is_active.is_(True)))
    return {event_type for subscribed in rows.scalars() for event_type in (subscribed or ())}


async def _existing_deliveries(conn: AsyncConnection, event_ids: Sequence[str]) -> set[tuple[str, str]]:
    rows = await conn.execute(
        sa.select(webhook_deliveries.c.webhook_id, webhook_deliveries.c.event_id)
        .where(webhook_deliveries.c.event_id.in_(list(event_ids)))
    )
    return {(r.webhook_id, r.event_id) for r in rows}
