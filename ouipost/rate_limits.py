"""Per-key rate limits on /api and the usage counters the admin API shows.

Fixed one-minute windows per key, counted in the database so that every process shares them: each
authenticated request upserts its window's counter (`INSERT ... ON CONFLICT DO UPDATE` on SQLite,
`INSERT ... ON DUPLICATE KEY UPDATE` on MySQL/MariaDB) and reads it back in the same transaction.
The row lock (MySQL) or the writer lock (SQLite) held until commit makes the count exact under
concurrency. A request within the limit also bumps the key's per-day usage row in that same
transaction: one commit per request for both.

Every answer to a request with a valid key carries X-RateLimit-Limit, -Remaining and -Reset (the
epoch second the window ends), error answers included: the middleware leaves the numbers on the
request and an `on_response_prepare` hook writes them on whatever response goes out. Past the limit:
429 RATE_LIMITED with Retry-After (whole seconds until the window ends).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost import errors
from ouipost.context import API_KEY, CLOCK, DB, SETTINGS
from ouipost.db.admin_tables import api_key_usage, rate_limit_counters
from ouipost.web import Handler

WINDOW_SECONDS = 60
_DEADLOCK_RETRIES = 3
_MYSQL_DEADLOCK_CODES = {1213, 1205}  # deadlock found, lock wait timeout


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset: int  # epoch second at which the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


RATE_LIMIT = web.RequestKey("rate_limit", RateLimitState)


def window_start(now: datetime) -> int:
    return int(now.timestamp()) // WINDOW_SECONDS * WINDOW_SECONDS


def limit_for(tier: str, limits: dict[str, int] | Any) -> int:
    """The tier's per-minute limit; a tier no longer configured gets the smallest configured limit."""
    if tier in limits:
        return int(limits[tier])
    return min(int(v) for v in limits.values())


def _upsert_increment(conn: AsyncConnection, table: sa.Table, values: dict[str, Any], column: str) -> Any:
    """INSERT values with `column` = 1, or add 1 to the existing row's `column`, atomically."""
    if conn.dialect.name == "sqlite":
        stmt = sqlite.insert(table).values(**values, **{column: 1})
        pk = [c.name for c in table.primary_key.columns]
        return stmt.on_conflict_do_update(index_elements=pk, set_={column: table.c[column] + 1})
    stmt = mysql.insert(table).values(**values, **{column: 1})
    return stmt.on_duplicate_key_update({column: table.c[column] + 1})


async def hit(conn: AsyncConnection, key_id: str, limit: int, now: datetime) -> int:
    """Count one request in the key's current window and return the window's count (this request
    included). A request within the limit is also counted in the key's usage for the day."""
    start = window_start(now)
    await conn.execute(_upsert_increment(conn, rate_limit_counters, {"key_id": key_id, "window_start": start}, "count"))
    count = int(
        await conn.scalar(
            sa.select(rate_limit_counters.c.count).where(
                rate_limit_counters.c.key_id == key_id, rate_limit_counters.c.window_start == start
            )
        )
        or 0
    )
    if count == 1:
        # First request of a new window: the key's older windows are of no use any more.
        await conn.execute(
            rate_limit_counters.delete().where(
                rate_limit_counters.c.key_id == key_id, rate_limit_counters.c.window_start < start
            )
        )
    if count <= limit:
        await conn.execute(_upsert_increment(conn, api_key_usage, {"key_id": key_id, "day": now.date()}, "requests"))
    return count


async def _hit_with_retry(engine: AsyncEngine, key_id: str, limit: int, now: datetime) -> int:
    # Concurrent first inserts of one window can deadlock on MySQL; the loser is retried.
    for attempt in range(_DEADLOCK_RETRIES):
        try:
            async with engine.begin() as conn:
                return await hit(conn, key_id, limit, now)
        except sa.exc.OperationalError as exc:
            code = getattr(exc.orig, "args", [None])[0]
            if code not in _MYSQL_DEADLOCK_CODES or attempt == _DEADLOCK_RETRIES - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Place after api_key_middleware: acts only on requests it authenticated."""
    key = request.get(API_KEY)
    if key is None:
        return await handler(request)
    limit = limit_for(key.tier, request.app[SETTINGS].rate_limits)
    now = request.app[CLOCK].now()
    count = await _hit_with_retry(request.app[DB], key.id, limit, now)
    reset = window_start(now) + WINDOW_SECONDS
    request[RATE_LIMIT] = RateLimitState(limit, max(0, limit - count), reset)
    if count > limit:
        retry_after = max(1, math.ceil(reset - now.timestamp()))
        raise errors.RateLimited(
            f"Rate limit of {limit} requests per minute exceeded for this API key",
            details={"limit": limit, "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
    return await handler(request)


async def add_rate_limit_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """on_response_prepare hook: the numbers go on every answer, errors included."""
    state = request.get(RATE_LIMIT)
    if state is not None:
        response.headers.update(state.headers())


# ------------------------------------------------------------------------------------------------
# Usage


async def usage_by_key(conn: AsyncConnection, key_ids: Iterable[str], today: date) -> dict[str, dict[str, int]]:
    """requests_today and requests_this_month (UTC) for each key, in one grouped query."""
    ids = list(key_ids)
    usage = {k: {"requests_today": 0, "requests_this_month": 0} for k in ids}
    if not ids:
        return usage
    month_start = today.replace(day=1)
    rows = await conn.execute(
        sa.select(
            api_key_usage.c.key_id,
            sa.func.sum(api_key_usage.c.requests),
            sa.func.sum(sa.case((api_key_usage.c.day == today, api_key_usage.c.requests), else_=0)),
        )
        .where(api_key_usage.c.key_id.in_(ids), api_key_usage.c.day >= month_start)
        .group_by(api_key_usage.c.key_id)
    )
    for key_id, month, day in rows:
        usage[key_id] = {"requests_today": int(day or 0), "requests_this_month": int(month or 0)}
    return usage


async def usage_totals(conn: AsyncConnection, today: date) -> dict[str, int]:
    """Requests of all keys today and this month (UTC)."""
    row = (
        await conn.execute(
            sa.select(
                sa.func.sum(api_key_usage.c.requests),
                sa.func.sum(sa.case((api_key_usage.c.day == today, api_key_usage.c.requests), else_=0)),
            ).where(api_key_usage.c.day >= today.replace(day=1))
        )
    ).first()
    month, day = (row or (0, 0))
    return {"requests_today": int(day or 0), "requests_this_month": int(month or 0)}
