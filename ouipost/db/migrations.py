"""Schema migrations with Alembic; scripts live in `sql/` (one script serves both databases).

A built wheel carries `sql/` as the data package `ouipost._sql` (setup.py maps it); the checkout's
top-level folder is used when the package has none (a checkout or an editable install).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def _script_location() -> Path:
    """The installed package's copy of `sql/` when there is one, else the checkout's `sql/`."""
    packaged = Path(__file__).resolve().parents[1] / "_sql"
    return packaged if (packaged / "env.py").is_file() else Path(__file__).resolve().parents[2] / "sql"


SCRIPT_LOCATION = _script_location()
LOCK_NAME = "ouipost:migrate"
LOCK_WAIT_SECONDS = 600  # how long a migrator waits for another one to finish before giving up


class MigrationError(Exception):
    """A migration failed; the message says where the database stands and what to do."""


@dataclass(frozen=True)
class MigrationStatus:
    current: tuple[str, ...]
    heads: tuple[str, ...]

    @property
    def pending(self) -> bool:
        return set(self.current) != set(self.heads)


def count_between(before: MigrationStatus, after: MigrationStatus) -> int:
    """How many migrations lead from `before.current` (an empty schema when none) to `after.current`."""
    if set(before.current) == set(after.current):
        return 0
    script = ScriptDirectory.from_config(alembic_config())
    return sum(1 for _ in script.iterate_revisions(after.current, before.current or "base"))


def alembic_config() -> Config:
    if not (SCRIPT_LOCATION / "env.py").exists():
        raise MigrationError(f"migration scripts not found in {SCRIPT_LOCATION}")
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    return cfg


async def migration_status(engine: AsyncEngine) -> MigrationStatus:
    cfg = alembic_config()
    heads = tuple(sorted(ScriptDirectory.from_config(cfg).get_heads()))

    def current(conn: Connection) -> tuple[str, ...]:
        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))

    async with engine.connect() as conn:
        return MigrationStatus(await conn.run_sync(current), heads)


async def upgrade(engine: AsyncEngine) -> MigrationStatus:
    """Apply every pending migration. Re-running is a no-op.

    On SQLite each migration runs in one transaction, so a failure leaves the database as it was
    before that migration. MySQL commits DDL implicitly; on failure the message names the revision
    the database is at and the one that failed, so an operator can fix the cause and re-run.
    """
    cfg = alembic_config()

    def run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")

    async with migration_lock(engine):
        before = await migration_status(engine)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(run)
        except Exception as exc:
            raise await _failure(engine, before, exc) from exc
    return await migration_status(engine)


@contextlib.asynccontextmanager
async def migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """One migrator at a time per database: `ouipost migrate` run on two hosts at once (an
    ExecStartPre on each), or a supervisor and an operator, would otherwise both create the same
    tables and one would fail half-way. The second waits for the first, then finds nothing to do.

    MySQL/MariaDB: GET_LOCK on a connection of its own; PostgreSQL: a session advisory lock;
    SQLite: an exclusive lock on a file beside the database (none for an in-memory one).
    """
    dialect = engine.dialect.name
    if dialect in ("mysql", "postgresql"):
        take, give = {
            "mysql": ("SELECT GET_LOCK(:name, :wait)", "SELECT RELEASE_LOCK(:name)"),
            "postgresql": ("SELECT pg_advisory_lock(hashtext(:name))", "SELECT pg_advisory_unlock(hashtext(:name))"),
        }[dialect]
        async with engine.connect() as conn:
            if dialect == "postgresql":  # for this transaction only; the lock itself stays the session's
                await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECONDS}s'"))
            got = await conn.scalar(sa.text(take), {"name": LOCK_NAME, "wait": LOCK_WAIT_SECONDS})
            if dialect == "mysql" and got != 1:
                raise MigrationError(f"another migration has held the database for {LOCK_WAIT_SECONDS} s; "
                                     "wait for it to finish and run `python run.py migrate` again")
            await conn.commit()  # the lock is the session's: the transaction need not stay open
            try:
                yield
            finally:
                await conn.execute(sa.text(give), {"name": LOCK_NAME})
                await conn.commit()
        return
    database = engine.url.database
    if dialect != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        # No place for the lock file: SQLite cannot open the database there either, and says so
        # in its own words (one line) when the migration connects.
        yield
        return
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)  # off the loop: the holder may be us
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


async def _failure(engine: AsyncEngine, before: MigrationStatus, exc: Exception) -> MigrationError:
    """What a failed migration says: where the database stands now and what to do."""
    after = await migration_status(engine)
    at = ", ".join(after.current) or "an empty schema"
    return MigrationError(
        f"migration failed ({type(exc).__name__}: {exc}); the database is at {at} "
        f"(it was at {', '.join(before.current) or 'an empty schema'}). Fix the cause and run "
        "`python run.py migrate` again; on MySQL, drop any table the failed step created first."
    )
