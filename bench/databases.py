"""Scratch databases for the benchmarks on a MariaDB/MySQL or PostgreSQL server (SQLite files are
the scripts' own business): created with the collation the README asks for, dropped when done."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ouipost.db.engine import create_engine


async def create_database(url: str, *, fresh: bool) -> None:
    """Create the database `url` names on its server; `fresh` drops it first (else a database that
    exists is kept). Nothing for SQLite."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() == "mysql":
        if fresh:
            await _execute(parsed.set(database="").render_as_string(hide_password=False),
                           f"DROP DATABASE IF EXISTS `{name}`")
        await _execute(parsed.set(database="").render_as_string(hide_password=False),
                       f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    elif parsed.get_backend_name() == "postgresql":
        server = parsed.set(database="postgres").render_as_string(hide_password=False)
        if fresh:
            await _execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                exists = await conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
                if not exists:
                    await conn.execute(sa.text(
                        f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' "
                        "TEMPLATE template0"))
        finally:
            await engine.dispose()


async def drop_database(url: str) -> None:
    """Drop the database `url` names on its server. Nothing for SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "mysql":
        await _execute(parsed.set(database="").render_as_string(hide_password=False),
                       f"DROP DATABASE IF EXISTS `{parsed.database}`")
    elif parsed.get_backend_name() == "postgresql":
        await _execute(parsed.set(database="postgres").render_as_string(hide_password=False),
                       f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


async def _execute(server_url: str, statement: str) -> None:
    # PostgreSQL runs CREATE/DROP DATABASE outside a transaction; MariaDB does not mind.
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()
