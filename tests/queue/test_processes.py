"""`run.py worker` as real OS processes sharing one database: exactly-once draining, SIGKILL
take-over after the lease, graceful SIGTERM. Handlers from tests/queue/handlers.py leave traces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.core.clock import Clock
from ouipost.db.queue_tables import jobs, workers
from ouipost.jobs import queue
from tests.conftest import make_env
from tests.queue.conftest import add_job, count_jobs, job_row
from tests.queue.handlers import read_traces
from tests.queue.test_worker import wait_until

# Worker processes: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spawn(database_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """spawn(*worker_args) -> a `run.py worker` process with the test handlers; killed at the end."""
    processes: list[subprocess.Popen[str]] = []
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        **make_env(database_url, tmp_path / "data", OUIPOST_EXTRA_JOB_HANDLERS="tests.queue.handlers"),
    }

    def start(*args: str) -> subprocess.Popen[str]:
        log = (tmp_path / f"worker-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "worker", "--poll-interval", "0.1", *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        log.close()
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    directory = tmp_path / "traces"
    directory.mkdir()
    return directory


async def count_workers(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(workers))).scalar_one()


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the process and wait for its exit status (TimeoutExpired after `timeout` seconds)."""
    process.send_signal(sig)
    return process.wait(timeout=timeout)


async def test_worker_processes_drain_the_queue_running_each_job_exactly_once(
    engine: AsyncEngine, spawn: Any, traces: Path
) -> None:
    mysql = engine.dialect.name == "mysql"
    total, process_count = (2000, 3) if mysql else (300, 2)
    processes = [spawn("--concurrency", "10", "--batch-size", "25") for _ in range(process_count)]
    await wait_until(lambda: _all_registered(engine, process_count), timeout=60)

    async with engine.begin() as conn:
        await queue.enqueue_many(
            conn, [queue.NewJob("record", {"dir": str(traces), "seconds": 0.002}) for _ in range(total)],
            now=Clock().now(),
        )
    await wait_until(lambda: _done(engine, total), timeout=180)
    assert [stop(p) for p in processes] == [0] * process_count

    runs = [(job_id, pid) for event, job_id, pid, _ in read_traces(traces) if event == "run"]
    async with engine.connect() as conn:
        job_ids = set((await conn.execute(sa.select(jobs.c.id))).scalars())
    per_job = Counter(job_id for job_id, _ in runs)
    assert len(job_ids) == total
    assert set(per_job) == job_ids, "some jobs never ran"
    assert max(per_job.values()) == 1, "some jobs ran twice"
    assert len({pid for _, pid in runs}) == process_count, "a process took no part"
    assert await count_jobs(engine, status="done") == total
    assert await count_workers(engine) == 0


async def test_a_sigkilled_workers_job_is_taken_over_after_its_lease_and_finished_once(
    engine: AsyncEngine, spawn: Any, traces: Path
) -> None:
    lease = "2"
    job_id = await add_job(engine, "sleep_record", payload={"dir": str(traces), "seconds": 1.5}, now=Clock().now())
    doomed = spawn("--lease-seconds", lease)
    await wait_until(lambda: any(e[0] == "start" for e in read_traces(traces)), timeout=60)
    assert stop(doomed, signal.SIGKILL) == -signal.SIGKILL

    heir = spawn("--lease-seconds", lease)
    await wait_until(lambda: _status_is(engine, job_id, "done"), timeout=60)
    assert stop(heir) == 0

    events = sorted((event, pid, attempt) for event, _, pid, attempt in read_traces(traces))
    assert events == [("finish", heir.pid, 2), ("start", doomed.pid, 1), ("start", heir.pid, 2)]
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts) == ("done", 2)


async def test_sigterm_lets_the_running_job_finish_then_exits_0(engine: AsyncEngine, spawn: Any, traces: Path) -> None:
    job_id = await add_job(engine, "sleep_record", payload={"dir": str(traces), "seconds": 1.0}, now=Clock().now())
    worker = spawn()
    await wait_until(lambda: any(e[0] == "start" for e in read_traces(traces)), timeout=60)
    assert stop(worker) == 0
    assert sorted(e[0] for e in read_traces(traces)) == ["finish", "start"]
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts) == ("done", 1)
    assert await count_workers(engine) == 0


async def test_sigterm_releases_a_job_that_outlasts_the_grace_period(
    engine: AsyncEngine, spawn: Any, traces: Path
) -> None:
    job_id = await add_job(engine, "sleep_record", payload={"dir": str(traces), "seconds": 60}, now=Clock().now())
    worker = spawn("--grace-seconds", "0.5")
    await wait_until(lambda: any(e[0] == "start" for e in read_traces(traces)), timeout=60)
    # The job would run a minute: the worker gives up on it after its grace period, well within 10 s.
    assert stop(worker, timeout=10) == 0
    row = await job_row(engine, job_id)
    assert (row.status, row.attempts, row.locked_by) == ("queued", 0, None)


async def _all_registered(engine: AsyncEngine, count: int) -> bool:
    return await count_workers(engine) == count


async def _done(engine: AsyncEngine, total: int) -> bool:
    return await count_jobs(engine, status="done") == total


async def _status_is(engine: AsyncEngine, job_id: int, status: str) -> bool:
    return (await job_row(engine, job_id)).status == status
