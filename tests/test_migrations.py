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


async def test_two_migrators_at_once_apply_each_migration_once(test_database: Any, tmp_path: Any) -> None:
    """`migrate` started on two hosts together: the second waits for the first, then has nothing to do
    (without the lock both create the same tables and one fails half-way)."""
    import asyncio

    from sqlalchemy.engine import make_url

    from ouipost.db.engine import create_engine
    from ouipost.db.migrations import migration_status, upgrade
    from tests.conftest import _exec_server, _mysql_server_url

    if test_database.is_mysql:
        server_url, name = _mysql_server_url(test_database.url)
        name = f"{name}_twice"
        await _exec_server(server_url, f"DROP DATABASE IF EXISTS `{name}`")
        await _exec_server(server_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        url = make_url(test_database.url).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"
    engines = [create_engine(url), create_engine(url)]
    try:
        first, second = await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert not first.pending and not second.pending
        async with engines[0].connect() as conn:
            versions = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert versions == list(first.heads)
        assert (await migration_status(engines[1])).current == first.heads
    finally:
        for engine in engines:
            await engine.dispose()
        if test_database.is_mysql:
            await _exec_server(server_url, f"DROP DATABASE IF EXISTS `{name}`")
