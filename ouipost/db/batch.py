"""Group commit: many small writes of concurrent tasks in one transaction, and the helpers for it.

A worker publishing hundreds of posts a second cannot afford a transaction (and its commit, its
connection check-out, its fsync) per step of each post. `GroupCommit` lets each task ask for its
step as if it ran alone (`await batcher.submit(item)`), while the items that arrive during one
transaction are written together by the next: one transaction, set-based statements, one commit.
An idle process pays no waiting: the first item starts a transaction at once.

The item's result is given to its task only after the commit, so "committed before X" holds per
item exactly as with a transaction of its own. When a batch's transaction fails, its items are
retried one by one, each in its own transaction: one bad item fails only its own task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.db.types import UTCDateTime

log = logging.getLogger("ouipost.batch")

T = TypeVar("T")
R = TypeVar("R")

# Statements on the hot paths are built once, with these parameters: a statement object reused keeps
# its compiled form and cache key, and an expanding IN takes any number of values without a new
# statement (building and compiling SQL is otherwise most of a batch's cost in Python).
NOW = sa.bindparam("now", type_=UTCDateTime())


# MySQL/MariaDB run an executemany of UPDATEs as one statement per row (one round trip, one parse
# each: the largest share of a publishing worker's CPU after the batching above). One UPDATE can give
# each row its own value instead: the values travel as one JSON object keyed by the row's key, and
# each row picks its own with JSON_VALUE, in a statement compiled once.
def json_value_of(name: str, key: sa.ColumnElement[Any], field: str = "") -> sa.ColumnElement[Any]:
    """MySQL/MariaDB: the value under the row's `key` (then under `field`, if given) in the JSON
    object passed as parameter `name` (see `json_by_key`); SQL NULL where it is absent."""
    path_end = f'".{field}' if field else '"'
    return sa.func.json_value(sa.bindparam(name, type_=sa.String()), sa.func.concat('$."', key, path_end))


def json_by_key(values: dict[Any, Any]) -> str | None:
    """The JSON object for json_value_of, or None when some key could not be written in a JSON path
    as it is (a quote or a backslash): then update row by row. None values are left out (they read
    as SQL NULL)."""
    if any('"' in str(key) or "\\" in str(key) for key in values):
        return None
    return json.dumps({
        str(key): ({k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value)
        for key, value in values.items() if value is not None
    }, ensure_ascii=False)  # raw UTF-8: \\u escapes of characters beyond the BMP are not decoded alike everywhere


def expanding(name: str = "ids") -> sa.BindParameter[Any]:
    """An IN parameter given a list at execution: `column.in_(expanding())` with {"ids": [...]}."""
    return sa.bindparam(name, expanding=True)


TRANSIENT_MYSQL_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock: the transaction may run again
TRANSIENT_POSTGRESQL_STATES = frozenset({"40P01", "40001", "55P03"})  # deadlock, serialization, lock not available
TRANSIENT_ATTEMPTS = 4


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that may read, decide, then write, consistently on both databases.

    MySQL/MariaDB and PostgreSQL: an ordinary transaction (READ COMMITTED); the caller locks what it reads with
    FOR UPDATE where a decision depends on it. SQLite: BEGIN IMMEDIATE, so the reads already hold
    the writer lock (the driver's deferred BEGIN would let another process write between our read
    and our write, and then refuse our write with "database is locked").
    """
    async with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            async with conn.begin():
                yield conn
            return
        async with immediate_transaction(conn):
            yield conn


@asynccontextmanager
async def immediate_transaction(conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """SQLite: a transaction on `conn` (which has none open) begun with BEGIN IMMEDIATE, committed
    at the end of the block and rolled back if it raises. The driver's own transaction handling
    would open a deferred transaction, whose upgrade to a writer can fail with "database is locked"
    after a read; AUTOCOMMIT hands the BEGIN to us."""
    await conn.execution_options(isolation_level="AUTOCOMMIT")
    await conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        await conn.exec_driver_sql("ROLLBACK")
        raise
    await conn.exec_driver_sql("COMMIT")


def is_transient(exc: BaseException) -> bool:
    """A failure that says nothing about the data: running the same transaction again may succeed."""
    if isinstance(exc, DBAPIError):
        args = getattr(exc.orig, "args", ())
        if args and args[0] in TRANSIENT_MYSQL_CODES:
            return True
        if getattr(exc.orig, "sqlstate", None) in TRANSIENT_POSTGRESQL_STATES:
            return True
        return "database is locked" in str(exc.orig)
    return False


async def run_transaction(engine: AsyncEngine, body: Callable[[AsyncConnection], Awaitable[R]]) -> R:
    """`body` in a write transaction, run again (a few times, after a short jittered pause) when the
    database reports a deadlock or a lock wait timeout."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            async with write_transaction(engine) as conn:
                return await body(conn)
        except Exception as exc:
            if attempt == TRANSIENT_ATTEMPTS or not is_transient(exc):
                raise
            log.info("transaction hit %s; running it again (attempt %d)", type(exc).__name__, attempt + 1)
            await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")


class GroupCommit(Generic[T, R]):
    """Writes the items submitted by concurrent tasks in shared transactions.

    `apply(conn, items)` does the work of a batch inside one transaction and returns one result
    per item, in order (an item that cannot be done gets a result saying so, it does not raise).
    One batch runs at a time per GroupCommit; items submitted meanwhile wait for the next, up to
    `max_items` in each.
    """

    def __init__(self, engine: AsyncEngine, apply: Callable[[AsyncConnection, list[T]], Awaitable[list[R]]], *,
                 name: str, max_items: int = 200) -> None:
        self.engine = engine
        self.name = name
        self.max_items = max_items
        self._apply = apply
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._draining: asyncio.Task[None] | None = None
        self.batches = 0  # how many batches were written together (tests, benchmarks)
        self.items = 0  # how many items those batches held

    async def submit(self, item: T) -> R:
        """Queue `item`; returns its result once its batch committed, or raises what its own
        transaction raised. A cancelled caller does not take its item back: the write goes on."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain(), name=f"group-commit-{self.name}")
        return await asyncio.shield(future)

    async def wait_idle(self) -> None:
        """Return once every item submitted so far is written (or has failed)."""
        while self._draining is not None and not self._draining.done():
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:self.max_items], self._pending[self.max_items:]
            await self._run(batch)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await run_transaction(self.engine, lambda conn: self._apply(conn, items))
            if len(results) != len(items):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(items)} items")
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning("%s: a batch of %d failed (%s: %s); writing its items one by one", self.name, len(batch),
                        type(exc).__name__, exc)
            for one in batch:
                await self._run([one])
            return
        self.batches += 1
        self.items += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
