#!/usr/bin/env python3
"""Housekeeping on MariaDB: a 60-day backlog pruned in bounded batches, then a day of heavy use.

    .venv/bin/python bench/housekeeping.py
        [--database-url mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_housekeeping]
        [--calls 1000000] [--deliveries 200000] [--days 60]
        [--day-calls 200000] [--day-deliveries 40000] [--interval-minutes 10]

Re-creates the scratch database, migrates it, and seeds `calls` platform_calls and `deliveries`
finished webhook deliveries (one endpoint, payloads of ~400 bytes) spread evenly over the last `days`
days, with MariaDB's sequence engine (INSERT ... SELECT FROM seq_1_to_N).

1. Backlog: housekeeping runs (ouipost.housekeeping.service.run_housekeeping, default retention: 30 days of
   both) one after the other until nothing is left to prune, while a writer inserts platform calls
   one per transaction beside it. Prints rows before/after, runs, time, rows/s, the longest single
   delete transaction and the writer's slowest insert (what a request would wait behind a batch).
2. A day of heavy use: the clock moves one day in steps of `interval-minutes` (the job's period);
   each step inserts that step's share of `day-calls` and `day-deliveries` and runs housekeeping
   once. Prints the table sizes at the start and end of the day (bounded: the window stays 30 days)
   and the per-run time and longest transaction.

Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ouipost.core.clock import FrozenClock  # noqa: E402
from ouipost.db.admin_tables import platform_calls, webhook_deliveries  # noqa: E402
from ouipost.db.engine import create_engine  # noqa: E402
from ouipost.db.migrations import upgrade  # noqa: E402
from ouipost.housekeeping import service as housekeeping  # noqa: E402
from ouipost.housekeeping.retention import Retention  # noqa: E402
from ouipost.webhooks import service as webhooks  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdefghij"
DEFAULT_URL = "mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_housekeeping"
NETWORKS = ("twitter", "linkedin", "facebook", "instagram", "bluesky", "threads", "tiktok", "youtube", "pinterest")
PAYLOAD = ('{"type":"post.published","timestamp":"2026-12-01T10:00:00Z","data":{"post":{"id":"post_0190a1b2-c3d4-7e5f'
           '-8a9b-0c1d2e3f4a5b","status":"published","content":"' + "x" * 200 + '","platforms":["twitter"]}}}')


async def recreate(url: str) -> None:
    parsed = make_url(url)
    server = create_engine(parsed.set(database="").render_as_string(hide_password=False))
    async with server.connect() as conn:
        await conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
        await conn.execute(sa.text(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    await server.dispose()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


def _naive(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


async def seed(engine: AsyncEngine, webhook_id: str, *, calls: int, deliveries: int, start: datetime, end: datetime,
               offset: int = 0) -> None:
    """`calls` platform calls and `deliveries` succeeded deliveries evenly from `start` to `end`."""
    span = (end - start).total_seconds()
    chunk = 200_000  # rows per INSERT ... SELECT (one statement each: the seeding is not what we measure)
    async with engine.begin() as conn:
        for first in range(1, calls + 1, chunk):
            last = min(calls, first + chunk - 1)
            await conn.execute(sa.text(
                f"INSERT INTO platform_calls (network, ok, status, latency_ms, at) "
                f"SELECT ELT(1 + seq % {len(NETWORKS)}, {', '.join(repr(n) for n in NETWORKS)}), seq % 20 <> 0, "
                f"IF(seq % 20 <> 0, 200, 503), 40 + seq % 300, "
                f"TIMESTAMP(:start) + INTERVAL FLOOR(:span * (seq - 1) / :n * 1000000) MICROSECOND "
                f"FROM seq_{first}_to_{last}"
            ), {"start": _naive(start), "span": span, "n": calls})
        for first in range(1, deliveries + 1, chunk):
            last = min(deliveries, first + chunk - 1)
            await conn.execute(sa.text(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, payload, status, attempts, "
                "response_status, latency_ms, error, next_attempt_at, last_attempt_at, created_at, updated_at) "
                "SELECT CONCAT('dlv_', LPAD(seq + :offset, 12, '0')), :webhook, "
                "CONCAT('evt_', LPAD(seq + :offset, 12, '0')), "
                "'post.published', :payload, 'succeeded', 1, 200, 80, NULL, NULL, t, t, t "
                "FROM (SELECT seq, TIMESTAMP(:start) + INTERVAL FLOOR(:span * (seq - 1) / :n * 1000000) MICROSECOND "
                f"AS t FROM seq_{first}_to_{last}) AS s"
            ), {"start": _naive(start), "span": span, "n": deliveries, "webhook": webhook_id, "payload": PAYLOAD,
                "offset": offset})


async def past_retention(engine: AsyncEngine, now: datetime) -> tuple[int, int]:
    """Rows older than the default 30 days (what housekeeping should have deleted)."""
    cutoff = now - timedelta(days=30)
    async with engine.connect() as conn:
        calls = await conn.scalar(sa.select(sa.func.count()).select_from(platform_calls)
                                  .where(platform_calls.c.at < cutoff))
        deliveries = await conn.scalar(sa.select(sa.func.count()).select_from(webhook_deliveries)
                                       .where(webhook_deliveries.c.created_at < cutoff))
    return int(calls or 0), int(deliveries or 0)


async def sizes(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        calls = await conn.scalar(sa.select(sa.func.count()).select_from(platform_calls))
        deliveries = await conn.scalar(sa.select(sa.func.count()).select_from(webhook_deliveries))
    return int(calls or 0), int(deliveries or 0)


async def writer(engine: AsyncEngine, clock: FrozenClock, stop: asyncio.Event, waits: list[float]) -> None:
    """One platform call per transaction, as the publishing path records them, timing each."""
    while not stop.is_set():
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(platform_calls.insert().values(network="twitter", ok=True, status=201, latency_ms=50,
                                                              at=clock.now()))
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)


async def backlog(engine: AsyncEngine, clock: FrozenClock) -> None:
    before = await sizes(engine)
    stop = asyncio.Event()
    waits: list[float] = []
    writing = asyncio.create_task(writer(engine, clock, stop, waits))
    runs = deleted = 0
    longest = 0.0
    run_times: list[float] = []
    started = time.perf_counter()
    while True:
        run_started = time.perf_counter()
        reports = await housekeeping.run_housekeeping(engine, clock.now(), Retention())
        run_times.append(time.perf_counter() - run_started)
        runs += 1
        deleted += sum(r.deleted for r in reports)
        longest = max([longest, *(r.longest_transaction_seconds for r in reports)])
        if not any(r.more for r in reports):
            break
    elapsed = time.perf_counter() - started
    stop.set()
    await writing
    after = await sizes(engine)
    late = await past_retention(engine, clock.now())
    print("backlog (60 days, retention 30 days for both):")
    print(f"  platform_calls      {before[0]:>10,} -> {after[0]:>10,} (incl. {len(waits):,} written meanwhile)")
    print(f"  webhook_deliveries  {before[1]:>10,} -> {after[1]:>10,}")
    print(f"  rows older than 30 days left: {late[0]:,} calls, {late[1]:,} deliveries")
    print(f"  {deleted:,} rows deleted in {runs} runs, {elapsed:.1f} s: {deleted / elapsed:,.0f} rows/s; "
          f"one run (≤ {housekeeping.MAX_BATCHES} batches of {housekeeping.BATCH_SIZE} per table) "
          f"median {statistics.median(run_times):.2f} s, max {max(run_times):.2f} s")
    print(f"  longest delete transaction {longest * 1000:.1f} ms; concurrent single-row inserts: "
          f"{len(waits):,}, median {statistics.median(waits) * 1000:.1f} ms, "
          f"p99 {sorted(waits)[int(len(waits) * 0.99)] * 1000:.1f} ms, max {max(waits) * 1000:.1f} ms")


async def heavy_day(engine: AsyncEngine, clock: FrozenClock, webhook_id: str, *, day_calls: int,
                    day_deliveries: int, interval: timedelta) -> None:
    steps = int(timedelta(days=1) / interval)
    before = await sizes(engine)
    run_times: list[float] = []
    longest = 0.0
    deleted = 0
    peak = before
    for step in range(steps):
        start = clock.now()
        clock.advance(seconds=interval.total_seconds())
        await seed(engine, webhook_id, calls=day_calls // steps, deliveries=day_deliveries // steps, start=start,
                   end=clock.now(), offset=10_000_000 + step * 1_000_000)
        run_started = time.perf_counter()
        reports = await housekeeping.run_housekeeping(engine, clock.now(), Retention())
        run_times.append(time.perf_counter() - run_started)
        deleted += sum(r.deleted for r in reports)
        longest = max([longest, *(r.longest_transaction_seconds for r in reports)])
        now_sizes = await sizes(engine)
        peak = (max(peak[0], now_sizes[0]), max(peak[1], now_sizes[1]))
    after = await sizes(engine)
    print(f"a day of heavy use ({day_calls:,} calls, {day_deliveries:,} deliveries; one run every "
          f"{interval.total_seconds() / 60:g} min = {steps} runs):")
    print(f"  platform_calls      {before[0]:>10,} -> {after[0]:>10,} (peak {peak[0]:,})")
    print(f"  webhook_deliveries  {before[1]:>10,} -> {after[1]:>10,} (peak {peak[1]:,})")
    late = await past_retention(engine, clock.now())
    print(f"  rows older than 30 days at the end of the day: {late[0]:,} calls, {late[1]:,} deliveries")
    print(f"  {deleted:,} rows deleted; per run median {statistics.median(run_times) * 1000:.0f} ms, "
          f"max {max(run_times) * 1000:.0f} ms; longest delete transaction {longest * 1000:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--day-calls", type=int, default=200_000)
    parser.add_argument("--day-deliveries", type=int, default=40_000)
    parser.add_argument("--interval-minutes", type=float, default=10.0)
    args = parser.parse_args()
    if not args.database_url.startswith("mysql"):
        parser.error("this benchmark seeds with MariaDB's sequence engine: give a mysql+aiomysql:// URL")

    await recreate(args.database_url)
    engine = create_engine(args.database_url)
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    try:
        async with engine.begin() as conn:
            webhook, _ = await webhooks.create_webhook(
                conn, url="https://example.com/hook", events=["post.published"], secret=None, description=None,
                created_by=None, secret_key=SECRET, now=clock.now() - timedelta(days=args.days + 1),
            )
        started = time.perf_counter()
        await seed(engine, webhook["id"], calls=args.calls, deliveries=args.deliveries,
                   start=clock.now() - timedelta(days=args.days), end=clock.now())
        print(f"seeded {args.calls:,} platform_calls and {args.deliveries:,} webhook_deliveries over {args.days} days "
              f"in {time.perf_counter() - started:.1f} s")
        await backlog(engine, clock)
        await heavy_day(engine, clock, webhook["id"], day_calls=args.day_calls, day_deliveries=args.day_deliveries,
                        interval=timedelta(minutes=args.interval_minutes))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
