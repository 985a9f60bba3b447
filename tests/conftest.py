"""Shared fixtures: a migrated database per test (SQLite file, or MariaDB when
OUIPOST_TEST_DATABASE_URL is set), the app, a test client and API keys made through the domain.

MariaDB or PostgreSQL: the suite creates its own database (`<name>_<pid>`) from OUIPOST_TEST_DATABASE_URL,
migrates it once, empties every table after each test, and drops the database at the end.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web_app
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings, load_settings
from ouipost.core.clock import Clock, FrozenClock, HurriedClock
from ouipost.db.engine import create_engine
from ouipost.db.migrations import upgrade
from ouipost.db.tables import metadata
from ouipost.identity import api_keys, users, workspaces
from ouipost.sandbox import Sandbox, create_sandbox_app

TEST_SECRET = "test-secret-key-0123456789abcdefghijklmnop"

# A test that starts processes, servers or browsers, or waits for wall time, is `slow`, so that
# `pytest -m "not slow"` is a quick loop. Modules that do it throughout say so (`pytestmark`); the
# drills, the browser tests and every test using one of these fixtures (each starts processes or a
# server) are marked here.
SLOW_FIXTURES = frozenset({"start_servers", "processes", "spawn", "own_redis", "moto_endpoint"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("drill") or item.get_closest_marker("browser") or fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported and collected so far lives until the run ends: out of the collector's
    sight (gc.freeze), so that its full collections walk only what the tests make."""
    gc.freeze()


# aiohttp memoises each handler's middleware chain keyed by the apps it runs in (1,024 entries), so
# every app a test built, with its routes and its sandbox, stayed alive for a thousand tests more:
# a heap of a million objects that each full garbage collection walked (15 % of the quick loop).
_MIDDLEWARE_CHAINS = getattr(aiohttp.web_app, "_cached_build_middleware", None)


@pytest.fixture(autouse=True)
def _forget_the_apps_of_finished_tests() -> Iterator[None]:
    yield
    if _MIDDLEWARE_CHAINS is not None:
        _MIDDLEWARE_CHAINS.cache_clear()


@pytest.fixture(autouse=True)
def _cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its smallest cost in this process, except in slow tests: the same format and the
    same code path, in a millisecond instead of half a second of CPU per hash (every admin test
    makes a user and signs in). Slow tests (the login floods) and every process keep the real cost."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@dataclass(frozen=True)
