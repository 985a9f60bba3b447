"""The queue's named queries against the real database (SQLite, or MariaDB in MariaDB mode)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.db.queue_tables import jobs, workers
from ouipost.housekeeping import service as housekeeping
from ouipost.housekeeping.retention import Retention
from ouipost.jobs import queue
from tests.queue.conftest import NOW, add_job, count_jobs, job_row

LEASE = 30.0


async def claim(engine: AsyncEngine, worker: str = "w1", *, limit: int = 10, now=NOW, queues=None) -> list[queue.Job]:
    return await queue.claim_due_jobs(engine, worker, queues, limit, LEASE, now)


# --- enqueue -----------------------------------------------------------------------------------


async def test_unique_key_dedupes_live_jobs_but_not_finished_ones(engine: AsyncEngine) -> None:
    first = await add_job(engine, unique_key="refresh:acc_1")
    assert first is not None
    assert await add_job(engine, unique_key="refresh:acc_1") is None  # queued

    [job] = await claim(engine)
    assert await add_job(engine, unique_key="refresh:acc_1") is None  # running
    assert await queue.complete_jobs(engine, [job.id], "w1", NOW) == 1

    second = await add_job(engine, unique_key="refresh:acc_1")  # done: the key is free again
    assert second is not None and second != first
    [job] = await claim(engine)
    await queue.fail_or_retry(engine, job, "boom", NOW, retryable=False)
    assert await add_job(engine, unique_key="refresh:acc_1") is not None  # failed: free too
    assert (await job_row(engine, first)).unique_key == "refresh:acc_1"


async def test_a_duplicate_does_not_break_the_callers_transaction(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        kept = await queue.enqueue(conn, kind="noop", payload={}, now=NOW, unique_key="k")
        assert await queue.enqueue(conn, kind="noop", payload={}, now=NOW, unique_key="k") is None
        other = await queue.enqueue(conn, kind="noop", payload={"n": 2}, now=NOW)
    assert kept is not None and other is not None
    assert await count_jobs(engine) == 2


@pytest.mark.parametrize("unique_key", [None, "post:1"])
async def test_a_job_enqueued_in_a_rolled_back_transaction_does_not_exist(
    engine: AsyncEngine, unique_key: str | None
) -> None:
    async with engine.connect() as conn:
        await conn.begin()
        # The enqueue is the transaction's first statement: the hardest case for SQLite's driver.
        assert await queue.enqueue(conn, kind="noop", payload={}, now=NOW, unique_key=unique_key) is not None
        await queue.enqueue(conn, kind="noop", payload={}, now=NOW)
        await conn.rollback()
    assert await count_jobs(engine) == 0
    assert await add_job(engine, unique_key=unique_key) is not None


# --- claim -------------------------------------------------------------------------------------


async def test_claim_takes_due_jobs_by_priority_then_run_at_then_id(engine: AsyncEngine) -> None:
    future = await add_job(engine, run_at=NOW + timedelta(hours=1), priority=1)
    low = await add_job(engine, priority=200)
    late = await add_job(engine)
    early = await add_job(engine, run_at=NOW - timedelta(minutes=5))
    urgent = await add_job(engine, priority=10)
    same_time = await add_job(engine)

    claimed = await claim(engine)
    assert [job.id for job in claimed] == [urgent, early, late, same_time, low]
    assert await claim(engine, "w2") == []
    assert [job.id for job in await claim(engine, "w2", now=NOW + timedelta(hours=1))] == [future]


async def test_claim_counts_an_attempt_and_takes_a_lease(engine: AsyncEngine) -> None:
    job_id = await add_job(engine, payload={"post_id": "post_1"}, queue="publish")
    [job] = await claim(engine, "w1")
    assert (job.id, job.kind, job.queue, job.payload, job.attempts, job.locked_by) == (
        job_id, "noop", "publish", {"post_id": "post_1"}, 1, "w1"
    )
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts, row.locked_by) == ("running", 1, "w1")
    assert row.locked_until == NOW + timedelta(seconds=LEASE)


async def test_claim_takes_only_the_queues_asked_for(engine: AsyncEngine) -> None:
    publish = await add_job(engine, queue="publish")
    webhook = await add_job(engine, queue="webhooks")
    await add_job(engine, queue="analytics")
    assert [j.id for j in await claim(engine, queues=["publish", "webhooks"])] == [publish, webhook]
    assert [j.queue for j in await claim(engine)] == ["analytics"]


async def test_a_batch_claim_takes_at_most_limit_and_concurrent_claims_never_share_a_job(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await queue.enqueue_many(conn, [queue.NewJob("noop", {"n": n}) for n in range(130)], now=NOW)
    assert len(await claim(engine, "first", limit=10)) == 10

    batches = await asyncio.gather(*(claim(engine, f"w{n}", limit=50) for n in range(4)))
    ids = [job.id for batch in batches for job in batch]
    assert all(len(batch) <= 50 for batch in batches)
    assert len(ids) == len(set(ids)) == 120
    assert await count_jobs(engine, status="queued") == 0


# --- leases --------------------------------------------------------------------------------------


async def test_an_expired_lease_lets_another_worker_take_over_and_fences_the_late_worker(
    engine: AsyncEngine,
) -> None:
    job_id = await add_job(engine)
    [mine] = await claim(engine, "w1")
    assert await queue.recover_expired_leases(engine, NOW + timedelta(seconds=LEASE - 1)) == (0, 0)

    later = NOW + timedelta(seconds=LEASE + 1)
    assert await queue.recover_expired_leases(engine, later) == (1, 0)
    [theirs] = await claim(engine, "w2", now=later)
    assert theirs.id == job_id and theirs.attempts == 2

    # The first worker wakes up and reports: its outcome is refused, the new claim stands.
    assert await queue.complete_jobs(engine, [job_id], "w1", later) == 0
    assert await queue.fail_or_retry(engine, mine, "late", later) is None
    assert await queue.extend_leases(engine, [job_id], "w1", later + timedelta(minutes=5)) == 0
    row = await job_row(engine, job_id)
    assert (row.status, row.locked_by, row.attempts, row.last_error) == ("running", "w2", 2, None)

    assert await queue.complete_jobs(engine, [job_id], "w2", later) == 1
    row = await job_row(engine, job_id)
    assert (row.status, row.live_key, row.finished_at) == ("done", None, later)


async def test_a_heartbeat_keeps_the_lease(engine: AsyncEngine) -> None:
    job_id = await add_job(engine)
    await claim(engine, "w1")
    assert await queue.extend_leases(engine, [job_id], "w1", NOW + timedelta(seconds=2 * LEASE)) == 1
    assert await queue.recover_expired_leases(engine, NOW + timedelta(seconds=LEASE + 1)) == (0, 0)
    assert (await job_row(engine, job_id)).locked_by == "w1"


async def test_an_expired_lease_on_the_last_attempt_fails_the_job(engine: AsyncEngine) -> None:
    job_id = await add_job(engine, max_attempts=1, unique_key="once")
    await claim(engine, "w1")
    assert await queue.recover_expired_leases(engine, NOW + timedelta(seconds=LEASE + 1)) == (0, 1)
    row = await job_row(engine, job_id)
    assert (row.status, row.live_key) == ("failed", None)
    assert "lease expired" in row.last_error


async def test_released_jobs_go_back_to_the_queue_without_counting_the_attempt(engine: AsyncEngine) -> None:
    job_id = await add_job(engine)
    await claim(engine, "w1")
    assert await queue.release_jobs(engine, [job_id], "w2") == 0  # not theirs
    assert await queue.release_jobs(engine, [job_id], "w1") == 1
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts, row.locked_by, row.locked_until) == ("queued", 0, None, None)


# --- outcomes ------------------------------------------------------------------------------------


async def test_failures_back_off_exponentially_then_fail_after_max_attempts(engine: AsyncEngine) -> None:
    job_id = await add_job(engine, max_attempts=3, unique_key="flaky")
    now = NOW
    for attempt in (1, 2):
        [job] = await claim(engine, now=now)
        assert job.attempts == attempt
        assert await queue.fail_or_retry(engine, job, f"timeout {attempt}", now) == "queued"
        row = await job_row(engine, job_id)
        nominal = queue.BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
        assert now + timedelta(seconds=nominal / 2) <= row.run_at <= now + timedelta(seconds=nominal)
        assert (row.status, row.locked_by, row.last_error) == ("queued", None, f"timeout {attempt}")
        assert await claim(engine, "w2", now=row.run_at - timedelta(milliseconds=1)) == []
        now = row.run_at

    [job] = await claim(engine, now=now)
    assert await queue.fail_or_retry(engine, job, "timeout 3", now) == "failed"
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts, row.last_error, row.finished_at, row.live_key) == (
        "failed", 3, "timeout 3", now, None
    )


async def test_a_retry_after_from_the_handler_wins_over_the_backoff(engine: AsyncEngine) -> None:
    job_id = await add_job(engine)
    [job] = await claim(engine)
    assert await queue.fail_or_retry(engine, job, "429 from the network", NOW, retry_after=120) == "queued"
    assert (await job_row(engine, job_id)).run_at == NOW + timedelta(seconds=120)


async def test_a_non_retryable_failure_fails_at_once(engine: AsyncEngine) -> None:
    job_id = await add_job(engine, max_attempts=5)
    [job] = await claim(engine)
    assert await queue.fail_or_retry(engine, job, "content rejected", NOW, retryable=False) == "failed"
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "content rejected")


def test_retry_delay_is_exponential_jittered_and_capped() -> None:
    for attempts, nominal in ((1, 5), (2, 10), (3, 20), (6, 160)):
        delays = [queue.retry_delay(attempts) for _ in range(200)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(set(delays)) > 1
    assert all(1800 <= queue.retry_delay(40) <= 3600 for _ in range(50))


# --- housekeeping --------------------------------------------------------------------------------


async def _finish(engine: AsyncEngine, count: int, finished_at, status: str = "done") -> None:
    async with engine.begin() as conn:
        await queue.enqueue_many(conn, [queue.NewJob("noop") for _ in range(count)], now=NOW)
    claimed = await claim(engine, "pruner-test", limit=count)
    ids = [job.id for job in claimed]
    async with engine.begin() as conn:
        await conn.execute(sa.update(jobs).where(jobs.c.id.in_(ids)).values(status=status, finished_at=finished_at))


async def test_pruning_deletes_finished_jobs_past_the_retention_in_batches(engine: AsyncEngine) -> None:
    await _finish(engine, 25, NOW - timedelta(days=8))
    await _finish(engine, 2, NOW - timedelta(days=9), status="failed")  # failed jobs are kept 30 days
    await _finish(engine, 1, NOW - timedelta(days=31), status="failed")
    await _finish(engine, 3, NOW - timedelta(days=1))
    await add_job(engine)
    await add_job(engine, run_at=NOW - timedelta(days=30))  # old but never run: kept

    reports = await housekeeping.run_housekeeping(
        engine, NOW, Retention(), rules=[housekeeping.rule("done_jobs"), housekeeping.rule("failed_jobs")],
        batch_size=10,
    )
    assert sum(r.deleted for r in reports) == 26
    assert await count_jobs(engine) == 7
    assert await count_jobs(engine, status="done") == 3
    assert await count_jobs(engine, status="failed") == 2


async def test_queue_stats_show_due_jobs_their_age_and_live_workers(engine: AsyncEngine) -> None:
    await add_job(engine, run_at=NOW - timedelta(seconds=90))
    await add_job(engine, run_at=NOW - timedelta(seconds=10))
    await add_job(engine, run_at=NOW + timedelta(hours=1))
    await add_job(engine, run_at=NOW - timedelta(seconds=5), priority=1)
    await claim(engine, limit=1)
    await queue.register_worker(engine, "alive", hostname="h", pid=1, queues=None, concurrency=4, now=NOW)
    await queue.register_worker(engine, "dead", hostname="h", pid=2, queues=["a"], concurrency=4,
                                now=NOW - timedelta(minutes=10))

    stats = await queue.queue_stats(engine, NOW)
    assert stats.by_status == {"queued": 3, "running": 1, "done": 0, "failed": 0}
    assert (stats.due, stats.oldest_due_at, stats.oldest_due_age_seconds) == (2, NOW - timedelta(seconds=90), 90.0)
    assert stats.workers_alive == 1

    assert await queue.prune_dead_workers(engine, NOW - timedelta(minutes=5)) == 1
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(workers.c.id))).scalars().all() == ["alive"]


async def test_next_run_at_finds_the_earliest_job_due_within_the_horizon(engine: AsyncEngine) -> None:
    await add_job(engine, run_at=NOW + timedelta(seconds=3))
    await add_job(engine, run_at=NOW + timedelta(seconds=0.5), queue="other")
    await add_job(engine, run_at=NOW - timedelta(seconds=1))  # due already: claim's business
    horizon = NOW + timedelta(seconds=5)
    assert await queue.next_run_at(engine, None, NOW, horizon) == NOW + timedelta(seconds=0.5)
    assert await queue.next_run_at(engine, ["default"], NOW, horizon) == NOW + timedelta(seconds=3)
    assert await queue.next_run_at(engine, None, NOW, NOW + timedelta(seconds=0.1)) is None


# --- the claim's plan ----------------------------------------------------------------------------


async def test_the_claim_is_served_by_the_claim_index_without_a_sort(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await queue.enqueue_many(conn, [
            queue.NewJob("noop", run_at=NOW + timedelta(seconds=n - 20), priority=50 + n % 3, queue=f"q{n % 2}")
            for n in range(40)
        ], now=NOW)
    await claim(engine, limit=5)
    for queues, index in ((None, queue.CLAIM_INDEX), (["q0", "q1"], queue.CLAIM_INDEX),
                          (["q1"], queue.QUEUE_CLAIM_INDEX)):
        query = queue.claim_query(queues, 50, NOW)
        sql = str(query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
        async with engine.connect() as conn:
            if engine.dialect.name == "mysql":
                [plan] = (await conn.execute(sa.text(f"EXPLAIN {sql}"))).mappings().all()
                assert plan["key"] == index, plan
                assert "filesort" not in (plan["Extra"] or "") and "temporary" not in (plan["Extra"] or ""), plan
            elif engine.dialect.name == "postgresql":
                # PostgreSQL locks rows as the LIMIT pulls them (LockRows under Limit), whatever the
                # scan below: a claim never locks more than its page, with or without a sort.
                [[plans]] = (await conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) {sql}"))).all()
                top = plans[0]["Plan"]
                assert top["Node Type"] == "Limit" and top["Plans"][0]["Node Type"] == "LockRows", top
            else:
                details = " | ".join(row[-1] for row in await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
                assert f"USING INDEX {index}" in details or f"USING COVERING INDEX {index}" in details, details
                assert "TEMP B-TREE" not in details, details
