#!/usr/bin/env python3
"""CSV import and export of posts: the time of a 1,000-row import, and the server's memory while
100,000 posts are exported.

    .venv/bin/python bench/csv_import.py [--database-url URL] [--rows 1000] [--posts 100000]

Scratch database: a temporary SQLite file by default; with a MySQL/MariaDB or PostgreSQL
(postgresql+asyncpg://) URL the database is dropped and created again (bench/databases.py). The
API server runs in a child process of its own (`--serve`, no embedded worker), so that its resident
memory is the server's alone: read from /proc (VmRSS, and VmHWM, the peak since the process started).

1. Import: one workspace with an active Bluesky account; a CSV of `rows` rows (half drafts for X and
   Bluesky, half scheduled on Bluesky in Europe/Paris) is sent to POST /api/posts/import, once as a
   dry run and once for real (goal: under 10 s).
2. Export: `posts` posts (with one to three targets each, published ones with insight totals) are
   seeded in another workspace by multi-row INSERTs; GET /api/posts/export streams them while the
   child's RSS is sampled every 50 ms. The figure that matters is how far the peak rises above the
   RSS before the export: flat memory means a rise that does not grow with the number of posts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import create_database  # noqa: E402
from ouipost.core.ids import new_id  # noqa: E402
from ouipost.db.analytics_tables import target_insights  # noqa: E402
from ouipost.db.engine import create_engine  # noqa: E402
from ouipost.db.migrations import upgrade  # noqa: E402
from ouipost.db.tables import post_targets, posts, social_accounts  # noqa: E402
from ouipost.identity import api_keys, workspaces  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdefghij"
BATCH = 2000
IMPORT_GOAL_S = 10.0


def environment(url: str, data_dir: str) -> dict[str, str]:
    return {**os.environ, "OUIPOST_DATABASE_URL": url, "OUIPOST_SECRET_KEY": SECRET, "OUIPOST_WORKERS": "0",
            "OUIPOST_DATA_DIR": data_dir, "OUIPOST_AUTO_MIGRATE": "1", "OUIPOST_LOG_LEVEL": "WARNING",
            "OUIPOST_SANDBOX": "1"}


def serve(port: int) -> None:
    """The child: the app on 127.0.0.1:port until SIGTERM."""
    from ouipost.app import create_app
    from ouipost.config import load_settings
    from ouipost.server import run_app

    run_app(create_app(load_settings()), host="127.0.0.1", port=port, access_log=None)


def memory_kb(pid: int) -> dict[str, int]:
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


async def insert_batches(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(table), rows[start:start + BATCH])


def account_row(workspace_id: str, network: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("acc"), "workspace_id": workspace_id, "platform": network, "remote_id": new_id("acc"),
        "type": "profile", "name": f"{network} bench", "username": f"{network}bench", "profile_image": None,
        "status": "active", "is_default": True, "settings": {}, "metadata": {}, "permissions": [],
        "access_token": None, "refresh_token": None, "token_expires_at": None, "refresh_expires_at": None,
        "stats": {}, "last_error": None, "last_sync_at": None, "connected_at": now, "updated_at": now,
    }


async def seed_workspaces(engine: AsyncEngine) -> tuple[str, str, str]:
    """(the import workspace, the export workspace, an API key reaching both)."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with engine.begin() as conn:
        into = await workspaces.create_workspace(conn, name="Import", description=None, settings=None, now=now)
        out = await workspaces.create_workspace(conn, name="Export", description=None, settings=None, now=now)
        key = await api_keys.create_key(conn, name="bench", tier="enterprise", permissions=None,
                                        workspace_ids=[into["id"], out["id"]], now=now)
    await insert_batches(engine, social_accounts, [account_row(into["id"], "bluesky", now)])
    return into["id"], out["id"], key.secret


