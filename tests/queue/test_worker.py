"""The worker loop in this process: batches, outcomes, waking, sleeping and graceful shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.db.queue_tables import workers
from ouipost.http.context import DB, WORKER
from ouipost.jobs import queue
from ouipost.jobs.queue import JobFailed, RetryJob
from tests.queue.conftest import add_job, count_jobs, job_row
from workers.worker import Handler, JobContext, Worker

# Far longer than any test waits: a worker that only polls would never see the job in time.
NEVER = 3600.0


async def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll `condition` (sync or async) until true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {timeout}s")


@pytest.fixture
async def start_worker(engine: AsyncEngine) -> AsyncIterator[Callable[..., Worker]]:
    """start_worker(handlers, **options) -> a running Worker, stopped at the end of the test."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(handlers: dict[str, Handler], **options: Any) -> Worker:
        options = {"poll_interval": 0.05, "lease_seconds": 5.0, "concurrency": 4, **options}
        worker = Worker(engine, handlers, clock=Clock(), **options)
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, task in running:
        worker.stop()
        await asyncio.wait_for(task, timeout=15)


def now() -> Any:
    return Clock().now()


async def test_the_worker_runs_every_job_once_in_batches(engine: AsyncEngine, start_worker: Any) -> None:
    seen: list[int] = []

    async def record(context: JobContext) -> None:
        seen.append(context.id)

    async with engine.begin() as conn:
        await queue.enqueue_many(conn, [queue.NewJob("record", {"n": n}) for n in range(300)], now=now())
    worker = start_worker({"record": record}, concurrency=20, batch_size=20)
    await wait_until(lambda: worker.counters.completed == 300, timeout=30)
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 300
    assert await count_jobs(engine, status="done") == 300
    assert (worker.counters.claimed, worker.counters.failed, worker.counters.retried) == (300, 0, 0)


async def test_handler_outcomes_retry_fail_and_honour_retry_after(engine: AsyncEngine, start_worker: Any) -> None:
    async def retry_soon(context: JobContext) -> None:
        raise RetryJob(f"busy (attempt {context.attempts})", retry_after=0)

    async def give_up(context: JobContext) -> None:
        raise JobFailed("the network refused the content")

    async def crash(context: JobContext) -> None:
        raise ConnectionResetError("reset by peer")

    async def later(context: JobContext) -> None:
        raise RetryJob("rate limited", retry_after=3600)

    retried = await add_job(engine, "retry_soon", max_attempts=3, now=now())
    failed = await add_job(engine, "give_up", now=now())
    crashed = await add_job(engine, "crash", now=now())
    postponed = await add_job(engine, "later", now=now())
    unknown = await add_job(engine, "nobody_handles_this", now=now())
    worker = start_worker({"retry_soon": retry_soon, "give_up": give_up, "crash": crash, "later": later})

    async def settled() -> bool:
        rows = [await job_row(engine, job_id) for job_id in (retried, failed, crashed, postponed, unknown)]
        return rows[0].status == "failed" and all(r.status in ("failed", "queued") and r.attempts for r in rows)

    await wait_until(settled)
    row = await job_row(engine, retried)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "busy (attempt 3)")
    row = await job_row(engine, failed)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "the network refused the content")
    row = await job_row(engine, crashed)
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "ConnectionResetError: reset by peer")
    assert row.run_at > now() + timedelta(seconds=1)  # backoff
    row = await job_row(engine, postponed)
    assert row.status == "queued" and row.run_at > now() + timedelta(minutes=59)
    row = await job_row(engine, unknown)
    assert row.status == "failed" and "no handler" in row.last_error
    assert worker.counters.failed == 3 and worker.counters.retried == 4


async def test_stop_lets_running_jobs_finish(engine: AsyncEngine) -> None:
    finished: list[int] = []
    go_on = asyncio.Event()

    async def slow(context: JobContext) -> None:
        await go_on.wait()
        finished.append(context.id)

    job_id = await add_job(engine, "slow", now=now())
    worker = Worker(engine, {"slow": slow}, poll_interval=0.05, grace_seconds=5)
    task = asyncio.create_task(worker.run())
    await wait_until(lambda: worker.in_flight == 1)
    worker.stop()
    await asyncio.sleep(0)  # the worker takes the stop while the job still runs
    assert not task.done()
    go_on.set()
    await asyncio.wait_for(task, timeout=5)
    assert finished == [job_id]
    assert (await job_row(engine, job_id)).status == "done"
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(workers))).scalar_one() == 0


