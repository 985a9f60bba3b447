"""The async engine for either database, set up the same way everywhere (server, worker, CLI, tests)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for `sqlite+aiosqlite`, `mysql+aiomysql` or `postgresql+asyncpg` URLs.

    SQLite gets foreign keys on (workspace deletion cascades), WAL (readers never wait for the
    writer) and a busy timeout (writers queue instead of failing). MySQL and PostgreSQL connections
    are checked before use and recycled, so a restarted server does not surface as errors. All run
    in READ COMMITTED or its SQLite equivalent. PostgreSQL sessions run in UTC, so that anything the
    server computes from its clock or a time zone agrees with the naive UTC columns. JSON columns
    are read by orjson (see json_loads).
    """
    kwargs.setdefault("json_deserializer", json_loads)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _private_sqlite_file(Path(url.database))
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine

    kwargs.setdefault("isolation_level", "READ COMMITTED")  # AUTOCOMMIT for CREATE/DROP DATABASE
    if url.get_backend_name() == "postgresql":
        return create_async_engine(
            url, pool_pre_ping=True, pool_recycle=1800,
            connect_args={"server_settings": {"timezone": "UTC"}}, **kwargs,
        )
    url = url.update_query_dict({"charset": "utf8mb4"})
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=1800,
        **kwargs,
    )


def json_loads(text: str) -> Any:
    """JSON column values as json.loads reads them, parsed by orjson (several times faster: the JSON
    columns of a page of posts were a few percent of a list request). What orjson refuses and the
    json module takes (NaN and Infinity, escaped lone surrogates) goes through json.loads, and so does
    text with a run of 20 digits or more (orjson reads integers beyond 64 bits as floats; a 19-digit
    integer always fits), so every value reads exactly as before. Values are still written by
    json.dumps: the stored text does not change. ValueError for text neither parses."""
    if not _LONG_DIGITS.search(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


_LONG_DIGITS = re.compile(r"[0-9]{20}")


def _private_sqlite_file(path: Path) -> None:
    """Make the SQLite file (and its directory, when created here) readable by its owner only.

    SQLite creates its -wal and -shm files with the database file's permissions, so a 0600 file
    keeps every part of the database private. A file left world-readable by an older version is
    tightened too. Best effort: a path that cannot be prepared (not a file, not ours) is left for
    SQLite to report when a connection is first made, where callers handle database errors.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # an empty file is an empty database
    except OSError:
        return
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if part.stat().st_mode & 0o077:
                part.chmod(0o600)
        except OSError:  # gone meanwhile, or not ours to change (a shared, managed file): leave it
            pass
