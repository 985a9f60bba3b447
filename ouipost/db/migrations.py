"""Schema migrations with Alembic; scripts live in `sql/` (one script serves both databases).

A built wheel carries `sql/` as the data package `ouipost._sql` (setup.py maps it); the checkout's
top-level folder is used when the package has none (a checkout or an editable install).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