class DatabaseUnderTest:
    url: str
    template: Path | None  # SQLite: a migrated file copied for each test

    @property
    def is_mysql(self) -> bool:
        return self.url.startswith("mysql")

    @property
    def is_postgresql(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def is_server(self) -> bool:
        """A database server (MariaDB or PostgreSQL) shared by the whole run, emptied after each test."""
        return self.template is None


def _mysql_server_url(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    name = f"{parsed.database or 'ouipost_test'}_{os.getpid()}"
    return parsed.set(database="").render_as_string(hide_password=False), name


def _postgresql_server_url(url: str) -> tuple[str, str]:
    """The maintenance database to create and drop ours from, and ours (`<name>_<pid>`)."""
    parsed = make_url(url)
    name = f"{parsed.database or 'ouipost_test'}_{os.getpid()}"
    return parsed.set(database="postgres").render_as_string(hide_password=False), name


async def _exec_autocommit(server_url: str, statement: str) -> None:
    """PostgreSQL runs CREATE/DROP DATABASE outside any transaction."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _exec_server(server_url: str, statement: str) -> None:
    engine = create_engine(server_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


def create_side_database(test_database: DatabaseUnderTest, suffix: str) -> str:
    """A new, empty database `<the suite's>_<suffix>` on the suite's MariaDB or PostgreSQL server
    (dropped first if a previous run left it), with the suite's collation; its URL."""
    url = make_url(test_database.url)
    name = f"{url.database}_{suffix}"
    drop_side_database(test_database, suffix)
    if test_database.is_postgresql:
        asyncio.run(_exec_autocommit(
            _postgresql_server_url(test_database.url)[0],
            f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"))
    else:
        asyncio.run(_exec_server(_mysql_server_url(test_database.url)[0],
                                 f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    return url.set(database=name).render_as_string(hide_password=False)


def drop_side_database(test_database: DatabaseUnderTest, suffix: str) -> None:
    name = f"{make_url(test_database.url).database}_{suffix}"
    if test_database.is_postgresql:
        asyncio.run(_exec_autocommit(_postgresql_server_url(test_database.url)[0],
                                     f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        asyncio.run(_exec_server(_mysql_server_url(test_database.url)[0], f"DROP DATABASE IF EXISTS `{name}`"))


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def test_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseUnderTest]:
    configured = os.environ.get("OUIPOST_TEST_DATABASE_URL", "").strip()
    if configured.startswith("mysql"):
        server_url, name = _mysql_server_url(configured)
        asyncio.run(_exec_server(server_url, f"DROP DATABASE IF EXISTS `{name}`"))
        asyncio.run(_exec_server(server_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        url = make_url(configured).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_migrate(url))
        yield DatabaseUnderTest(url, None)
        asyncio.run(_exec_server(server_url, f"DROP DATABASE IF EXISTS `{name}`"))
        return
    if configured.startswith("postgresql"):
        server_url, name = _postgresql_server_url(configured)
        asyncio.run(_exec_autocommit(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        # C.UTF-8 orders text by code point, as MariaDB's utf8mb4_bin does (comparisons are exact anyway).
        asyncio.run(_exec_autocommit(
            server_url, f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' "
            "TEMPLATE template0"))
        url = make_url(configured).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_migrate(url))
        yield DatabaseUnderTest(url, None)
        asyncio.run(_exec_autocommit(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    template = tmp_path_factory.mktemp("db") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{template}"))
    yield DatabaseUnderTest(f"sqlite+aiosqlite:///{template}", template)


@pytest.fixture
def database_url(test_database: DatabaseUnderTest, tmp_path: Path) -> str:
    """The database of this test: the servers' shared one (emptied after each test by `engine`), or
    a SQLite file of its own, a copy of the migrated template."""
    if test_database.template is None:
        return test_database.url
    path = tmp_path / "ouipost.db"
    shutil.copy(test_database.template, path)
    return f"sqlite+aiosqlite:///{path}"


class _SharedEngines:
    """One engine per database server, and one for every SQLite file, for the whole run: SQLAlchemy
    keeps its compiled statements on the engine (keyed by its dialect), so a new engine per test
    compiled every statement again, a fifth of the quick loop's time. Each test still has a SQLite
    file of its own: the SQLite engine opens each connection on the file of the test that is running.
    Connections belong to the test's event loop, so `engine` closes them when the test ends."""

    def __init__(self) -> None:
        self._engines: dict[str, AsyncEngine] = {}
        self._sqlite_file = ""

    def get(self, database_url: str) -> AsyncEngine:
        url = make_url(database_url)
        if url.get_backend_name() != "sqlite":
            if database_url not in self._engines:
                self._engines[database_url] = create_engine(database_url)
            return self._engines[database_url]
        self._sqlite_file = os.path.abspath(url.database or "")
        if "sqlite" not in self._engines:
            engine = self._engines["sqlite"] = create_engine(database_url)
            sa.event.listen(engine.sync_engine, "do_connect", self._on_this_tests_file)
        return self._engines["sqlite"]

    def _on_this_tests_file(self, dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        cargs[0] = self._sqlite_file


_ENGINES = _SharedEngines()


@pytest.fixture
async def engine(database_url: str, test_database: DatabaseUnderTest) -> AsyncIterator[AsyncEngine]:
    engine = _ENGINES.get(database_url)
    yield engine
    if test_database.is_server:
        async with engine.begin() as conn:
            if test_database.is_mysql:
                await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            for table in reversed(metadata.sorted_tables):  # children first, for PostgreSQL's checks
                await conn.execute(table.delete())
            if test_database.is_mysql:
                await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=1"))
    await engine.dispose()


def make_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The OUIPOST_* environment a test server or CLI process runs with."""
    env = {
        "OUIPOST_DATABASE_URL": database_url,
        "OUIPOST_DATA_DIR": str(data_dir),
        "OUIPOST_SECRET_KEY": TEST_SECRET,
        "OUIPOST_AUTO_MIGRATE": "1",
    }
    env.update(extra)
    return env


@pytest.fixture
def sandbox(clock: Clock) -> Sandbox:
    return Sandbox(clock)


@pytest.fixture
async def sandbox_url(sandbox: Sandbox, aiohttp_server: Any) -> str:
    """The nine imitated networks on a real local port; the app's adapters are pointed at it."""
    server = await aiohttp_server(create_sandbox_app(sandbox))
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, sandbox_url: str) -> Settings:
    return load_settings(make_env(database_url, tmp_path / "data", OUIPOST_PLATFORM_BASE_URL=sandbox_url))


@pytest.fixture
def clock() -> Clock:
    """The app's, its embedded worker's and the sandbox's: real time, but a network adapter that
    waits between polls moves it instead of sleeping."""
    return HurriedClock()


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, engine: AsyncEngine, clock: Clock) -> TestClient:
    return await aiohttp_client(create_app(settings, engine=engine, clock=clock))


@dataclass
class Key:
    id: str
    secret: str
    workspace_id: str | None

    def headers(self, workspace: str | None = None) -> dict[str, str]:
        headers = {"X-API-Key": self.secret}
        ws = workspace or self.workspace_id
        if ws:
            headers["X-Workspace-ID"] = ws
        return headers


@pytest.fixture
def make_key(engine: AsyncEngine, clock: Clock):
    """make_key(permissions=None, workspace=True, tier="starter") -> Key, built by the domain functions.

    With workspace=True the key gets a new workspace of its own; pass an id to grant an existing one.
    """

    async def make(
        permissions: list[str] | None = None, workspace: bool | str | None = True, tier: str = "starter",
        name: str = "test key",
    ) -> Key:
        async with engine.begin() as conn:
            workspace_id: str | None = None
            if workspace is True:
                row = await workspaces.create_workspace(
                    conn, name="Test workspace", description=None, settings=None, now=clock.now()
                )
                workspace_id = row["id"]
            elif isinstance(workspace, str):
                workspace_id = workspace
            new = await api_keys.create_key(
                conn, name=name, tier=tier, permissions=permissions,
                workspace_ids=[workspace_id] if workspace_id else [], now=clock.now(),
            )
        return Key(new.record["id"], new.secret, workspace_id)

    return make


@pytest.fixture
async def key(make_key: Any) -> Key:
    return await make_key()
