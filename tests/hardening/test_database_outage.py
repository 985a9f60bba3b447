"""The database going away: API routes answer 503 SERVICE_UNAVAILABLE with Retry-After (never 500),
and answer normally again by themselves once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.db.engine import create_engine
from tests.conftest import DatabaseUnderTest


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _assert_unavailable(resp: Any) -> None:
    assert resp.status == 503, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert int(resp.headers["Retry-After"]) > 0


async def test_routes_answer_503_when_the_database_cannot_be_reached(
    aiohttp_client: Any, settings: Settings, key: Any
) -> None:
    unreachable = create_engine(f"mysql+aiomysql://root@127.0.0.1:{_closed_port()}/ouipost", pool_timeout=2)
    client = await aiohttp_client(create_app(settings.with_overrides(workers=0), engine=unreachable))
    try:
        await _assert_unavailable(await client.get("/api/platforms", headers=key.headers()))
        await _assert_unavailable(await client.get("/api/workspaces", headers=key.headers()))
        await _assert_unavailable(await client.post("/admin/login", json={"email": "a@b.example", "password": "x"}))
        await _assert_unavailable(await client.get("/admin/users", headers={"Authorization": "Bearer x.y.z"}))
        assert (await client.get("/healthz")).status == 503
    finally:
        await client.close()
        await unreachable.dispose()


class TcpProxy:
    """A TCP proxy to the database that can be cut (every connection dropped, new ones refused) and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _closed_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.pipes.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            try:
                await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
            finally:
                server_writer.transport.abort()
        finally:
            client_writer.transport.abort()
            self.pipes.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


async def test_api_recovers_by_itself_after_a_database_outage(
    aiohttp_client: Any, settings: Settings, key: Any, test_database: DatabaseUnderTest, database_url: str
) -> None:
    if not test_database.is_server:
        pytest.skip("a TCP proxy stands between the app and a database server: MariaDB or PostgreSQL only")
    url = make_url(database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or (5432 if test_database.is_postgresql else 3306)))
    await proxy.start()
    engine = create_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
                           pool_timeout=2)
    client = await aiohttp_client(create_app(settings.with_overrides(workers=0), engine=engine))
    try:
        assert (await client.get("/api/workspaces", headers=key.headers())).status == 200
        await proxy.cut()
        for _ in range(3):
            await _assert_unavailable(await client.get("/api/workspaces", headers=key.headers()))
        await proxy.start()
        resp = await client.get("/api/workspaces", headers=key.headers())
        assert resp.status == 200, await resp.text()
    finally:
        await client.close()
        await proxy.cut()
        await engine.dispose()
