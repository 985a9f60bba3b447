#!/usr/bin/env python3
"""No-op jobs claimed and completed per second by 1, 2 and 4 `run.py worker` processes.

    .venv/bin/python bench/queue_throughput.py [--database-url mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench]
    (or --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/ouipost_bench)
        [--jobs 20000] [--processes 1,2,4] [--concurrency 50] [--batch-size 50]

For each process count: empty the jobs table, start the processes and wait until each has
registered, enqueue the jobs in one transaction, then time from its commit until no job is queued
or running (polled every 20 ms). The database (created when missing) is migrated first; its jobs
and workers tables are emptied, so point it at a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import create_database  # noqa: E402
from ouipost.core.clock import Clock  # noqa: E402
from ouipost.db.engine import create_engine  # noqa: E402
from ouipost.db.migrations import upgrade  # noqa: E402
from ouipost.db.queue_tables import jobs, workers  # noqa: E402
from ouipost.jobs import queue  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdefghij"


async def prepare(url: str) -> None:
    await create_database(url, fresh=False)
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


async def scalar(engine: AsyncEngine, query: sa.Select) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def run_once(url: str, processes: int, total: int, concurrency: int, batch_size: int) -> float:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sa.delete(jobs))
        await conn.execute(sa.delete(workers))
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        "OUIPOST_DATABASE_URL": url, "OUIPOST_SECRET_KEY": SECRET, "OUIPOST_LOG_LEVEL": "WARNING",
        "OUIPOST_DATA_DIR": tempfile.mkdtemp(prefix="ouipost-bench-"),
    }
    command = [
        sys.executable, str(ROOT / "run.py"), "worker", "--concurrency", str(concurrency),
        "--batch-size", str(batch_size), "--poll-interval", "0.05",
    ]
    started = [
        await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
        for _ in range(processes)
    ]
    try:
        registered = sa.select(sa.func.count()).select_from(workers)
        while await scalar(engine, registered) < processes:
            if any(p.returncode is not None for p in started):
                raise SystemExit("a worker process exited early; run it by hand to see why")
            await asyncio.sleep(0.1)

        async with engine.begin() as conn:
            for start in range(0, total, 5000):
                await queue.enqueue_many(
                    conn, [queue.NewJob("noop") for _ in range(min(5000, total - start))], now=Clock().now()
                )
        began = time.perf_counter()
        live = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status.in_(("queued", "running")))
        while True:
            if not await scalar(engine, live):
                break
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
        done = await scalar(engine, sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "done"))
        if done != total:
            raise SystemExit(f"only {done} of {total} jobs done")
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in started)), timeout=60)
        await engine.dispose()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    await prepare(args.database_url)
    print(f"{args.jobs} no-op jobs, concurrency {args.concurrency}, claim batch {args.batch_size}, "
          f"database {make_url(args.database_url).render_as_string(hide_password=True)}")
    print(f"{'processes':>9} {'seconds':>8} {'jobs/s':>8}")
    for count in (int(n) for n in args.processes.split(",")):
        elapsed = await run_once(args.database_url, count, args.jobs, args.concurrency, args.batch_size)
        print(f"{count:>9} {elapsed:>8.2f} {args.jobs / elapsed:>8.0f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
