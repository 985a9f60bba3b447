"""Schema migrations with Alembic; scripts live in `sql/` (one script serves both databases)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION = Path(__file__).resolve().parents[2] / "sql"


class MigrationError(Exception):
    """A migration failed; the message says where the database stands and what to do."""


@dataclass(frozen=True)
class MigrationStatus:
    current: tuple[str, ...]
    heads: tuple[str, ...]

    @property
    def pending(self) -> bool:
        return set(self.current) != set(self.heads)


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
    before = await migration_status(engine)

    def run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    except Exception as exc:
        after = await migration_status(engine)
        at = ", ".join(after.current) or "an empty schema"
        raise MigrationError(
            f"migration failed ({type(exc).__name__}: {exc}); the database is at {at} "
            f"(it was at {', '.join(before.current) or 'an empty schema'}). Fix the cause and run "
            "`python run.py migrate` again; on MySQL, drop any table the failed step created first."
        ) from exc
    return await migration_status(engine)
