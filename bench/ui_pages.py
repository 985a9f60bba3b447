#!/usr/bin/env python3
"""Render time of every admin UI page on a large workspace.

    .venv/bin/python bench/ui_pages.py [--database-url URL] [--posts 10000] [--accounts 100]
                                       [--requests 40]

Seeds a scratch database (a temporary SQLite file by default; with a MySQL/MariaDB URL the database
is dropped and created again): one workspace in Europe/Paris with `accounts` connected accounts over
the nine networks and `posts` posts (60 % published over the last 180 days with their latest
insight totals, 20 % scheduled over the next 60 days, 15 % drafts, 5 % failed with an error), each
with one to three targets; two recurring schedules; an admin user. Everything goes in through
multi-row INSERTs (schedules through their domain function).

Then serves the app in-process on a real aiohttp test server (no embedded worker), signs in through
the sign-in form like a browser, and requests each page `requests` times after 3 warm-up requests,
printing median, p95 and max per page and flagging pages over the 150 ms p95 goal.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
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
from ouipost.db.analytics_tables import target_insights  # noqa: E402
from ouipost.db.engine import create_engine  # noqa: E402
from ouipost.db.migrations import upgrade  # noqa: E402
from ouipost.db.tables import post_targets, posts, social_accounts  # noqa: E402
from ouipost.identity import users, workspaces  # noqa: E402
from ouipost.schedules import service as schedules  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdefghij"
EMAIL, PASSWORD = "bench@example.com", "benchmark password 123"
NETWORKS = ("twitter", "linkedin", "facebook", "instagram", "bluesky", "threads", "tiktok", "youtube", "pinterest")
GOAL_MS = 150.0
BATCH = 2000
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
WORDS = ("launch", "spring", "offer", "team", "event", "recap", "product", "news", "webinar", "hiring")


async def recreate_mysql(url: str) -> None:
    parsed = make_url(url)
    server = create_engine(parsed.set(database="").render_as_string(hide_password=False))
    async with server.connect() as conn:
        await conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
        await conn.execute(sa.text(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    await server.dispose()


async def insert_batches(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(table), rows[start:start + BATCH])


async def seed(engine: AsyncEngine, post_count: int, account_count: int) -> dict[str, str]:
    """Returns ids of what the pages need: workspace, a published post, a schedule."""
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(12)
    async with engine.begin() as conn:
        await users.create_user(conn, email=EMAIL, password=PASSWORD, name="Bench Admin", role="admin", now=now)
        workspace = await workspaces.create_workspace(
            conn, name="Bench", description="UI benchmark", now=now,
            settings={"timezone": "Europe/Paris", "default_hashtags": ["#bench"]},
        )
    ws = workspace["id"]
    accounts = []
    for index in range(account_count):
        network = NETWORKS[index % len(NETWORKS)]
        accounts.append({
            "id": new_id("acc"), "workspace_id": ws, "platform": network, "remote_id": f"bench-{index}",
            "type": "profile", "name": f"{network} account {index}", "username": f"{network}{index}",
            "profile_image": None, "status": "expired" if index % 17 == 5 else "active",
            "is_default": index < len(NETWORKS), "settings": {}, "metadata": {}, "permissions": [],
            "access_token": None, "refresh_token": None, "token_expires_at": None, "refresh_expires_at": None,
            "stats": {}, "last_error": None, "last_sync_at": None, "connected_at": now, "updated_at": now,
        })
    await insert_batches(engine, social_accounts, accounts)

    post_rows: list[dict[str, Any]] = []
    target_rows: list[dict[str, Any]] = []
    total_rows: list[dict[str, Any]] = []
    published_id = ""
    for index in range(post_count):
        roll = index % 20
        status = "published" if roll < 12 else "scheduled" if roll < 16 else "draft" if roll < 19 else "failed"
        created = now - timedelta(days=180) + timedelta(seconds=index * 180 * 86400 / post_count)
        scheduled_at = published_at = None
        if status in ("published", "failed"):
            published_at = created + timedelta(minutes=5) if status == "published" else None
            scheduled_at = created + timedelta(minutes=5)
        elif status == "scheduled":
            scheduled_at = now + timedelta(minutes=30 + rng.randint(0, 60 * 24 * 60))
        post_id = new_id("post")
        words = " ".join(rng.choice(WORDS) for _ in range(8))
        post_rows.append({
            "id": post_id, "workspace_id": ws, "status": status, "content": f"Post {index}: {words}",
            "title": None, "link": None, "hashtags": ["#bench"], "platforms": [], "platform_content": {},
            "scheduled_at": scheduled_at, "scheduled_timezone": "Europe/Paris" if scheduled_at else None,
            "published_at": published_at, "created_at": created, "updated_at": created,
        })
        for offset in range(1 + index % 3):
            account = accounts[(index + offset * 7) % len(accounts)]
            target_status = {"published": "published", "failed": "failed", "scheduled": "pending",
                             "draft": "pending"}[status]
            target_id = new_id("tgt")
            target_rows.append({
                "id": target_id, "post_id": post_id, "workspace_id": ws, "network": account["platform"],
                "requested": account["platform"], "account_id": account["id"], "status": target_status,
                "remote_id": f"r{index}-{offset}" if status == "published" else None,
                "remote_url": f"https://example.com/{index}/{offset}" if status == "published" else None,
                "error_code": "PLATFORM_ERROR" if status == "failed" else None,
                "error_message": "The network refused the post" if status == "failed" else None,
                "attempts": 1 if status in ("published", "failed") else 0, "published_at": published_at,
                "created_at": created, "updated_at": created,
            })
            if status == "published":
                published_id = post_id
                impressions = rng.randint(50, 5000)
                engagement = rng.randint(0, impressions // 10)
                total_rows.append({
                    "target_id": target_id, "workspace_id": ws, "post_id": post_id, "network": account["platform"],
                    "account_id": account["id"], "published_at": published_at, "first_of_post": int(offset == 0),
                    "first_of_network": 1, "impressions": impressions, "reach": impressions * 3 // 4,
                    "engagement": engagement, "clicks": engagement // 4, "metrics": {"likes": engagement // 2},
                    "snapshots": 1, "synced_at": published_at,
                })
    await insert_batches(engine, posts, post_rows)
    await insert_batches(engine, post_targets, target_rows)
    await insert_batches(engine, target_insights, total_rows)

    schedule_ids = []
    async with engine.begin() as conn:
        for name, days in (("Weekdays", ("monday", "tuesday", "wednesday", "thursday", "friday")),
                           ("Weekend", ("saturday", "sunday"))):
            slots = [{"day": d, "time": t, "platforms": ["twitter", "linkedin"]}
                     for d in days for t in ("09:00", "17:30")]
            schedule, _ = await schedules.create_schedule(
                conn, workspace_id=ws, now=now,
                fields={"name": name, "timezone": "Europe/Paris", "slots": slots, "is_active": True},
            )
            schedule_ids.append(schedule["id"])
    return {"ws": ws, "post": published_id, "schedule": schedule_ids[0]}


async def sign_in(client: TestClient) -> None:
    page = await client.get("/ui/login")
    token = _CSRF.search(await page.text())
    assert token, "no sign-in form"
    response = await client.post("/ui/login", data={"csrf_token": token.group(1), "email": EMAIL,
                                                     "password": PASSWORD}, allow_redirects=False)
    assert response.status == 303, await response.text()


async def timed(client: TestClient, path: str, count: int) -> list[float] | None:
    for _ in range(3):
        response = await client.get(path, allow_redirects=False)
        await response.read()
        if response.status != 200:
            return None
    times = []
    for _ in range(count):
        began = time.perf_counter()
        response = await client.get(path, allow_redirects=False)
        await response.read()
        times.append((time.perf_counter() - began) * 1000)
    return times


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    ws, post, schedule = ids["ws"], ids["post"], ids["schedule"]
    today = datetime.now(UTC).date().isoformat()
    return [
        ("dashboard", "/ui"),
        ("workspaces", "/ui/workspaces"),
        ("workspace edit", f"/ui/workspaces/{ws}/edit"),
        ("workspace delete (confirmation)", f"/ui/workspaces/{ws}/delete"),
        ("posts, first page", f"/ui/w/{ws}/posts"),
        ("posts, page 200", f"/ui/w/{ws}/posts?page=200"),
        ("posts, published on twitter", f"/ui/w/{ws}/posts?status=published&network=twitter"),
        ("posts, text search", f"/ui/w/{ws}/posts?q=webinar"),
        ("calendar, month", f"/ui/w/{ws}/calendar?view=month&date={today}"),
        ("calendar, week", f"/ui/w/{ws}/calendar?view=week&date={today}"),
        ("composer", f"/ui/w/{ws}/compose"),
        ("post page", f"/ui/w/{ws}/posts/{post}"),
        ("accounts", f"/ui/w/{ws}/accounts"),
        ("schedules", f"/ui/w/{ws}/schedules"),
        ("schedule page", f"/ui/w/{ws}/schedules/{schedule}"),
        ("analytics, 30 days", f"/ui/w/{ws}/analytics"),
        ("analytics, 90 days", f"/ui/w/{ws}/analytics?period=90d"),
        ("post analytics", f"/ui/w/{ws}/posts/{post}/analytics"),
        ("users", "/ui/admin/users"),
        ("API keys", "/ui/admin/keys"),
        ("webhooks", "/ui/admin/webhooks"),
        ("audit log", "/ui/admin/audit"),
        ("system", "/ui/admin/system"),
        ("profile", "/ui/profile"),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="ouipost-bench-ui-")
    url = args.database_url or f"sqlite+aiosqlite:///{data_dir}/bench.db"
    if url.startswith("mysql"):
        await recreate_mysql(url)
    engine = create_engine(url)
    await upgrade(engine)
    started = time.perf_counter()
    ids = await seed(engine, args.posts, args.accounts)
    print(f"seeded {args.posts:,} posts and {args.accounts} accounts in {time.perf_counter() - started:.1f} s "
          f"({'MariaDB' if url.startswith('mysql') else 'SQLite'})", flush=True)

    settings = load_settings({
        "OUIPOST_DATABASE_URL": url, "OUIPOST_SECRET_KEY": SECRET, "OUIPOST_WORKERS": "0",
        "OUIPOST_DATA_DIR": data_dir, "OUIPOST_AUTO_MIGRATE": "1", "OUIPOST_LOG_LEVEL": "WARNING",
    })
    client = TestClient(TestServer(create_app(settings, engine=engine)))
    await client.start_server()
    over: list[str] = []
    missing: list[str] = []
    try:
        await sign_in(client)
        print(f"{'page':<36} {'median':>9} {'p95':>9} {'max':>9}")
        for name, path in pages(ids):
            times = await timed(client, path, args.requests)
            if times is None:
                print(f"{name:<36} {'(not served)':>29}")
                missing.append(name)
                continue
            ordered = sorted(times)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
            flag = "  over the goal" if p95 > GOAL_MS else ""
            print(f"{name:<36} {statistics.median(times):7.1f}ms {p95:7.1f}ms {ordered[-1]:7.1f}ms{flag}", flush=True)
            if p95 > GOAL_MS:
                over.append(name)
    finally:
        await client.close()
        await engine.dispose()
    verdict = f"over: {', '.join(over)}" if over else "every page served met it"
    print(f"goal: every page p95 < {GOAL_MS:.0f} ms; {verdict}")
    if missing:
        print(f"not served (status other than 200): {', '.join(missing)}")


if __name__ == "__main__":
    asyncio.run(main())
