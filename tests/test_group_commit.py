"""Group commit (ouipost/db/batch.py): the writes of concurrent tasks share transactions, each task
gets its own result only once its write is committed, and one bad item fails only its own task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.db.batch import GroupCommit, write_transaction
from ouipost.db.pacing_tables import pacing as rows_table  # a plain (key, integer) table to write into


async def _insert(conn: AsyncConnection, items: list[tuple[str, int]]) -> list[str]:
    await conn.execute(rows_table.insert(), [{"key": key, "tat_ms": value} for key, value in items])
    return [f"stored {key}" for key, _ in items]


async def _stored(engine: Any) -> dict[str, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(sa.select(rows_table.c.key, rows_table.c.tat_ms))).all())


async def test_concurrent_writes_share_transactions_and_each_task_gets_its_own_answer(engine: Any) -> None:
    batcher: GroupCommit[tuple[str, int], str] = GroupCommit(engine, _insert, name="test")
    answers = await asyncio.gather(*(batcher.submit((f"k{n:03d}", n)) for n in range(60)))
    assert answers == [f"stored k{n:03d}" for n in range(60)]
    assert await _stored(engine) == {f"k{n:03d}": n for n in range(60)}
    # Tasks that submit while a transaction is being prepared or runs share the next one.
    assert batcher.items == 60 and batcher.batches <= 2


async def test_a_bad_item_fails_only_its_own_task(engine: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(rows_table.insert().values(key="taken", tat_ms=1))
    batcher: GroupCommit[tuple[str, int], str] = GroupCommit(engine, _insert, name="test")
    first = asyncio.ensure_future(batcher.submit(("a", 1)))
    rest = [asyncio.ensure_future(batcher.submit(item)) for item in (("b", 2), ("taken", 99), ("c", 3))]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert results[0] == "stored a" and results[1] == "stored b" and results[3] == "stored c"
    assert isinstance(results[2], IntegrityError)  # the duplicate key, reported to its own task only
    assert await _stored(engine) == {"taken": 1, "a": 1, "b": 2, "c": 3}


async def test_a_cancelled_task_does_not_take_its_write_back(engine: Any) -> None:
    started = asyncio.Event()

    async def slow_insert(conn: AsyncConnection, items: list[tuple[str, int]]) -> list[str]:
        started.set()
        await asyncio.sleep(0.2)
        return await _insert(conn, items)

    batcher: GroupCommit[tuple[str, int], str] = GroupCommit(engine, slow_insert, name="test")
    task = asyncio.ensure_future(batcher.submit(("kept", 7)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if await _stored(engine):
            break
        await asyncio.sleep(0.05)
    assert await _stored(engine) == {"kept": 7}


async def test_a_write_transaction_reads_and_writes_under_one_lock(engine: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(rows_table.insert().values(key="counter", tat_ms=0))

    async def bump() -> None:
        async with write_transaction(engine) as conn:
            value = await conn.scalar(sa.select(rows_table.c.tat_ms).where(rows_table.c.key == "counter")
                                      .with_for_update())
            await asyncio.sleep(0.01)  # another writer would slip in here without the lock
            await conn.execute(rows_table.update().where(rows_table.c.key == "counter").values(tat_ms=value + 1))

    await asyncio.gather(*(bump() for _ in range(8)))
    assert (await _stored(engine))["counter"] == 8


async def test_waiting_for_idle_returns_once_everything_submitted_is_written(engine: Any) -> None:
    batcher: GroupCommit[tuple[str, int], str] = GroupCommit(engine, _insert, name="test")
    tasks = [asyncio.ensure_future(batcher.submit((f"w{n}", n))) for n in range(5)]
    await asyncio.sleep(0)  # the tasks submit; nobody awaits them
    await batcher.wait_idle()  # what a stopping worker does before its process ends
    assert await _stored(engine) == {f"w{n}": n for n in range(5)}
    assert [t.result() for t in tasks] == [f"stored w{n}" for n in range(5)]
