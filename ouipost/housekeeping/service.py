"""Housekeeping: delete the rows nobody needs any more, table by table, in small batches.

The periodic `housekeeping` job (workers/housekeeping.py, every 10 minutes) calls `run_housekeeping`.
One rule per kind of row says which rows may go; none of them touches a row that something live
still reads:

- platform_calls: outcomes of network calls, by `at`. 30 days (setting platform_calls).
- webhook_deliveries: succeeded and failed deliveries, by `created_at`; a pending one (its job is
  queued) never. 30 days (webhook_deliveries).
- events: outbox events fanned out to the webhooks, by `dispatched_at`; an undispatched one never.
  A delivery keeps its own copy of the payload, so nothing reads a dispatched event. 7 days (events).
- idempotency_keys: stored answers, by `created_at` (a key past 24 h is free again anyway).
  24 hours (idempotency_keys, never less).
- oauth_states: by `expires_at` (an expired state is refused whether its row exists or not).
  1 hour after expiry (oauth_states).
- done_jobs, failed_jobs: finished jobs, by `finished_at`; a queued or running one never.
  7 and 30 days (done_jobs, failed_jobs; failed jobs show in admin stats).
- login_failures: failures older than any lock can use. admin_auth.FAILURE_RETENTION (30 min), fixed.
- admin_sessions: sessions past `expires_at` (their tokens fail on exp; a revoked one expires within
  24 h of its issue). Fixed.
- rate_limit_counters: windows an hour past (the limits are counted in Redis or the process now; the
  rows written before go). Fixed.

Usage rows (`api_key_usage`) are history shown to admins and are never pruned; analytics tables
belong to ouipost/analytics/service.py.

How a rule deletes, so that it never holds long locks on MariaDB:

    SELECT <primary key> FROM t WHERE <rule> ORDER BY <index columns>, <key> LIMIT 1000   -- plain read
    DELETE FROM t WHERE <primary key> IN (...) AND <rule>                                 -- own transaction

The SELECT walks the index that serves the rule (named on each rule) from its oldest end, takes no
lock and stops after 1,000 rows; the DELETE locks exactly those rows by primary key, checks the rule
again (a row that changed meanwhile stays) and commits. At most `max_batches` batches per rule and
run; the next run takes what is left. Database errors propagate (the job is retried).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.db.admin_tables import (
    admin_sessions,
    login_failures,
    platform_calls,
    rate_limit_counters,
    webhook_deliveries,
)
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import events, idempotency_keys, oauth_states
from ouipost.housekeeping.retention import Retention
from ouipost.identity.admin_auth import FAILURE_RETENTION

log = logging.getLogger("ouipost.housekeeping.service")

BATCH_SIZE = 1000  # rows per transaction
MAX_BATCHES = 50  # per rule and run: at most 50,000 rows of a table per run, the rest next run
# The periodic job starts only once some row is this old (workers/periodic.py), so an installation
# that has just started (and a test that counts jobs) runs no housekeeping chain.
STARTS_AFTER = timedelta(hours=1)
RATE_LIMIT_WINDOW_RETENTION = timedelta(hours=1)

Condition = Callable[[datetime], sa.ColumnElement[bool]]


@dataclass(frozen=True)
class Rule:
    """Which rows of `table` may go, given the cutoff (now minus the retention)."""

    name: str
    table: sa.Table
    prunable: Condition
    order_by: tuple[sa.ColumnElement[Any], ...]  # the serving index's columns, then the primary key
    setting: str | None  # the OUIPOST_RETENTION name; None: `fixed` applies
    fixed: timedelta = timedelta(0)

    @property
    def key(self) -> tuple[sa.Column[Any], ...]:
        return tuple(self.table.primary_key.columns)

    def retention(self, configured: Retention) -> timedelta | None:
        return configured.of(self.setting) if self.setting is not None else self.fixed


@dataclass(frozen=True)
class PruneReport:
    """What one rule deleted in one run."""

    rule: str
    deleted: int
    batches: int
    longest_transaction_seconds: float
    more: bool  # stopped at max_batches with rows left: the next run goes on


# --- the rules: one named condition per kind of row ------------------------------------------


def old_platform_calls(cutoff: datetime) -> sa.ColumnElement[bool]:
    """platform_calls WHERE at < :cutoff (ix_platform_calls_at)."""
    return platform_calls.c.at < cutoff


def old_finished_deliveries(cutoff: datetime) -> sa.ColumnElement[bool]:
    """webhook_deliveries WHERE created_at < :cutoff AND status IN ('succeeded', 'failed')
    (ix_webhook_deliveries_created_at). A pending delivery has a deliver_webhook job queued (or the
    dispatch sweep re-enqueues one), which reads its row: kept whatever its age."""
    return sa.and_(webhook_deliveries.c.created_at < cutoff, webhook_deliveries.c.status.in_(("succeeded", "failed")))


def old_dispatched_events(cutoff: datetime) -> sa.ColumnElement[bool]:
    """events WHERE dispatched_at < :cutoff (ix_events_dispatched_at_created_at). NULL (not yet
    fanned out to the webhooks) never matches: the dispatch job still has to read those."""
    return events.c.dispatched_at < cutoff


def old_idempotency_keys(cutoff: datetime) -> sa.ColumnElement[bool]:
    """idempotency_keys WHERE created_at < :cutoff (ix_idempotency_keys_created_at)."""
    return idempotency_keys.c.created_at < cutoff


def expired_oauth_states(cutoff: datetime) -> sa.ColumnElement[bool]:
    """oauth_states WHERE expires_at < :cutoff (ix_oauth_states_expires_at)."""
    return oauth_states.c.expires_at < cutoff


def old_jobs(status: str) -> Condition:
    """jobs WHERE finished_at < :cutoff AND status = :status (ix_jobs_finished_at; finished_at is
    NULL while a job is queued or running, so live jobs are not even in the range)."""

    def condition(cutoff: datetime) -> sa.ColumnElement[bool]:
        return sa.and_(jobs.c.finished_at < cutoff, jobs.c.status == status)

    return condition


def old_login_failures(cutoff: datetime) -> sa.ColumnElement[bool]:
    """login_failures WHERE at < :cutoff, walked in id order (the primary key: ids grow with time,
    and the table holds half an hour of failures), as the login path prunes them."""
    return login_failures.c.at < cutoff


def expired_admin_sessions(cutoff: datetime) -> sa.ColumnElement[bool]:
    """admin_sessions WHERE expires_at < :cutoff (ix_admin_sessions_expires_at)."""
    return admin_sessions.c.expires_at < cutoff


def old_rate_limit_windows(cutoff: datetime) -> sa.ColumnElement[bool]:
    """rate_limit_counters WHERE window_start < :cutoff (epoch seconds), in primary-key order."""
    return rate_limit_counters.c.window_start < int(cutoff.timestamp())


RULES: tuple[Rule, ...] = (
    Rule("platform_calls", platform_calls, old_platform_calls, (platform_calls.c.at, platform_calls.c.id),
         "platform_calls"),
    Rule("webhook_deliveries", webhook_deliveries, old_finished_deliveries,
         (webhook_deliveries.c.created_at, webhook_deliveries.c.id), "webhook_deliveries"),
    Rule("events", events, old_dispatched_events, (events.c.dispatched_at, events.c.created_at, events.c.id),
         "events"),
    Rule("idempotency_keys", idempotency_keys, old_idempotency_keys,
         (idempotency_keys.c.created_at, idempotency_keys.c.api_key_id, idempotency_keys.c.key), "idempotency_keys"),
    Rule("oauth_states", oauth_states, expired_oauth_states, (oauth_states.c.expires_at, oauth_states.c.state_hash),
         "oauth_states"),
    # Done first: anything_to_prune then finds the common case at once, and in a steady state the
    # failed rule's range (past 30 days) holds no done job left to step over.
    Rule("done_jobs", jobs, old_jobs("done"), (jobs.c.finished_at, jobs.c.id), "done_jobs"),
    Rule("failed_jobs", jobs, old_jobs("failed"), (jobs.c.finished_at, jobs.c.id), "failed_jobs"),
    Rule("login_failures", login_failures, old_login_failures, (login_failures.c.id,), None, FAILURE_RETENTION),
    Rule("admin_sessions", admin_sessions, expired_admin_sessions,
         (admin_sessions.c.expires_at, admin_sessions.c.jti), None),
    Rule("rate_limit_counters", rate_limit_counters, old_rate_limit_windows,
         (rate_limit_counters.c.key_id, rate_limit_counters.c.window_start), None, RATE_LIMIT_WINDOW_RETENTION),
)


def rule(name: str) -> Rule:
    """The rule called `name`; KeyError for another name."""
    for entry in RULES:
        if entry.name == name:
            return entry
    raise KeyError(name)


# --- running them -----------------------------------------------------------------------------


async def run_housekeeping(
    engine: AsyncEngine,
    now: datetime,
    retention: Retention,
    *,
    rules: Sequence[Rule] = RULES,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> list[PruneReport]:
    """Prune every rule's rows past its retention (a setting `off` skips the rule), in batches.

    Returns one report per rule run. Database errors propagate; what was committed before stays
    deleted, and the next run goes on from there.
    """
    reports = []
    for entry in rules:
        age = entry.retention(retention)
        if age is None:
            continue
        reports.append(await prune(engine, entry, now - age, batch_size=batch_size, max_batches=max_batches))
    deleted = {r.rule: r.deleted for r in reports if r.deleted}
    if deleted:
        log.info("housekeeping deleted %s", ", ".join(f"{n} {name}" for name, n in deleted.items()))
    return reports


async def prune(
    engine: AsyncEngine, entry: Rule, cutoff: datetime, *, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> PruneReport:
    """Delete the rows of `entry` older than `cutoff`, `batch_size` per transaction, at most
    `max_batches` transactions (see the module doc). Database errors propagate."""
    if batch_size < 1 or max_batches < 1:
        raise ValueError("batch_size and max_batches must be 1 or more")
    condition = entry.prunable(cutoff)
    select = sa.select(*entry.key).where(condition).order_by(*entry.order_by).limit(batch_size)
    deleted = batches = 0
    longest = 0.0
    full = False
    while batches < max_batches:
        async with engine.connect() as conn:
            keys = [tuple(row) for row in await conn.execute(select)]
            await conn.rollback()
        if not keys:
            full = False
            break
        started = time.perf_counter()
        async with engine.begin() as conn:
            result = await conn.execute(sa.delete(entry.table).where(_key_in(entry.key, keys), condition))
        longest = max(longest, time.perf_counter() - started)
        deleted += result.rowcount
        batches += 1
        full = len(keys) == batch_size
        if not full:
            break
    if full:
        log.info("housekeeping: %s has more than %d rows to prune; the next run goes on", entry.name, deleted)
    return PruneReport(entry.name, deleted, batches, longest, full)


def _key_in(columns: tuple[sa.Column[Any], ...], keys: list[tuple[Any, ...]]) -> sa.ColumnElement[bool]:
    if len(columns) == 1:
        return columns[0].in_([key[0] for key in keys])
    # Composite keys: a row-value IN, a range access on the primary key on MariaDB 10.3+ (EXPLAIN:
    # type range, key PRIMARY) and on SQLite.
    return sa.tuple_(*columns).in_(keys)


async def anything_to_prune(conn: AsyncConnection, now: datetime) -> bool:
    """Whether some row of some rule is at least STARTS_AFTER past its reference time: only then
    does the periodic job start (workers/periodic.py). One indexed LIMIT 1 read per rule."""
    cutoff = now - STARTS_AFTER
    for entry in RULES:
        found = await conn.scalar(
            sa.select(sa.literal(1)).select_from(entry.table).where(entry.prunable(cutoff)).limit(1)
        )
        if found is not None:
            return True
    return False
