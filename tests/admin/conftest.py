"""Admin fixtures: users made through the domain, tokens got through POST /admin/login, and real
server processes sharing the test database."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock, FrozenClock
from ouipost.identity import users
from tests.conftest import DatabaseUnderTest, make_env

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session", autouse=True)
def _collect_migration_leftovers(test_database: DatabaseUnderTest) -> None:
    # tests/conftest.py migrates the template database under asyncio.run(); the aiosqlite connection
    # that run leaves to the garbage collector would otherwise warn (warnings are errors) inside
    # whichever test happens to trigger the collection. Collect it once, here, on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings without the embedded worker: admin tests drive deliveries themselves, and a
    polling worker per test app would only race them for the database."""
    return settings.with_overrides(workers=0)


@dataclass
class AdminSession:
    user_id: str
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_user(engine: AsyncEngine, clock: Clock) -> Callable[..., Any]:
    """make_user(role="admin", email=None, password=PASSWORD, permissions=None) -> the user row."""
    counter = iter(range(1_000_000))

    async def make(
        role: str = "admin", email: str | None = None, password: str = PASSWORD,
        permissions: list[str] | None = None, is_active: bool = True,
    ) -> dict[str, Any]:
        email = email or f"{role}{next(counter)}@example.com"
        async with engine.begin() as conn:
            row = await users.create_user(
                conn, email=email, password=password, name=f"{role.title()} User", role=role,
                permissions=permissions, now=clock.now(),
            )
            if not is_active:
                from ouipost.db.tables import users as users_table

                await conn.execute(users_table.update().where(users_table.c.id == row["id"]).values(is_active=False))
        return row

    return make


async def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    resp = await client.post("/admin/login", json={"email": email, "password": password})
    body = await resp.json()
    assert resp.status == 200, body
    return body["data"]["token"]


@pytest.fixture
def sign_in(client: TestClient, make_user: Callable[..., Any]) -> Callable[..., Any]:
    """sign_in(role="admin", **make_user_kwargs) -> AdminSession: a new user, logged in over HTTP."""

    async def sign(role: str = "admin", **kwargs: Any) -> AdminSession:
        row = await make_user(role, **kwargs)
        token = await login(client, row["email"], kwargs.get("password", PASSWORD))
        return AdminSession(row["id"], row["email"], row["role"], token)

    return sign


@pytest.fixture
async def admin(sign_in: Callable[..., Any]) -> AdminSession:
    return await sign_in("admin")


@pytest.fixture
async def frozen_client(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, frozen_clock: FrozenClock
) -> TestClient:
    """The app on a FrozenClock (tests move time with frozen_clock.advance)."""
    return await aiohttp_client(create_app(settings, engine=engine, clock=frozen_clock))


# ------------------------------------------------------------------------------------------------
# Real server processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """A blocking HTTP call; returns status, headers and body whatever the status."""
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {}, data=body)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def _wait_healthy(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = server.process.stdout.read() if server.process.stdout else ""
            raise AssertionError(f"server exited with {server.process.returncode}: {output}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not become healthy")


@pytest.fixture
def start_servers(database_url: str, tmp_path: Path) -> Iterator[Callable[..., list[Server]]]:
    """start_servers(n, **env) -> n `run.py serve --no-workers` processes on the test database."""
    started: list[Server] = []

    def start(count: int = 2, **extra: str) -> list[Server]:
        servers = []
        for index in range(count):
            port = free_port()
            env = {
                "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                **make_env(database_url, tmp_path / f"data{index}", OUIPOST_SANDBOX="0", **extra),
            }
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "serve", "--no-workers", "--port", str(port)],
                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            server = Server(f"http://127.0.0.1:{port}", process)
            started.append(server)
            servers.append(server)
        for server in servers:
            _wait_healthy(server)
        return servers

    yield start
    for server in started:
        server.process.terminate()
    for server in started:
        try:
            server.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.communicate()
