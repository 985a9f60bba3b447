"""The migrations in sql/ build exactly the tables of ouipost/db/tables.py, and re-running is a no-op."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ouipost.db.migrations import migration_status, upgrade
from ouipost.db.tables import metadata


async def test_migrated_schema_matches_the_table_definitions(engine: Any) -> None:
    def diff(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_running_migrations_again_changes_nothing(engine: Any) -> None:
    before = await migration_status(engine)
    assert not before.pending
    after = await upgrade(engine)
    assert after == before


async def test_foreign_keys_are_enforced(engine: Any) -> None:
    from ouipost.db.tables import posts

    async with engine.connect() as conn:
        try:
            await conn.execute(sa.insert(posts).values(
                id="post_x", workspace_id="ws_missing", status="draft", content="", hashtags=[], platforms=[],
                platform_content={}, created_at=sa.func.now(), updated_at=sa.func.now(),
            ))
        except sa.exc.IntegrityError:
            return
        raise AssertionError("a post without its workspace was accepted")
