"""API-key usage: requests served per key and UTC day, and when each key was last used.

Counting stays off the request path: `UsageRecorder.count_request` adds one to a counter in memory,
and a task of the app writes what was counted every FLUSH_SECONDS in one transaction: one multi-row
upsert for the request counts (`INSERT ... ON CONFLICT DO UPDATE requests = requests + excluded`
on SQLite and PostgreSQL, `INSERT ... ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests)` on MySQL /
MariaDB) and, for keys whose stored last_used_at is older than LAST_USED_RESOLUTION, one batched
UPDATE. The admin views therefore see usage within FLUSH_SECONDS (the contract says 5 s). The app's
cleanup flushes what is left, so a clean stop loses nothing; a killed process (kill -9) loses at
most the last FLUSH_SECONDS of counts. A flush that fails keeps its counts for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from ouipost.db.admin_tables import api_key_usage
from ouipost.db.batch import run_transaction
from ouipost.db.engine import create_engine
from ouipost.db.tables import api_keys
from ouipost.http.context import SETTINGS
from ouipost.identity.api_keys import ApiKey

log = logging.getLogger("ouipost.http.usage")

FLUSH_SECONDS = 2.0
# last_used_at is written at most this often per key: it says "in use lately", not "this second".
LAST_USED_RESOLUTION = timedelta(seconds=60)
_ROWS_PER_STATEMENT = 1000  # SQLite's bound-parameter cap leaves room for 3 x this
_WARNING_INTERVAL_SECONDS = 60.0

_TOUCH_KEYS = (
    api_keys.update()
    .where(api_keys.c.id == sa.bindparam("key_id"),
           sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < sa.bindparam("at")))
    .values(last_used_at=sa.bindparam("at"))
)


class UsageRecorder:
    """Counts in memory, writes in batches. One per app (the USAGE app key)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._requests: Counter[tuple[str, date]] = Counter()
        self._last_used: dict[str, datetime] = {}
        self._lock = asyncio.Lock()  # one flush at a time: a failed one puts its counts back
        self._warned_at = -math.inf

    def count_request(self, key: ApiKey, now: datetime) -> None:
        """One request served with `key` at `now` (UTC); no I/O."""
        self._requests[key.id, now.date()] += 1
        stale = key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION
        if stale and (key.id not in self._last_used or self._last_used[key.id] < now):
            self._last_used[key.id] = now

    @property
    def pending(self) -> int:
        """Requests counted and not yet written."""
        return sum(self._requests.values())

    async def flush(self) -> int:
        """Write what was counted since the last flush; returns the number of requests written.

        Database errors propagate after the counts are put back for the next flush. Counts of a key
        deleted meanwhile are dropped (its usage rows went with it).
        """
        async with self._lock:
            requests, self._requests = self._requests, Counter()
            used, self._last_used = self._last_used, {}
            if not requests and not used:
                return 0
            try:
                await self._write(requests, used)
            except BaseException:
                self._requests.update(requests)
                for key_id, at in used.items():
                    if key_id not in self._last_used or self._last_used[key_id] < at:
                        self._last_used[key_id] = at
                raise
            return sum(requests.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every FLUSH_SECONDS until `stop` is set (the last flush is the app cleanup's)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), FLUSH_SECONDS)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                await self.flush()
            except Exception as exc:  # the database may be away for a while: counts wait in memory
                if time.monotonic() - self._warned_at >= _WARNING_INTERVAL_SECONDS:
                    self._warned_at = time.monotonic()
                    log.warning("API usage not written yet (%s); %d requests wait for the next flush",
                                type(exc).__name__, self.pending)

    async def _write(self, requests: Mapping[tuple[str, date], int], used: Mapping[str, datetime]) -> None:
        # Two processes upserting overlapping key-days can deadlock on MySQL; rows go in key order to
        # make it rare, and the loser runs again.
        await run_transaction(self._engine, lambda conn: _write_batch(conn, requests, used))


async def _write_batch(
    conn: AsyncConnection, requests: Mapping[tuple[str, date], int], used: Mapping[str, datetime]
) -> None:
    key_ids = {key_id for key_id, _ in requests} | set(used)
    existing = set((await conn.execute(sa.select(api_keys.c.id).where(api_keys.c.id.in_(key_ids)))).scalars())
    rows = [{"key_id": key_id, "day": day, "requests": count}
            for (key_id, day), count in sorted(requests.items()) if key_id in existing]
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        await conn.execute(_add_requests(conn.dialect.name, rows[start:start + _ROWS_PER_STATEMENT]))
    touched = [{"key_id": key_id, "at": at} for key_id, at in sorted(used.items()) if key_id in existing]
    if touched:
        await conn.execute(_TOUCH_KEYS, touched)


def _add_requests(dialect: str, rows: list[dict[str, Any]]) -> Any:
    """One INSERT of `rows` that adds their counts to the rows already there."""
    if dialect in ("sqlite", "postgresql"):
        on_conflict = (sqlite if dialect == "sqlite" else postgresql).insert(api_key_usage).values(rows)
        return on_conflict.on_conflict_do_update(
            index_elements=[api_key_usage.c.key_id, api_key_usage.c.day],
            set_={"requests": api_key_usage.c.requests + on_conflict.excluded.requests},
        )
    on_mysql = mysql.insert(api_key_usage).values(rows)
    return on_mysql.on_duplicate_key_update(requests=api_key_usage.c.requests + on_mysql.inserted.requests)


USAGE = web.AppKey("usage_recorder", UsageRecorder)


async def recorder_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the recorder, its flushing task, and the last flush at cleanup.

    The recorder has an engine of its own without a pool (a connection per flush, every 2 s at
    most): it never waits for a connection that requests hold, and never leaves one behind in a
    pool that the owner of the app's engine disposed before the app's cleanup ran (tests do).
    """
    engine = create_engine(app[SETTINGS].database_url, poolclass=NullPool)
    recorder = UsageRecorder(engine)
    app[USAGE] = recorder
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop), name="usage-flush")
    yield
    stop.set()
    await task
    try:
        written = await recorder.flush()
    except Exception:
        log.exception("API usage of %d requests could not be written at shutdown", recorder.pending)
    else:
        if written:
            log.debug("API usage of %d requests written at shutdown", written)
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------------------------
# Reading


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
