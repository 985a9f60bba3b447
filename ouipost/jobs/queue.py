"""The jobs queue: every query it runs, named, in one place. The worker loop is `workers/worker.py`.

Lifecycle (status): queued -> running -> done | failed; running -> queued on a retry, a released
lease (graceful shutdown) or an expired lease (the worker died).

- `enqueue` inserts in the caller's transaction: the job exists if and only if the caller commits.
  Live jobs are deduplicated by `unique_key` through a unique index, never check-then-insert.
- `claim_due_jobs` takes up to n due jobs in one short transaction: MySQL/MariaDB and PostgreSQL
  `SELECT ... FOR UPDATE SKIP LOCKED` then one UPDATE by primary keys (READ COMMITTED, so no gap
  locks); SQLite runs the same two statements inside `BEGIN IMMEDIATE`, whose writer lock gives the
  same exclusivity. Each claim counts as an attempt and takes a lease (`locked_until`).
- Jobs run outside any transaction. `extend_leases` (heartbeat) keeps the lease of running jobs;
  `recover_expired_leases` hands the jobs of a dead worker back to the queue.
- `complete_jobs` acknowledges many jobs in one UPDATE; it, `fail_or_retry` and `release_jobs` are
  fenced on `locked_by`, so a worker whose lease expired cannot overwrite a newer claim.
- Finished jobs are deleted past their retention by the `housekeeping` job (ouipost/housekeeping/service.py).

Times come from the caller (the injectable clock), so every process must keep its clock in sync
(NTP); a skew shortens or lengthens leases by as much.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.db.batch import NOW, expanding, immediate_transaction, run_transaction
from ouipost.db.queue_tables import jobs, workers

log = logging.getLogger("ouipost.jobs.queue")

DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 100
DEFAULT_MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 3600.0
MAX_ERROR_LENGTH = 4000  # last_error is for people; a whole traceback page is not


class RetryJob(Exception):
    """Raised by a handler: try again later (after `retry_after` seconds when given, else backoff).

    Counts as an attempt; after max_attempts the job is failed with this message.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobFailed(Exception):
    """Raised by a handler: the job cannot succeed; fail it now, no retry."""


@dataclass(frozen=True)
class Job:
    """A claimed job, as its handler and the worker see it."""

    id: int
    queue: str
    kind: str
    payload: dict[str, Any]
    attempts: int  # including the current one
    max_attempts: int
    run_at: datetime
    unique_key: str | None
    locked_by: str


