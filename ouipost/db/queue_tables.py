"""Tables of the jobs queue: `jobs` (the queue itself) and `workers` (liveness). Shares `metadata`.

A job's life: queued -> running -> done | failed, and running -> queued again on a retry, on a
released lease (graceful shutdown) or when its lease expired (the worker died). Every query the
queue runs is in `ouipost/jobs/queue.py`; the shapes that matter for speed are documented here, next to
the indexes that serve them.
"""

from __future__ import annotations

import sqlalchemy as sa

from ouipost.db.metadata import metadata
from ouipost.db.types import JSON, UTCDateTime

# SQLite only auto-assigns ids to an INTEGER PRIMARY KEY (the rowid); MySQL gets a BIGINT
# AUTO_INCREMENT. A compact integer keeps the claim index and the `id IN (...)` updates small.
JobId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

JOB_STATUSES = ("queued", "running", "done", "failed")

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", JobId, primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("unique_key", sa.String(191), nullable=True),
    # = unique_key while the job is queued or running, NULL once done or failed: the unique
    # constraint below then dedupes live jobs only (both databases allow many NULLs in it).
    sa.Column("live_key", sa.String(191), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),  # lower runs first
    sa.Column("run_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),  # claims so far, the current one included
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("locked_by", sa.String(64), nullable=True),  # the claiming worker's id (the fence)
    sa.Column("locked_until", UTCDateTime, nullable=True),  # the lease
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("live_key"),
    # The claim index. It serves exactly
    #   SELECT ... FROM jobs WHERE status = 'queued' AND run_at <= :now [AND queue IN (...)]
    #   ORDER BY priority, run_at, id LIMIT :n FOR UPDATE SKIP LOCKED
    # (equality on status, then the index order is the ORDER BY: no filesort, and the scan stops
    # after n rows; run_at and queue are filtered on the way). The same prefix serves the lease
    # recovery (status = 'running' AND locked_until < :now: at most the in-flight jobs), the idle
    # worker's look for the next run_at, and the per-status counts of the health stats.
    # Cost to know: a job of a lower priority number whose run_at is far away is stepped over by
    # every claim until it is due; keep priorities to a few levels.
    sa.Index(None, "status", "priority", "run_at", "id"),
    # The same for a worker serving one queue (`run.py worker --queues publish`): with the queue
    # first, its claims never step over another queue's jobs (a publish worker over the thousands
    # of analytics syncs queued for later, say).
    sa.Index(None, "queue", "status", "priority", "run_at", "id"),
    # Pruning: finished jobs by age (NULL while live, so live jobs are not in the range).
    sa.Index(None, "finished_at"),
)

# One row per running worker (standalone or embedded), refreshed every heartbeat. Health reads it
# to tell "no worker alive"; rows of workers that died are deleted by the others' heartbeats.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("queues", JSON, nullable=True),  # NULL: every queue
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
)
