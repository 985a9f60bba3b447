"""What every answer carries and hides, down to the errors aiohttp answers before any handler runs
(checked over a raw socket against the server `run.py serve` runs: ouipost.server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.identity import users
from ouipost.server import EnvelopeAppRunner

SECRET_MARK = "s3cr3t-marker"


@pytest.fixture
async def served(settings: Settings, engine: AsyncEngine) -> AsyncIterator[tuple[str, int]]:
    runner = EnvelopeAppRunner(create_app(settings.with_overrides(workers=0), engine=engine))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield host, port
    await runner.cleanup()


async def raw_request(address: tuple[str, int], request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; read the whole answer (the server closes after an error)."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        chunks, rest = [], body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            chunks.append(rest[: int(size, 16)])
            rest = rest[int(size, 16) + 2:]
        body = b"".join(chunks)
    return int(status_line.split()[1]), headers, body


def _get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _assert_envelope(status: int, headers: dict[str, str], body: bytes, expected_status: int) -> dict[str, Any]:
    assert status == expected_status
    assert headers["content-type"].startswith("application/json")
    assert "server" not in headers and headers["x-content-type-options"] == "nosniff"
    assert SECRET_MARK.encode() not in body
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details"}
    return error


async def test_a_header_over_8_kb_is_answered_in_the_envelope_without_echo(served: tuple[str, int]) -> None:
    request = _get("/healthz", f"Authorization: Bearer {SECRET_MARK}{'x' * 9000}")
    error = _assert_envelope(*await raw_request(served, request), 400)
    assert error["code"] == "BAD_REQUEST" and "too long" in error["message"]


async def test_a_url_over_8_kb_is_answered_in_the_envelope_without_echo(served: tuple[str, int]) -> None:
    error = _assert_envelope(*await raw_request(served, _get(f"/api/{SECRET_MARK}{'a' * 9000}")), 400)
    assert error["code"] == "BAD_REQUEST"


async def test_an_invalid_header_character_is_answered_in_the_envelope(served: tuple[str, int]) -> None:
    error = _assert_envelope(*await raw_request(served, _get("/healthz", f"X-Note: {SECRET_MARK}\x01bad")), 400)
    assert error["code"] == "BAD_REQUEST"


async def test_garbage_instead_of_http_is_answered_in_the_envelope(served: tuple[str, int]) -> None:
    _assert_envelope(*await raw_request(served, f"\x16\x03\x01{SECRET_MARK}\r\n\r\n".encode()), 400)


async def test_no_banner_and_nosniff_on_every_answer(served: tuple[str, int]) -> None:
    for path in ("/healthz", "/no/such/route", "/api/platforms", "/ui/login"):
        status, headers, _ = await raw_request(served, _get(path))
        assert "server" not in headers, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert status in (200, 401, 404), path


async def test_api_and_admin_data_is_not_stored_by_caches(
    served: tuple[str, int], key: Any, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await users.create_user(conn, email="a@example.com", password="correct horse battery", name="A",
                                role="admin", now=Clock().now())
    for path, extra in [("/api/platforms", (f"X-API-Key: {key.secret}",)), ("/api/platforms", ()),
                        ("/admin/users", ())]:
        status, headers, _ = await raw_request(served, _get(path, *extra))
        assert headers["cache-control"] == "no-store", path
    for password in ("correct horse battery", "wrong password"):
        body = json.dumps({"email": "a@example.com", "password": password}).encode()
        request = (
            b"POST /admin/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        status, headers, _ = await raw_request(served, request)
        assert status in (200, 401) and headers["cache-control"] == "no-store"