async def test_stop_releases_jobs_still_running_after_the_grace_period(engine: AsyncEngine) -> None:
    async def stuck(context: JobContext) -> None:
        await asyncio.Event().wait()  # never set: only the release after the grace period ends it

    job_id = await add_job(engine, "stuck", now=now())
    worker = Worker(engine, {"stuck": stuck}, poll_interval=0.05, grace_seconds=0.2)
    task = asyncio.create_task(worker.run())
    await wait_until(lambda: worker.in_flight == 1)
    worker.stop()
    await asyncio.wait_for(task, timeout=5)
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts, row.locked_by) == ("queued", 0, None)
    assert worker.counters.released == 1


async def test_an_idle_worker_sleeps_only_until_the_next_job_is_due(engine: AsyncEngine, start_worker: Any) -> None:
    # Not due at the first claim; done long before the next poll: the idle wait ended at its due
    # time. (That a job is never claimed before its run_at is the claim's, tests/queue/test_queue.py.)
    job_id = await add_job(engine, run_at=now() + timedelta(seconds=0.3), now=now())
    start_worker({"noop": _noop}, poll_interval=NEVER)
    await wait_until(lambda: _is_done(engine, job_id), timeout=10)


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many jobs each claim of the workers took, in order: a worker that claimed nothing goes
    on to wait (its idle wait, NEVER long in these tests)."""
    taken: list[int] = []
    claim_due_jobs = queue.claim_due_jobs

    async def counted(*args: Any, **kwargs: Any) -> Any:
        jobs = await claim_due_jobs(*args, **kwargs)
        taken.append(len(jobs))
        return jobs

    monkeypatch.setattr(queue, "claim_due_jobs", counted)
    return taken


async def test_wake_makes_an_idle_worker_claim_at_once(
    engine: AsyncEngine, start_worker: Any, claims: list[int],
) -> None:
    worker = start_worker({"noop": _noop}, poll_interval=NEVER)
    await wait_until(lambda: claims == [0])  # it found nothing and waits for an hour
    job_id = await add_job(engine, now=now())
    worker.wake()
    await wait_until(lambda: _is_done(engine, job_id), timeout=10)


async def test_a_job_its_handler_enqueued_is_claimed_at_once_not_at_the_next_poll(
    engine: AsyncEngine, start_worker: Any, claims: list[int],
) -> None:
    # A published post's follow-ups and its webhook dispatch are jobs the publish job enqueues: they
    # start as soon as it ends, not an idle poll interval (an hour here) later.
    async def first(context: JobContext) -> None:
        async with context.engine.begin() as conn:
            await queue.enqueue(conn, kind="second", payload={}, now=now())

    async def second(context: JobContext) -> None:
        ran.set()

    ran = asyncio.Event()
    worker = start_worker({"first": first, "second": second}, poll_interval=NEVER)
    await wait_until(lambda: claims == [0])  # nothing yet: it waits for an hour
    async with engine.begin() as conn:
        await queue.enqueue(conn, kind="first", payload={}, now=now())
    worker.wake()
    await asyncio.wait_for(ran.wait(), timeout=10)


async def test_a_handler_that_enqueues_nothing_does_not_wake_the_worker(
    engine: AsyncEngine, start_worker: Any, claims: list[int],
) -> None:
    worker = start_worker({"noop": _noop}, poll_interval=NEVER)
    await wait_until(lambda: claims == [0])
    job_id = await add_job(engine, now=now())
    worker.wake()
    await wait_until(lambda: _is_done(engine, job_id), timeout=10)
    await asyncio.sleep(0.2)
    assert claims == [0, 1]  # the claim that took the job, and none after it finished


async def test_an_enqueue_through_the_app_wakes_its_embedded_worker(
    engine: AsyncEngine, settings: Settings, aiohttp_client: Any,  # engine first: it must outlive the app
    claims: list[int],
) -> None:
    client = await aiohttp_client(create_app(settings.with_overrides(workers=2), engine=engine))
    app = client.server.app
    worker = app[WORKER]
    worker.poll_interval = NEVER
    before = len(claims)
    worker.wake()  # go round once more, into an hour's wait
    await wait_until(lambda: len(claims) > before)

    async with app[DB].begin() as conn:
        job_id = await queue.enqueue(conn, kind="noop", payload={}, now=now())
    queue.notify_enqueued(app.get(WORKER))
    await wait_until(lambda: _is_done(engine, job_id), timeout=10)
    # The counter moves once the batched acknowledgement is written; periodic jobs may add to it.
    await wait_until(lambda: worker.counters.completed >= 1, timeout=5)


async def test_no_embedded_worker_without_worker_slots(
    engine: AsyncEngine, settings: Settings, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(settings.with_overrides(workers=0), engine=engine))
    assert WORKER not in client.server.app
    queue.notify_enqueued(client.server.app.get(WORKER))  # harmless


async def _noop(context: JobContext) -> None:
    return None


async def _is_done(engine: AsyncEngine, job_id: int) -> bool:
    return (await job_row(engine, job_id)).status == "done"