async def seed_posts(engine: AsyncEngine, workspace_id: str, count: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(7)
    accounts = [account_row(workspace_id, n, now) for n in ("twitter", "bluesky", "linkedin")]
    await insert_batches(engine, social_accounts, accounts)
    post_rows: list[dict[str, Any]] = []
    target_rows: list[dict[str, Any]] = []
    total_rows: list[dict[str, Any]] = []

    async def flush() -> None:
        await insert_batches(engine, posts, post_rows)
        await insert_batches(engine, post_targets, target_rows)
        await insert_batches(engine, target_insights, total_rows)
        for rows in (post_rows, target_rows, total_rows):
            rows.clear()

    for index in range(count):
        published = index % 3 != 0
        created = now - timedelta(days=90) + timedelta(seconds=index * 90 * 86400 / count)
        post_id = new_id("post")
        post_rows.append({
            "id": post_id, "workspace_id": workspace_id, "status": "published" if published else "draft",
            "content": f"Post {index}: {'lorem ipsum ' * rng.randint(2, 20)}", "title": None, "link": None,
            "hashtags": ["#bench"], "platforms": [a["platform"] for a in accounts[:1 + index % 3]],
            "platform_content": {}, "scheduled_at": None, "scheduled_timezone": None,
            "published_at": created if published else None, "created_at": created, "updated_at": created,
        })
        for offset, account in enumerate(accounts[:1 + index % 3]):
            target_id = new_id("tgt")
            target_rows.append({
                "id": target_id, "post_id": post_id, "workspace_id": workspace_id, "network": account["platform"],
                "requested": account["platform"], "account_id": account["id"],
                "status": "published" if published else "pending",
                "remote_id": f"r{index}-{offset}" if published else None,
                "remote_url": f"https://example.com/{index}/{offset}" if published else None,
                "error_code": None, "error_message": None, "attempts": int(published),
                "published_at": created if published else None, "created_at": created, "updated_at": created,
            })
            if published:
                impressions = rng.randint(50, 5000)
                total_rows.append({
                    "target_id": target_id, "workspace_id": workspace_id, "post_id": post_id,
                    "network": account["platform"], "account_id": account["id"], "published_at": created,
                    "first_of_post": int(offset == 0), "first_of_network": 1, "impressions": impressions,
                    "reach": impressions // 2, "engagement": impressions // 20, "clicks": impressions // 80,
                    "metrics": {}, "snapshots": 1, "synced_at": created,
                })
        if len(post_rows) >= 10_000:
            await flush()
    await flush()


def import_file(rows: int) -> bytes:
    year = datetime.now(UTC).year + 1
    lines = ["content,platforms,scheduled_at,timezone,title,link"]
    for index in range(rows):
        if index % 2:
            day = datetime(year, 1, 1) + timedelta(hours=index)
            lines.append(f"Scheduled post {index},bluesky,{day:%Y-%m-%dT%H:%M:%S},Europe/Paris,,")
        else:
            lines.append(f'"Draft {index}, with a comma",twitter|bluesky,,,Title {index},https://example.com/{index}')
    return ("\n".join(lines) + "\n").encode()


async def timed_import(http: aiohttp.ClientSession, api: str, headers: dict[str, str], data: bytes,
                       dry_run: bool) -> tuple[float, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="bench.csv", content_type="text/csv")
    started = time.perf_counter()
    async with http.post(f"{api}/api/posts/import{'?dry_run=1' if dry_run else ''}", data=form,
                         headers=headers) as resp:
        body = await resp.json()
    elapsed = time.perf_counter() - started
    if resp.status not in (200, 201):
        raise SystemExit(f"import answered {resp.status}: {str(body)[:500]}")
    return elapsed, body["data"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=100_000)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="ouipost-bench-csv-")
    url = args.database_url or f"sqlite+aiosqlite:///{data_dir}/bench.db"
    await create_database(url, fresh=True)
    engine = create_engine(url)
    await upgrade(engine)
    into, out, secret = await seed_workspaces(engine)
    started = time.perf_counter()
    await seed_posts(engine, out, args.posts)
    server = {"mysql": "MariaDB", "postgresql": "PostgreSQL"}.get(make_url(url).get_backend_name(), "SQLite")
    print(f"database: {server}; seeded {args.posts:,} posts to export "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    await engine.dispose()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A plain child process (not asyncio's): it only has to live while this script measures it.
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],  # noqa: ASYNC220
                             env=environment(url, data_dir))
    api = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            for _ in range(300):
                try:
                    async with http.get(f"{api}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("the server did not start")

            data = import_file(args.rows)
            headers = {"X-API-Key": secret, "X-Workspace-ID": into}
            dry_s, _ = await timed_import(http, api, headers, data, dry_run=True)
            real_s, real = await timed_import(http, api, headers, data, dry_run=False)
            print(f"import of {args.rows:,} rows ({len(data) / 1024:.0f} KB): dry run {dry_s:.2f} s, "
                  f"import {real_s:.2f} s ({real['drafts']} drafts, {real['scheduled']} scheduled); "
                  f"goal < {IMPORT_GOAL_S:.0f} s: {'met' if real_s < IMPORT_GOAL_S else 'NOT met'}", flush=True)

            before = memory_kb(child.pid)
            peak_rss = before["VmRSS"]
            received = lines = 0
            started = time.perf_counter()
            async with http.get(f"{api}/api/posts/export?format=csv",
                                headers={"X-API-Key": secret, "X-Workspace-ID": out}) as resp:
                chunked = resp.headers.get("Transfer-Encoding") == "chunked"
                last_sample = 0.0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    received += len(chunk)
                    lines += chunk.count(b"\n")
                    now = time.perf_counter()
                    if now - last_sample >= 0.05:
                        peak_rss = max(peak_rss, memory_kb(child.pid)["VmRSS"])
                        last_sample = now
            export_s = time.perf_counter() - started
            after = memory_kb(child.pid)
            peak_rss = max(peak_rss, after["VmRSS"])
            print(f"export of {args.posts:,} posts: {lines - 1:,} CSV lines, {received / 2**20:.1f} MB in "
                  f"{export_s:.1f} s ({'chunked' if chunked else 'NOT chunked'})")
            print(f"server RSS: {before['VmRSS'] / 1024:.0f} MB before the export, peak while exporting "
                  f"{peak_rss / 1024:.0f} MB (+{(peak_rss - before['VmRSS']) / 1024:.0f} MB); "
                  f"process peak (VmHWM) {after['VmHWM'] / 1024:.0f} MB")
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    else:
        asyncio.run(main())
