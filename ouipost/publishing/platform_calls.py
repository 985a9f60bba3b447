"""Platform health: the outcome of every call the workers make to a network, and what the last 24
hours of them say about each network.

The workers record calls (`PlatformCallLog` collects one job's calls as PlatformHttp observes them;
`record_calls` writes them in the caller's transaction); the admin API and UI read
`platform_health`. Old rows go with housekeeping (platform_calls retention).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core.clock import isoformat
from ouipost.db.admin_tables import platform_calls
from ouipost.platforms.registry import NETWORKS

DEGRADED_ERROR_RATE = 5.0  # percent of calls failed in 24 h
DOWN_ERROR_RATE = 50.0


async def record_platform_call(
    conn: AsyncConnection, *, network: str, ok: bool, status: int | None, latency_ms: int, at: datetime
) -> None:
    """Record one publish call's outcome (the worker calls this after each call to a network).
    `status` is the HTTP status, None when no answer came (connection error, timeout)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}")
    await conn.execute(
        platform_calls.insert().values(network=network, ok=ok, status=status, latency_ms=max(0, latency_ms), at=at)
    )


def call_ok(status: int | None) -> bool:
    """Whether a call speaks for the network's health: an answer that is not a 5xx or a 429. A 4xx
    (bad content, an expired token) is the request's problem, not the network's."""
    return status is not None and status < 500 and status != 429


class PlatformCallLog:
    """Collects the adapter calls of one job (PlatformHttp's observer) and writes them at once.

    `observe` only appends to a list (it runs after every HTTP call, so it must not wait on the
    database); `flush(conn)` inserts them all in one multi-row INSERT inside a transaction the
    caller commits anyway, so recording adds no commit to publishing.
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self.calls: list[dict[str, Any]] = []

    def observe(self, network: str, method: str, url: str, status: int | None, seconds: float) -> None:
        if network in NETWORKS:  # a misnamed network must not break the flush of the others
            self.calls.append({"network": network, "ok": call_ok(status), "status": status,
                               "latency_ms": max(0, round(seconds * 1000)), "at": self._now()})

    async def flush(self, conn: AsyncConnection) -> int:
        """Insert what was observed since the last flush; returns how many. Database errors propagate
        (and the calls are kept for another flush)."""
        if not self.calls:
            return 0
        await conn.execute(platform_calls.insert(), self.calls)
        count, self.calls = len(self.calls), []
        return count


async def record_calls(conn: AsyncConnection, calls: Sequence[dict[str, Any]]) -> None:
    """Insert calls a `PlatformCallLog` gathered (its `calls`), in one statement in the caller's
    transaction: the publishing worker writes those of many posts with their answers."""
    if calls:
        await conn.execute(platform_calls.insert(), list(calls))


async def prune_platform_calls(conn: AsyncConnection, before: datetime) -> int:
    """Delete outcomes older than `before` (housekeeping; health reads 24 h and the last success)."""
    return (await conn.execute(platform_calls.delete().where(platform_calls.c.at < before))).rowcount


def _network_status(calls: int, error_rate: float) -> tuple[str, str]:
    if calls == 0:
        return "unknown", "unknown"
    if error_rate >= DOWN_ERROR_RATE:
        return "down", "major_outage"
    if error_rate >= DEGRADED_ERROR_RATE:
        return "degraded", "partial_outage"
    return "operational", "healthy"


async def platform_health(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    since = now - timedelta(hours=24)
    rows = await conn.execute(
        sa.select(
            platform_calls.c.network,
            sa.func.count(),
            sa.func.sum(sa.case((platform_calls.c.ok.is_(False), 1), else_=0)),
            sa.func.sum(sa.case((platform_calls.c.status == 429, 1), else_=0)),
            sa.func.avg(platform_calls.c.latency_ms),
        )
        .where(platform_calls.c.at >= since)
        .group_by(platform_calls.c.network)
    )
    recent = {network: (int(n), int(f or 0), int(r or 0), float(a or 0)) for network, n, f, r, a in rows}
    last_ok = dict(
        (await conn.execute(
            sa.select(platform_calls.c.network, sa.func.max(platform_calls.c.at))
            .where(platform_calls.c.ok.is_(True))
            .group_by(platform_calls.c.network)
        )).all()
    )
    networks: dict[str, Any] = {}
    for network in NETWORKS:
        calls, failures, rate_limited, avg_latency = recent.get(network, (0, 0, 0, 0.0))
        error_rate = round(failures / calls * 100, 1) if calls else None
        status, api_status = _network_status(calls, error_rate or 0.0)
        entry: dict[str, Any] = {
            "status": status,
            "api_status": api_status,
            "last_successful_post": isoformat(last_ok.get(network)),
            "error_rate_24h": error_rate,
            "avg_response_time_ms": round(avg_latency) if calls else None,
            "calls_24h": calls,
        }
        issues = []
        if calls and status != "operational":
            issues.append(f"{error_rate}% of publish calls failed in the last 24 hours")
        if rate_limited:
            issues.append(f"Rate limited {rate_limited} time{'s' if rate_limited > 1 else ''} in the last 24 hours")
        if issues:
            entry["issues"] = issues
        networks[network] = entry
    known = [e["status"] for e in networks.values() if e["status"] != "unknown"]
    if not known:
        overall_status = "unknown"
    elif all(s == "down" for s in known):
        overall_status = "down"
    elif all(s == "operational" for s in known):
        overall_status = "operational"
    else:
        overall_status = "degraded"
    return {"platforms": networks, "overall_status": overall_status, "last_updated": isoformat(now)}
