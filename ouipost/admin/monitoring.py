"""What the dashboard, stats, health and system views measure, as plain functions.

Platform health (the workers' record of network calls, and a status per network) is
ouipost/publishing/platform_calls.py.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.accounts.statuses import ACCOUNT_STATUSES
from ouipost.core.clock import isoformat
from ouipost.db.engine import json_loads
from ouipost.db.tables import api_keys, posts, social_accounts, users, workspaces
from ouipost.http import usage
from ouipost.jobs import queue
from ouipost.platforms.registry import NETWORKS
from ouipost.posts import statuses

STORAGE_DEGRADED_PERCENT = 90.0
STORAGE_UNHEALTHY_PERCENT = 98.0


async def _count(conn: AsyncConnection, table: sa.Table, *conditions: sa.ColumnElement[bool]) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(table).where(*conditions)) or 0)


async def _grouped(conn: AsyncConnection, column: sa.ColumnElement[Any]) -> dict[str, int]:
    rows = await conn.execute(sa.select(column, sa.func.count()).group_by(column))
    return {str(value): int(count) for value, count in rows}


async def _platform_combinations(conn: AsyncConnection) -> list[tuple[Any, int]]:
    """(platforms list, posts) per distinct list. PostgreSQL's json type has no equality, so there
    the lists are grouped by their text and read back from it."""
    if conn.dialect.name != "postgresql":
        return [(targets, int(n)) for targets, n in
                await conn.execute(sa.select(posts.c.platforms, sa.func.count()).group_by(posts.c.platforms))]
    text = sa.cast(posts.c.platforms, sa.Text)
    rows = await conn.execute(sa.select(text, sa.func.count()).group_by(text))
    return [(None if value is None else json_loads(value), int(n)) for value, n in rows]


async def posts_by_network(conn: AsyncConnection) -> Counter[str]:
    """Posts per network they target. `posts.platforms` holds network names and/or account ids;
    grouping by the whole list first keeps this to one row per distinct combination."""
    combos = await _platform_combinations(conn)
    account_ids = {t for targets, _ in combos for t in (targets or []) if isinstance(t, str) and t.startswith("acc_")}
    networks_of: dict[str, str] = {}
    if account_ids:
        rows = await conn.execute(
            sa.select(social_accounts.c.id, social_accounts.c.platform).where(social_accounts.c.id.in_(account_ids))
        )
        networks_of = {account_id: network for account_id, network in rows}
    counts: Counter[str] = Counter()
    for targets, count in combos:
        networks = {networks_of.get(t, t) for t in (targets or []) if isinstance(t, str)}
        for network in networks & set(NETWORKS):
            counts[network] += int(count)
    return counts


def top_with_other(counts: Counter[str], top: int = 4) -> dict[str, int]:
    ranked = counts.most_common()
    shown = dict(ranked[:top])
    rest = sum(c for _, c in ranked[top:])
    if rest:
        shown["other"] = rest
    return shown


async def dashboard(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    """Counts for the dashboard. Days and weeks are UTC; the week starts on Monday."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    requests = await usage.usage_totals(conn, now.date())
    return {
        "overview": {
            "total_workspaces": await _count(conn, workspaces),
            "total_posts": await _count(conn, posts),
            "total_accounts": await _count(conn, social_accounts),
            "total_users": await _count(conn, users),
        },
        "activity": {
            "posts_today": await _count(conn, posts, posts.c.created_at >= today),
            "posts_this_week": await _count(conn, posts, posts.c.created_at >= week),
            "scheduled_posts": await _count(conn, posts, posts.c.status == "scheduled"),
            "failed_posts": await _count(conn, posts, posts.c.status == "failed"),
        },
        "api_usage": {
            "requests_today": requests["requests_today"],
            "requests_this_month": requests["requests_this_month"],
            "active_keys": await _count(conn, api_keys, api_keys.c.is_active.is_(True)),
        },
        "platform_distribution": top_with_other(await posts_by_network(conn)),
    }


def directory_size(path: Path) -> int:
    """Bytes of the regular files under `path` (0 when it does not exist). Blocking: run in a thread."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed while walking
    return total


async def stats(conn: AsyncConnection, data_dir: Path, now: datetime) -> dict[str, Any]:
    post_status = {str(s): 0 for s in statuses.POST_STATUSES} | await _grouped(conn, posts.c.status)
    account_status = {str(s): 0 for s in ACCOUNT_STATUSES} | await _grouped(conn, social_accounts.c.status)
    used = await asyncio.to_thread(directory_size, data_dir)
    limit = await asyncio.to_thread(_disk_total, data_dir)
    requests = await usage.usage_totals(conn, now.date())
    return {
        "posts": {
            "total": sum(post_status.values()),
            "by_status": post_status,
            "by_platform": dict((await posts_by_network(conn)).most_common()),
        },
        "accounts": {"total": sum(account_status.values()), "by_status": account_status},
        "usage": {
            "storage_used_mb": round(used / 2**20, 1),
            "storage_limit_mb": round(limit / 2**20, 1) if limit else None,
            "api_calls_this_month": requests["requests_this_month"],
        },
    }


def _disk_total(path: Path) -> int | None:
    probe = path if path.exists() else path.parent
    try:
        return shutil.disk_usage(probe).total
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------
# Health


async def check_database(engine: AsyncEngine) -> dict[str, Any]:
    started = time.monotonic()
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to answer is "unhealthy", whatever the driver raised
        return {"status": "unhealthy", "error": type(exc).__name__}
    return {"status": "healthy", "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_storage(data_dir: Path) -> dict[str, Any]:
    """Disk usage of the data dir's filesystem, and a write+delete probe. Blocking: run in a thread."""
    started = time.monotonic()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".health-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
        usage = shutil.disk_usage(data_dir)
    except OSError as exc:
        return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    used_percent = round(usage.used / usage.total * 100, 1) if usage.total else 0.0
    status = "healthy"
    if used_percent >= STORAGE_UNHEALTHY_PERCENT:
        status = "unhealthy"
    elif used_percent >= STORAGE_DEGRADED_PERCENT:
        status = "degraded"
    return {
        "status": status,
        "used_percent": used_percent,
        "free_mb": round(usage.free / 2**20, 1),
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }


WORKER_ALIVE_SECONDS = 60.0  # a heartbeat this recent means alive (workers beat every lease/3, 10 s by default)
STALLED_DUE_SECONDS = 60.0  # due jobs waiting this long with no worker alive: nothing is publishing
BACKLOG_DUE_SECONDS = 300.0  # due jobs waiting this long even with workers alive: they are stuck or swamped


async def check_queue(engine: AsyncEngine, now: datetime) -> dict[str, Any]:
    """The queue and its workers: jobs per status, the workers alive (recent heartbeat), and the
    oldest due-but-unclaimed job with its age.

    `degraded` when due jobs have waited over STALLED_DUE_SECONDS while no worker is alive (a
    scheduler that silently stopped), or over BACKLOG_DUE_SECONDS whatever the workers (stuck or
    swamped). A database error makes it `unhealthy` (reported, not raised).
    """
    started = time.monotonic()
    try:
        stats = await queue.queue_stats(engine, now, alive_within=WORKER_ALIVE_SECONDS)
        async with engine.connect() as conn:
            alive = await queue.alive_workers(conn, now - timedelta(seconds=WORKER_ALIVE_SECONDS), limit=50)
    except Exception as exc:  # reported, not raised: health answers whatever fails
        return {"status": "unhealthy", "error": type(exc).__name__}
    age = stats.oldest_due_age_seconds
    status, detail = "healthy", None
    if age is not None and age > STALLED_DUE_SECONDS and stats.workers_alive == 0:
        status, detail = "degraded", f"{stats.due} due job(s) waiting up to {age:.0f}s and no worker is alive"
    elif age is not None and age > BACKLOG_DUE_SECONDS:
        status, detail = "degraded", f"{stats.due} due job(s) waiting up to {age:.0f}s: workers are behind"
    result: dict[str, Any] = {
        "status": status,
        "pending_jobs": stats.by_status["queued"],
        "running_jobs": stats.by_status["running"],
        "failed_jobs": stats.by_status["failed"],
        "due_jobs": stats.due,
        "oldest_due_job": None if stats.oldest_due_at is None else {
            "run_at": isoformat(stats.oldest_due_at), "age_seconds": round(age or 0.0, 1),
        },
        "workers_alive": stats.workers_alive,
        "workers": [
            {"id": w.id, "hostname": w.hostname, "pid": w.pid, "concurrency": w.concurrency,
             "started_at": isoformat(w.started_at), "last_heartbeat": isoformat(w.heartbeat_at)}
            for w in alive
        ],
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if detail:
        result["detail"] = detail
    return result


def overall(components: Iterable[dict[str, Any]]) -> str:
    statuses = {c["status"] for c in components}
    if "unhealthy" in statuses:
        return "unhealthy"
    return "degraded" if "degraded" in statuses else "healthy"


# ------------------------------------------------------------------------------------------------
# System


async def database_version(conn: AsyncConnection) -> str:
    if conn.dialect.name == "sqlite":
        return "SQLite " + str(await conn.scalar(sa.text("SELECT sqlite_version()")))
    raw = str(await conn.scalar(sa.text("SELECT VERSION()")))
    if raw.startswith("PostgreSQL"):  # PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu, ...
        return "PostgreSQL " + raw.split()[1]
    if "mariadb" in raw.lower():
        return "MariaDB " + raw.split("-", 1)[0]
    return "MySQL " + raw.split("-", 1)[0]


def memory_mb() -> dict[str, float | None]:
    """Resident memory of this process and the limit it runs under (cgroup limit, else address-space
    rlimit, else physical memory), in MB. Linux reads /proc and /sys; elsewhere peak RSS is used."""
    used: float | None = None
    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        used = peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
    return {"used_mb": round(used, 1) if used is not None else None, "limit_mb": _memory_limit_mb()}


def _memory_limit_mb() -> float | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 2**60:  # "max" or a huge number mean no limit
            return round(int(raw) / 2**20, 1)
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        return round(soft / 2**20, 1)
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, 1)
    except (ValueError, OSError):
        return None


def python_version() -> str:
    return platform.python_version()