@dataclass(frozen=True)
class NewJob:
    """One job for `enqueue_many`."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    run_at: datetime | None = None
    priority: int = DEFAULT_PRIORITY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class QueueStats:
    """What health endpoints show about the queue."""

    by_status: dict[str, int]
    due: int  # queued and due, not claimed yet
    oldest_due_at: datetime | None
    oldest_due_age_seconds: float | None
    workers_alive: int


# --- enqueue ---------------------------------------------------------------------------------


async def enqueue(
    conn: AsyncConnection,
    *,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    queue: str = DEFAULT_QUEUE,
    run_at: datetime | None = None,
    priority: int = DEFAULT_PRIORITY,
    unique_key: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> int | None:
    """Insert a job in the caller's transaction; return its id, or None when a live (queued or
    running) job with the same `unique_key` exists.

    The job becomes visible to workers when the caller commits; call `notify_enqueued(waker)` after
    the commit to wake the embedded workers at once. The duplicate check is the unique index on
    live_key: on a conflict only this insert is undone (a SAVEPOINT on MySQL, ON CONFLICT DO
    NOTHING on SQLite, whose driver cannot nest a SAVEPOINT in a transaction that has not written
    yet, and on PostgreSQL, where it costs no subtransaction), so the caller's transaction goes on.
    Other integrity errors propagate.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be 1 or more")
    values = _new_job_values(
        NewJob(kind, payload, queue, run_at, priority, max_attempts), now=now, unique_key=unique_key
    )
    if unique_key is None:
        result = await conn.execute(sa.insert(jobs).values(values))
        return _inserted_id(result)
    if conn.dialect.name in ("sqlite", "postgresql"):
        insert = sqlite_dialect.insert(jobs) if conn.dialect.name == "sqlite" else postgresql_dialect.insert(jobs)
        stmt = insert.values(values).on_conflict_do_nothing(index_elements=["live_key"]).returning(jobs.c.id)
        job_id = (await conn.execute(stmt)).scalar()
        return None if job_id is None else int(job_id)
    try:
        async with conn.begin_nested():
            result = await conn.execute(sa.insert(jobs).values(values))
    except IntegrityError as exc:
        if _is_live_key_conflict(exc):
            return None
        raise
    return _inserted_id(result)


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    """The id of the one row an INSERT added."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT of a job gave no primary key")
    return int(key[0])


async def enqueue_many(conn: AsyncConnection, new_jobs: Iterable[NewJob], *, now: datetime) -> int:
    """Insert many jobs (no unique keys) in one multi-row INSERT in the caller's transaction.

    Returns how many were inserted. For fan-outs and benchmarks; ids are not returned.
    """
    rows = [_new_job_values(job, now=now, unique_key=None) for job in new_jobs]
    if rows:
        await conn.execute(sa.insert(jobs), rows)
    return len(rows)


async def enqueue_unique_many(conn: AsyncConnection, new_jobs: Sequence[tuple[NewJob, str]], *, now: datetime) -> None:
    """Insert many jobs, each with its unique key, in one multi-row INSERT in the caller's
    transaction; a job whose key already has a live job is skipped (the others are inserted).
    Nothing is returned: which ones were skipped is not known (use `enqueue` when it matters)."""
    rows = [_new_job_values(job, now=now, unique_key=key) for job, key in new_jobs]
    if not rows:
        return
    await conn.execute(_INSERT_UNLESS_LIVE.get(conn.dialect.name, _INSERT_UNLESS_LIVE_MYSQL), rows)


# By the dialects that know ON CONFLICT.
_INSERT_UNLESS_LIVE = {
    "sqlite": sqlite_dialect.insert(jobs).on_conflict_do_nothing(index_elements=["live_key"]),
    "postgresql": postgresql_dialect.insert(jobs).on_conflict_do_nothing(index_elements=["live_key"]),
}
# ON DUPLICATE KEY UPDATE live_key = live_key: the live job stays as it is (INSERT IGNORE would also
# hide other errors).
_INSERT_UNLESS_LIVE_MYSQL = mysql_dialect.insert(jobs).on_duplicate_key_update(live_key=jobs.c.live_key)


# How many jobs this process has enqueued (committed or not). A worker reads it after each job it
# ran: when the job's handler enqueued more (a post's follow-ups, a webhook dispatch), it claims at
# once instead of after its poll interval; the handler has committed by the time it returns.
_enqueued_here = 0


def enqueued_here() -> int:
    return _enqueued_here


def _new_job_values(job: NewJob, *, now: datetime, unique_key: str | None) -> dict[str, Any]:
    global _enqueued_here
    _enqueued_here += 1
    return {
        "queue": job.queue, "kind": job.kind, "payload": job.payload, "unique_key": unique_key,
        "live_key": unique_key, "status": "queued", "priority": job.priority, "run_at": job.run_at or now,
        "attempts": 0, "max_attempts": job.max_attempts, "created_at": now,
    }


def _is_live_key_conflict(exc: IntegrityError) -> bool:
    # MySQL: (1062, "Duplicate entry 'x' for key 'uq_jobs_live_key'")
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == 1062 and "uq_jobs_live_key" in str(exc.orig)


class Waker(Protocol):
    """What can be told that jobs were enqueued: a worker of this process (workers.worker.Worker)."""

    def wake(self) -> None:
        """Claim at once instead of at the next poll."""


def notify_enqueued(waker: Waker | None) -> None:
    """Wake this process's worker (the app's embedded one: `app.get(WORKER)`) so that a job enqueued
    here runs at once.

    Call it after the enqueuing transaction committed (earlier, the worker would not see the job
    and go back to sleep). Does nothing without a worker (None); standalone workers in other
    processes find the job at their next poll.
    """
    if waker is not None:
        waker.wake()


# --- one live job, by its unique key -----------------------------------------------------------
# A unique key names the one live (queued or running) job of something: a post's publish job, a
# target's analytics sync, a periodic chain. These act on that job through its key, in the caller's
# transaction, so that the change commits with the work that asked for it.


async def reschedule_queued(
    conn: AsyncConnection, unique_key: str, run_at: datetime, *, priority: int | None = None
) -> bool:
    """Move the queued job holding `unique_key` to `run_at` (and `priority`, when given):

        UPDATE jobs SET run_at = :run_at [, priority = :priority] WHERE live_key = :key AND status = 'queued'

    False when no job with that key is queued (none at all, or it is running: a running job is never
    moved; its handler reads the state it works on and decides). The caller then usually enqueues.
    """
    values: dict[str, Any] = {"run_at": run_at}
    if priority is not None:
        values["priority"] = priority
    moved = await conn.execute(
        sa.update(jobs).where(jobs.c.live_key == unique_key, jobs.c.status == "queued").values(values)
    )
    return moved.rowcount > 0


async def drop_queued(conn: AsyncConnection, unique_key: str) -> bool:
    """Delete the queued job holding `unique_key`; False when none is queued. A running one is left
    alone: its handler finds that its work is no longer wanted (the post unscheduled) and stops."""
    dropped = await conn.execute(
        sa.delete(jobs).where(jobs.c.live_key == unique_key, jobs.c.status == "queued")
    )
    return dropped.rowcount > 0


async def has_live_job(conn: AsyncConnection, unique_key: str) -> bool:
    """Whether a queued or running job holds `unique_key`. Only a hint that spares a doomed insert:
    the unique index, through `enqueue`, is what decides."""
    return await conn.scalar(sa.select(jobs.c.id).where(jobs.c.live_key == unique_key)) is not None


async def release_unique_key(conn: AsyncConnection, job: Job) -> bool:
    """Let a running job's unique key go, in the caller's transaction, so that a successor can be
    enqueued under the same key before this job is acknowledged (the queue frees a key only when
    the job finishes, after its handler returned):

        UPDATE jobs SET live_key = NULL WHERE id = :id AND status = 'running' AND locked_by = :locked_by

    Periodic chains hand their key to the next run this way, a publish job held back by pacing to a
    fresh job, an analytics sync to the next sync. Fenced on the claimant like every outcome: False
    when the job is no longer ours (its lease expired and another worker runs it); the successor's
    enqueue then finds the key taken and is a no-op. On MariaDB the UPDATE waits for a transaction
    whose enqueue was deduplicated against this key (it holds the key's index entry) and on SQLite
    it takes the writer lock, which ouipost/webhooks/dispatch.py relies on.
    """
    result = await conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job.id, jobs.c.status == "running", jobs.c.locked_by == job.locked_by)
        .values(live_key=None)
    )
    return result.rowcount > 0


# --- claim -------------------------------------------------------------------------------------

CLAIM_INDEX = "ix_jobs_status_priority_run_at_id"
QUEUE_CLAIM_INDEX = "ix_jobs_queue_status_priority_run_at_id"

_JOB_COLUMNS = (
    jobs.c.id, jobs.c.queue, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts,
    jobs.c.run_at, jobs.c.unique_key,
)


def claim_query(queues: Sequence[str] | None, limit: int, now: datetime) -> sa.Select[Any]:
    """The claim's SELECT. Served by ix_jobs_status_priority_run_at_id (see queue_tables.py):

        SELECT id, queue, kind, payload, attempts, max_attempts, run_at, unique_key
        FROM jobs FORCE INDEX (ix_jobs_status_priority_run_at_id)
        WHERE status = 'queued' AND run_at <= :now [AND queue IN (:queues)]
        ORDER BY priority, run_at, id LIMIT :limit FOR UPDATE SKIP LOCKED

    or, for a single queue, by ix_jobs_queue_status_priority_run_at_id with `queue = :queue`.

    SQLite ignores FOR UPDATE; its claim runs inside BEGIN IMMEDIATE instead.
    """
    query = (
        sa.select(*_JOB_COLUMNS)
        .where(jobs.c.status == "queued", jobs.c.run_at <= now)
        .order_by(jobs.c.priority, jobs.c.run_at, jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        # On a small table the optimizer prefers a table scan and a filesort, and a filesort under
        # FOR UPDATE locks every due row, not `limit` of them: concurrent claims would then find
        # everything skipped. Forcing the index keeps the plan the same at every size.
        .with_hint(jobs, f"FORCE INDEX ({claim_index(queues)})", dialect_name="mysql")
    )
    if queues and len(queues) == 1:
        query = query.where(jobs.c.queue == queues[0])
    elif queues:
        query = query.where(jobs.c.queue.in_(list(queues)))
    return query


def claim_index(queues: Sequence[str] | None) -> str:
    """The index a claim of `queues` uses: the per-queue one for a single queue, else the shared one."""
    return QUEUE_CLAIM_INDEX if queues and len(queues) == 1 else CLAIM_INDEX


async def claim_due_jobs(
    engine: AsyncEngine,
    worker_id: str,
    queues: Sequence[str] | None,
    limit: int,
    lease_seconds: float,
    now: datetime,
) -> list[Job]:
    """Claim up to `limit` due jobs of `queues` (None: every queue) for `worker_id`.

    Each claimed job is `running`, counts one more attempt and is leased until now + lease_seconds.
    No job is ever claimed by two workers: MySQL and PostgreSQL skip rows another claim holds (SKIP LOCKED),
    SQLite serialises claims on its writer lock. Database errors propagate (nothing is claimed).
    """
    if limit < 1:
        return []
    until = now + timedelta(seconds=lease_seconds)
    select = claim_query(queues, limit, now)
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            # Peek first without the writer lock: an idle poll must not queue behind writers.
            peek = sa.select(jobs.c.id).where(select.whereclause).limit(1)  # type: ignore[arg-type]
            if (await conn.execute(peek)).first() is None:
                await conn.rollback()
                return []
            await conn.rollback()
            return await _claim_sqlite(conn, select, worker_id, until)

    async def take(conn: AsyncConnection) -> Sequence[sa.Row[Any]]:
        rows = (await conn.execute(select)).all()
        if rows:
            await conn.execute(_mark_claimed([r.id for r in rows], worker_id, until))
        return rows

    # Concurrent claims lock disjoint rows (SKIP LOCKED), but updating their index entries can still
    # meet in a deadlock now and then; a claim rolled back claimed nothing, so it simply runs again.
    rows = await run_transaction(engine, take)
    claimed = _claimed(rows, worker_id)
    if claimed:
        log.debug("claimed %d job(s) for %s", len(claimed), worker_id)
    return claimed


async def _claim_sqlite(conn: AsyncConnection, select: sa.Select[Any], worker_id: str, until: datetime) -> list[Job]:
    async with immediate_transaction(conn):
        rows = (await conn.execute(select)).all()
        if rows:
            await conn.execute(_mark_claimed([r.id for r in rows], worker_id, until))
    claimed = _claimed(rows, worker_id)
    if claimed:
        log.debug("claimed %d job(s) for %s", len(claimed), worker_id)
    return claimed


def _mark_claimed(ids: list[int], worker_id: str, until: datetime) -> sa.Update:
    # UPDATE jobs SET status='running', attempts=attempts+1, locked_by=:w, locked_until=:until
    # WHERE id IN (:ids)   -- rows this transaction holds, by primary key
    return (
        sa.update(jobs).where(jobs.c.id.in_(ids))
        .values(status="running", attempts=jobs.c.attempts + 1, locked_by=worker_id, locked_until=until)
    )


def _claimed(rows: Sequence[sa.Row[Any]], worker_id: str) -> list[Job]:
    return [
        Job(
            id=r.id, queue=r.queue, kind=r.kind, payload=r.payload, attempts=r.attempts + 1,
            max_attempts=r.max_attempts, run_at=r.run_at, unique_key=r.unique_key, locked_by=worker_id,
        )
        for r in rows
    ]


async def next_run_at(
    engine: AsyncEngine, queues: Sequence[str] | None, now: datetime, horizon: datetime
) -> datetime | None:
    """The earliest run_at of a queued job due after `now` and no later than `horizon`, if any.

    An idle worker sleeps until then instead of a whole poll interval. Reads the claim index's
    `status = 'queued'` prefix (no row lookups without a queue filter).
    """
    query = sa.select(sa.func.min(jobs.c.run_at)).where(
        jobs.c.status == "queued", jobs.c.run_at > now, jobs.c.run_at <= horizon
    )
    if queues:
        query = query.where(jobs.c.queue.in_(list(queues)))
    async with engine.connect() as conn:
        value = (await conn.execute(query)).scalar()
    return _as_utc(value)


def _as_utc(value: datetime | str | None) -> datetime | None:
    # MIN() of a UTCDateTime column comes back without the column's type: naive, or text on SQLite.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- leases ------------------------------------------------------------------------------------


async def extend_leases(engine: AsyncEngine, ids: Sequence[int], worker_id: str, until: datetime) -> int:
    """Heartbeat: extend the lease of these running jobs of `worker_id` to `until`.

    Returns how many leases were extended; fewer than len(ids) means some were lost (expired and
    taken over), and their outcome will be refused by the fence.
    """
    if not ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.update(jobs)
            .where(jobs.c.id.in_(list(ids)), jobs.c.status == "running", jobs.c.locked_by == worker_id)
            .values(locked_until=until)
        )
    return result.rowcount


async def recover_expired_leases(engine: AsyncEngine, now: datetime) -> tuple[int, int]:
    """Hand back the jobs whose lease passed (their worker died or stalled).

    A job with attempts left goes back to `queued` (keeping its run_at, so it is claimed first);
    its next claim counts as a new attempt. A job that used its last attempt is `failed`.
    Returns (requeued, failed). Safe to run from every worker at once: each row moves once.

    The expired ids are found by a plain (non-locking) read of the claim index's `running` prefix,
    then updated by primary key with the condition checked again. An UPDATE that locked through
    the secondary index would take its locks in the opposite order to the claims' and acks'
    primary-key updates, and deadlock with them.
    """
    expired = sa.and_(jobs.c.status == "running", jobs.c.locked_until < now)
    async with engine.begin() as conn:
        ids = (await conn.execute(sa.select(jobs.c.id).where(expired).order_by(jobs.c.id))).scalars().all()
        if not ids:
            return 0, 0
        mine = sa.and_(jobs.c.id.in_(ids), expired)
        failed = await conn.execute(
            sa.update(jobs).where(mine, jobs.c.attempts >= jobs.c.max_attempts).values(
                status="failed", live_key=None, locked_until=None, finished_at=now,
                last_error="lease expired while running (the worker stopped or stalled); no attempts left",
            )
        )
        requeued = await conn.execute(
            sa.update(jobs).where(mine).values(status="queued", locked_by=None, locked_until=None)
        )
    if requeued.rowcount or failed.rowcount:
        log.warning("recovered expired leases: %d requeued, %d failed", requeued.rowcount, failed.rowcount)
    return requeued.rowcount, failed.rowcount


async def release_jobs(engine: AsyncEngine, ids: Sequence[int], worker_id: str) -> int:
    """Give unfinished jobs back to the queue (graceful shutdown): queued, the attempt not counted.

    Fenced on locked_by; returns how many were released.
    """
    if not ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.update(jobs)
            .where(jobs.c.id.in_(list(ids)), jobs.c.status == "running", jobs.c.locked_by == worker_id)
            .values(status="queued", attempts=jobs.c.attempts - 1, locked_by=None, locked_until=None)
        )
    return result.rowcount


# --- outcomes ----------------------------------------------------------------------------------


async def complete_jobs(engine: AsyncEngine, ids: Sequence[int], worker_id: str, now: datetime) -> int:
    """Acknowledge many jobs as done in one UPDATE:

        UPDATE jobs SET status='done', live_key=NULL, locked_until=NULL, finished_at=:now
        WHERE id IN (:ids) AND status='running' AND locked_by=:worker_id

    The fence means a late worker (its lease expired, another took the job) changes nothing.
    Returns how many jobs were acknowledged.
    """
    if not ids:
        return 0
    async with engine.begin() as conn:
        done = await complete_jobs_in(conn, ids, worker_id, now)
    log.debug("completed %d of %d job(s) for %s", done, len(ids), worker_id)
    return done


_COMPLETE = (
    sa.update(jobs)
    .where(jobs.c.id.in_(expanding()), jobs.c.status == "running", jobs.c.locked_by == sa.bindparam("worker_id"))
    .values(status="done", live_key=None, locked_until=None, finished_at=NOW)
)


async def complete_jobs_in(conn: AsyncConnection, ids: Sequence[int], worker_id: str, now: datetime) -> int:
    """`complete_jobs` in the caller's transaction: a handler can acknowledge its job together with
    the work it did, so the two commit or roll back as one."""
    return (await conn.execute(_COMPLETE, {"ids": list(ids), "worker_id": worker_id, "now": now})).rowcount


def retry_delay(attempts: int, *, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """Seconds before the next try after `attempts` failed: exponential, capped, with jitter.

    Equal jitter (half fixed, half random) keeps retries of a burst from landing together while
    never retrying sooner than half the nominal delay.
    """
    nominal = min(cap, base * 2 ** max(0, attempts - 1))
    return nominal / 2 + random.uniform(0, nominal / 2)


async def fail_or_retry(
    engine: AsyncEngine,
    job: Job,
    error: str,
    now: datetime,
    *,
    retry_after: float | None = None,
    retryable: bool = True,
) -> str | None:
    """Record a failed attempt: back to `queued` after a delay, or `failed` when not retryable or
    out of attempts. `retry_after` (seconds, from the handler) wins over the backoff.

    Fenced on the claimant (job.locked_by). Returns the new status, or None when the job was no
    longer ours (lease lost), in which case nothing changed.
    """
    error = error[:MAX_ERROR_LENGTH]
    ours = sa.and_(jobs.c.id == job.id, jobs.c.status == "running", jobs.c.locked_by == job.locked_by)
    if retryable and job.attempts < job.max_attempts:
        delay = retry_after if retry_after is not None else retry_delay(job.attempts)
        status = "queued"
        values: dict[str, Any] = {
            "status": status, "run_at": now + timedelta(seconds=max(0.0, delay)), "locked_by": None,
            "locked_until": None, "last_error": error,
        }
    else:
        status = "failed"
        values = {"status": status, "live_key": None, "locked_until": None, "finished_at": now, "last_error": error}
    async with engine.begin() as conn:
        result = await conn.execute(sa.update(jobs).where(ours).values(values))
    if not result.rowcount:
        log.warning("job %s: outcome of %s ignored, its lease was lost", job.id, job.locked_by)
        return None
    log.debug("job %s (%s) attempt %d/%d -> %s: %s", job.id, job.kind, job.attempts, job.max_attempts, status, error)
    return status


async def queue_stats(engine: AsyncEngine, now: datetime, *, alive_within: float = 60.0) -> QueueStats:
    """Per-status counts, the due-but-unclaimed jobs and the oldest one's age, and the number of
    workers whose heartbeat is recent (within `alive_within` seconds)."""
    due = sa.and_(jobs.c.status == "queued", jobs.c.run_at <= now)
    async with engine.connect() as conn:
        by_status = {
            row.status: row.n
            for row in await conn.execute(sa.select(jobs.c.status, sa.func.count().label("n")).group_by(jobs.c.status))
        }
        due_row = (await conn.execute(sa.select(sa.func.count(), sa.func.min(jobs.c.run_at)).where(due))).one()
        alive = (await conn.execute(
            sa.select(sa.func.count()).select_from(workers)
            .where(workers.c.heartbeat_at >= now - timedelta(seconds=alive_within))
        )).scalar_one()
    oldest = _as_utc(due_row[1])
    return QueueStats(
        by_status={status: by_status.get(status, 0) for status in ("queued", "running", "done", "failed")},
        due=int(due_row[0]),
        oldest_due_at=oldest,
        oldest_due_age_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        workers_alive=int(alive),
    )


# --- workers' liveness rows --------------------------------------------------------------------


async def register_worker(
    engine: AsyncEngine, worker_id: str, *, hostname: str, pid: int, queues: Sequence[str] | None,
    concurrency: int, now: datetime,
) -> None:
    """Insert this worker's liveness row."""
    async with engine.begin() as conn:
        await conn.execute(sa.insert(workers).values(
            id=worker_id, hostname=hostname[:255], pid=pid, queues=list(queues) if queues else None,
            concurrency=concurrency, started_at=now, heartbeat_at=now,
        ))


async def worker_heartbeat(engine: AsyncEngine, worker_id: str, now: datetime) -> bool:
    """Refresh this worker's row; False when it is gone (pruned as dead while we stalled)."""
    async with engine.begin() as conn:
        result = await conn.execute(sa.update(workers).where(workers.c.id == worker_id).values(heartbeat_at=now))
    return result.rowcount > 0


async def prune_dead_workers(engine: AsyncEngine, older_than: datetime) -> int:
    """Delete the rows of workers whose last heartbeat is before `older_than`."""
    async with engine.begin() as conn:
        result = await conn.execute(sa.delete(workers).where(workers.c.heartbeat_at < older_than))
    return result.rowcount


async def unregister_worker(engine: AsyncEngine, worker_id: str) -> None:
    """Delete this worker's liveness row (clean shutdown)."""
    async with engine.begin() as conn:
        await conn.execute(sa.delete(workers).where(workers.c.id == worker_id))


async def alive_workers(
    conn: AsyncConnection, since: datetime, *, limit: int = 50,
) -> Sequence[sa.Row[*tuple[Any, ...]]]:
    """The workers whose last heartbeat is at or after `since`, oldest started first, at most `limit`:
    rows of (id, hostname, pid, concurrency, started_at, heartbeat_at) for health views."""
    return (await conn.execute(
        sa.select(workers.c.id, workers.c.hostname, workers.c.pid, workers.c.concurrency,
                  workers.c.started_at, workers.c.heartbeat_at)
        .where(workers.c.heartbeat_at >= since)
        .order_by(workers.c.started_at).limit(limit)
    )).all()


async def last_worker_heartbeat(conn: AsyncConnection) -> datetime | None:
    """The latest heartbeat of any worker still registered (alive or not yet pruned)."""
    return await conn.scalar(sa.select(sa.func.max(workers.c.heartbeat_at)))


@dataclass(frozen=True)
class QueueDepth:
    """One queue's jobs right now (metrics at scrape time)."""

    queue: str
    due: int  # queued, run_at passed: waiting for a worker
    scheduled: int  # queued for later
    running: int
    oldest_due_age_seconds: float  # 0 when none is due


async def queue_depths(conn: AsyncConnection, now: datetime) -> list[QueueDepth]:
    """Counts of live jobs per queue, and the age of the oldest due one. One statement served by the
    per-queue claim index (queue, status, priority, run_at, id) alone, without row lookups:

        SELECT queue, SUM(status = 'queued' AND run_at <= :now), SUM(status = 'queued' AND run_at > :now),
               SUM(status = 'running'), MIN(CASE WHEN status = 'queued' AND run_at <= :now THEN run_at END)
        FROM jobs WHERE status IN ('queued', 'running') GROUP BY queue
    """
    due = sa.and_(jobs.c.status == "queued", jobs.c.run_at <= now)
    rows = await conn.execute(
        sa.select(
            jobs.c.queue,
            sa.func.sum(sa.case((due, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(jobs.c.status == "queued", jobs.c.run_at > now), 1), else_=0)),
            sa.func.sum(sa.case((jobs.c.status == "running", 1), else_=0)),
            sa.func.min(sa.case((due, jobs.c.run_at), else_=None)),
        )
        .where(jobs.c.status.in_(("queued", "running")))
        .group_by(jobs.c.queue)
    )
    stats = []
    for name, due_count, scheduled, running, oldest in rows:
        oldest = _as_utc(oldest)
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        stats.append(QueueDepth(name, int(due_count or 0), int(scheduled or 0), int(running or 0), age))
    return stats
