#!/usr/bin/env python3
"""Latency of the analytics reads on a large workspace (MariaDB, or SQLite).

    .venv/bin/python bench/analytics_latency.py
        [--database-url mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_analytics
                        | sqlite+aiosqlite:///var/bench/analytics.db]
        [--targets 100000] [--snapshots 1000000] [--days 365] [--requests 50] [--reuse]

Seeds a scratch database (dropped and created again unless --reuse finds it seeded): one workspace
with `targets` published targets (two per post, networks in turn) spread evenly over the last
`days` days, `snapshots` insight snapshots spread over them (each target's last one is its latest
totals in the target_insights rollup), and a year of daily follower snapshots for its accounts;
everything through multi-row INSERTs. The hourly and daily rollups of target_insights are then filled
by the migration's own backfill (sql/versions/0012_insight_rollups.py), as an upgraded installation
gets them; a reused database is upgraded first, the same way. Then serves the app in-process on a
real aiohttp test server (no embedded worker) and times, over HTTP with the API key and its rate limit in the path:

- GET /api/analytics for the last 90 days at day granularity (Europe/Paris),
- GET /api/posts/{id}/analytics of random posts,
- GET /api/posts (a page of 20 with their latest totals).

Prints median and p95 per endpoint, after 5 warm-up requests each.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ouipost.app import create_app  # noqa: E402
from ouipost.config import load_settings  # noqa: E402
from ouipost.core.ids import new_id  # noqa: E402
from ouipost.db.analytics_tables import account_snapshots, insight_snapshots, target_insights  # noqa: E402
from ouipost.db.engine import create_engine  # noqa: E402
from ouipost.db.migrations import upgrade  # noqa: E402
from ouipost.db.tables import post_targets, posts, social_accounts  # noqa: E402
from ouipost.identity import api_keys, workspaces  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdefghij"
DEFAULT_URL = "mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_analytics"
NETWORKS = ("twitter", "linkedin", "facebook", "instagram", "bluesky", "threads", "tiktok", "youtube", "pinterest")
BATCH = 5000


async def recreate(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
    else:
        server = create_engine(parsed.set(database="").render_as_string(hide_password=False))
        async with server.connect() as conn:
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
            await conn.execute(sa.text(
                f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        await server.dispose()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


async def insert_batches(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(table), rows[start:start + BATCH])


async def seed(engine: AsyncEngine, targets: int, snapshots: int, days: int) -> str:
    """Returns the workspace id."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with engine.begin() as conn:
        workspace = await workspaces.create_workspace(conn, name="Bench", description=None,
                                                      settings={"timezone": "Europe/Paris"}, now=now)
    ws = workspace["id"]
    accounts = [{
        "id": new_id("acc"), "workspace_id": ws, "platform": network, "remote_id": f"bench-{network}",
        "type": "profile", "name": network, "username": network, "profile_image": None, "status": "active",
        "is_default": True, "settings": {}, "metadata": {}, "permissions": [], "access_token": None,
        "refresh_token": None, "token_expires_at": None, "refresh_expires_at": None, "stats": {},
        "last_error": None, "last_sync_at": None, "connected_at": now, "updated_at": now,
    } for network in NETWORKS]
    await insert_batches(engine, social_accounts, accounts)
    account_of = {a["platform"]: a["id"] for a in accounts}

    started = time.perf_counter()
    per_target = max(1, snapshots // targets)
    span = timedelta(days=days).total_seconds()
    post_rows: list[dict[str, Any]] = []
    target_rows: list[dict[str, Any]] = []
    total_rows: list[dict[str, Any]] = []
    snapshot_rows: list[dict[str, Any]] = []
    rng = random.Random(8)
    for index in range(targets):
        if index % 2 == 0:
            published = now - timedelta(seconds=span * (1 - index / targets))
            post_id = new_id("post")
            post_rows.append({
                "id": post_id, "workspace_id": ws, "status": "published", "content": f"Bench post {index // 2}",
                "title": None, "link": None, "hashtags": [], "platforms": [], "platform_content": {},
                "scheduled_at": None, "scheduled_timezone": None, "published_at": published,
                "created_at": published, "updated_at": published,
            })
        network = NETWORKS[index % len(NETWORKS)]
        target_id = new_id("tgt")
        at = published + timedelta(seconds=index % 2)
        target_rows.append({
            "id": target_id, "post_id": post_id, "workspace_id": ws, "network": network, "requested": network,
            "account_id": account_of[network], "status": "published", "remote_id": f"r{index}", "remote_url": None,
            "error_code": None, "error_message": None, "attempts": 1, "published_at": at, "created_at": at,
            "updated_at": at,
        })
        impressions = engagement = 0
        for step in range(per_target):
            impressions += rng.randint(10, 500)
            engagement += rng.randint(0, 40)
            snapshot_rows.append({
                "workspace_id": ws, "post_id": post_id, "target_id": target_id, "network": network,
                "account_id": account_of[network], "taken_at": at + timedelta(hours=step * 6 + 1),
                "impressions": impressions, "reach": impressions * 3 // 4, "engagement": engagement,
                "clicks": engagement // 4, "metrics": {"likes": engagement // 2, "shares": engagement // 5},
            })
        total_rows.append({
            "target_id": target_id, "workspace_id": ws, "post_id": post_id, "network": network,
            "account_id": account_of[network], "published_at": at, "first_of_post": 1 - index % 2,
            "first_of_network": 1, "impressions": impressions, "reach": impressions * 3 // 4,
            "engagement": engagement, "clicks": engagement // 4,
            "metrics": {"likes": engagement // 2, "shares": engagement // 5}, "snapshots": per_target,
            "synced_at": at + timedelta(hours=(per_target - 1) * 6 + 1),
        })
        if len(snapshot_rows) >= 50_000:
            await _flush(engine, post_rows, target_rows, total_rows, snapshot_rows)
            print(f"  seeded {index + 1:,} targets ({time.perf_counter() - started:.0f} s)", flush=True)
    await _flush(engine, post_rows, target_rows, total_rows, snapshot_rows)
    followers = [{
        "workspace_id": ws, "account_id": a["id"], "network": a["platform"], "taken_at": now - timedelta(days=d),
        "followers": 10_000 + (days - d) * 3, "following": 100, "posts_total": 1000, "demographics": None,
    } for a in accounts for d in range(days)]
    await insert_batches(engine, account_snapshots, followers)
    began = time.perf_counter()
    async with engine.begin() as conn:
        await conn.run_sync(rollup_migration().backfill)
    print(f"rollups backfilled in {time.perf_counter() - began:.1f} s", flush=True)
    await analyze(engine, "posts", "post_targets", "target_insights", "insight_snapshots", "account_snapshots")
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    return ws


def rollup_migration() -> Any:
    """The migration that creates and backfills the rollups (its file name is not an importable name)."""
    path = ROOT / "sql" / "versions" / "0012_insight_rollups.py"
    spec = importlib.util.spec_from_file_location("insight_rollups_migration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def analyze(engine: AsyncEngine, *tables: str) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(sa.text("ANALYZE"))
            return
        for table in (*tables, "hourly_insights", "hourly_network_insights", "daily_network_insights"):
            await conn.execute(sa.text(f"ANALYZE TABLE {table}"))


async def _flush(engine: AsyncEngine, *batches: list[dict[str, Any]]) -> None:
    for table, rows in zip((posts, post_targets, target_insights, insight_snapshots), batches, strict=True):
        await insert_batches(engine, table, rows)
        rows.clear()


async def seeded(engine: AsyncEngine) -> str | None:
    """The seeded workspace of an earlier run, if its seeding finished (account snapshots come last)."""
    from ouipost.db.tables import workspaces as workspaces_table

    try:
        async with engine.connect() as conn:
            return (await conn.execute(
                sa.select(workspaces_table.c.id).where(workspaces_table.c.name == "Bench", sa.exists().where(
                    account_snapshots.c.workspace_id == workspaces_table.c.id))
            )).scalar()
    except sa.exc.DBAPIError:
        return None


async def timed(client: TestClient, path: str, headers: dict[str, str], count: int) -> list[float]:
    for _ in range(5):
        resp = await client.get(path, headers=headers)
        assert resp.status == 200, await resp.text()
        await resp.read()
    times = []
    for _ in range(count):
        began = time.perf_counter()
        resp = await client.get(path, headers=headers)
        await resp.read()
        times.append((time.perf_counter() - began) * 1000)
        assert resp.status == 200, resp.status
    return times


async def timed_each(client: TestClient, paths: list[str], headers: dict[str, str]) -> list[float]:
    await timed(client, paths[0], headers, 0)
    times = []
    for path in paths:
        began = time.perf_counter()
        resp = await client.get(path, headers=headers)
        await resp.read()
        times.append((time.perf_counter() - began) * 1000)
        assert resp.status == 200, resp.status
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    print(f"{name:<48} n={len(times):<4} median {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   "
          f"max {ordered[-1]:7.1f} ms", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="keep the database when it is already seeded")
    args = parser.parse_args()
    if not args.database_url.startswith(("mysql", "sqlite")):
        parser.error("this benchmark is for MySQL/MariaDB or SQLite")

    engine = create_engine(args.database_url)
    found = await seeded(engine) if args.reuse else None
    if found is None:
        await engine.dispose()
        await recreate(args.database_url)
        engine = create_engine(args.database_url)
        found = await seed(engine, args.targets, args.snapshots, args.days)
    else:
        # A database seeded by an older version: upgrading backfills the rollups like any installation.
        await upgrade(engine)
        await analyze(engine)
    workspace_id = found
    async with engine.begin() as conn:
        key = await api_keys.create_key(conn, name="bench", tier="enterprise", permissions=None,
                                        workspace_ids=[workspace_id], now=datetime.now(UTC))
    secret = key.secret
    async with engine.connect() as conn:
        counts = {name: await conn.scalar(sa.select(sa.func.count()).select_from(table))
                  for name, table in (("published targets", target_insights), ("snapshots", insight_snapshots))}
        post_ids = (await conn.execute(
            sa.select(posts.c.id).where(posts.c.workspace_id == workspace_id)
        )).scalars().all()
    print(", ".join(f"{v:,} {k}" for k, v in counts.items()), flush=True)

    settings = load_settings({
        "OUIPOST_DATABASE_URL": args.database_url, "OUIPOST_SECRET_KEY": SECRET, "OUIPOST_WORKERS": "0",
        "OUIPOST_DATA_DIR": tempfile.mkdtemp(prefix="ouipost-bench-"), "OUIPOST_AUTO_MIGRATE": "1",
        "OUIPOST_LOG_LEVEL": "WARNING",
    })
    headers = {"X-API-Key": secret, "X-Workspace-ID": workspace_id}
    client = TestClient(TestServer(create_app(settings, engine=engine)))
    await client.start_server()
    try:
        until = datetime.now(UTC).date()
        since = until - timedelta(days=89)
        path = f"/api/analytics?from={since.isoformat()}&to={until.isoformat()}&granularity=day"
        body = await (await client.get(path, headers=headers)).json()
        summary = body["data"]["summary"]
        print(f"90 days: {summary['total_posts']:,} posts, {summary['total_impressions']:,} impressions, "
              f"{len(body['data']['timeline'])} days", flush=True)
        report("GET /api/analytics (90 days, day, Europe/Paris)", await timed(client, path, headers, args.requests))
        rng = random.Random(3)
        sample = [f"/api/posts/{rng.choice(post_ids)}/analytics" for _ in range(args.requests)]
        report("GET /api/posts/{id}/analytics (random posts)", await timed_each(client, sample, headers))
        report("GET /api/posts (20 per page, latest totals)", await timed(client, "/api/posts", headers,
                                                                          args.requests))
    finally:
        await client.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
