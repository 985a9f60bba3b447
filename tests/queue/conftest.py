"""Helpers for queue tests: enqueue through the domain function, read a job's row back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.db.queue_tables import jobs
from ouipost.jobs import queue

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


async def add_job(engine: AsyncEngine, kind: str = "noop", *, now: datetime = NOW, **options: Any) -> int | None:
    """Enqueue one job in its own transaction, as a domain function would."""
    async with engine.begin() as conn:
        return await queue.enqueue(conn, kind=kind, payload=options.pop("payload", {}), now=now, **options)


async def job_row(engine: AsyncEngine, job_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).one()


async def count_jobs(engine: AsyncEngine, **where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(jobs)
    for column, value in where.items():
        query = query.where(jobs.c[column] == value)
    async with engine.connect() as conn:
        return (await conn.execute(query)).scalar_one()


@pytest.fixture
def is_mysql(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "mysql"
