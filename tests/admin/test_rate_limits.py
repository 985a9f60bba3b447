"""Per-key rate limits on /api: headers on every answer, 429 past the limit, shared by processes."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from ouipost import rate_limits
from ouipost.app import create_app
from ouipost.clock import FrozenClock


@pytest.fixture
async def limited_client(aiohttp_client: Any, settings: Any, engine: Any) -> Any:
    """starter=3 per minute, on a clock frozen 10 s into a minute."""
    clock = FrozenClock(datetime(2031, 5, 6, 7, 8, 10, tzinfo=UTC))
    app = create_app(settings.with_overrides(rate_limits={"starter": 3, "professional": 5}), engine=engine,
                     clock=clock)
    client = await aiohttp_client(app)
    client.clock = clock
    return client


async def test_headers_count_down_then_429_with_retry_after(limited_client: Any, make_key: Any) -> None:
    key = await make_key()
    reset = int(datetime(2031, 5, 6, 7, 9, 0, tzinfo=UTC).timestamp())
    for remaining in (2, 1, 0):
        resp = await limited_client.get("/api/platforms", headers=key.headers())
        assert resp.status == 200
        assert resp.headers["X-RateLimit-Limit"] == "3"
        assert resp.headers["X-RateLimit-Remaining"] == str(remaining)
        assert resp.headers["X-RateLimit-Reset"] == str(reset)
    resp = await limited_client.get("/api/platforms", headers=key.headers())
    assert resp.status == 429
    body = await resp.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    assert resp.headers["Retry-After"] == "50"
    assert resp.headers["X-RateLimit-Remaining"] == "0" and resp.headers["X-RateLimit-Reset"] == str(reset)
    # The next window starts afresh.
    limited_client.clock.advance(seconds=50)
    resp = await limited_client.get("/api/platforms", headers=key.headers())
    assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "2"
    assert resp.headers["X-RateLimit-Reset"] == str(reset + 60)


async def test_limits_follow_the_tier_and_are_per_key(limited_client: Any, make_key: Any) -> None:
    pro, other = await make_key(tier="professional"), await make_key()
    for _ in range(5):
        assert (await limited_client.get("/api/platforms", headers=pro.headers())).status == 200
    assert (await limited_client.get("/api/platforms", headers=pro.headers())).status == 429
    resp = await limited_client.get("/api/platforms", headers=other.headers())
    assert resp.status == 200 and resp.headers["X-RateLimit-Limit"] == "3"


async def test_error_answers_after_authentication_carry_the_headers(limited_client: Any, make_key: Any) -> None:
    key = await make_key(permissions=["posts.read"])
    forbidden = await limited_client.get("/api/workspaces", headers=key.headers())
    assert forbidden.status == 403 and forbidden.headers["X-RateLimit-Remaining"] == "2"
    missing = await limited_client.get("/api/no-such-route", headers=key.headers())
    assert missing.status == 404 and missing.headers["X-RateLimit-Remaining"] == "1"
    invalid = await limited_client.post("/api/workspaces", data=b"{", headers=key.headers())
    assert "X-RateLimit-Limit" in invalid.headers


async def test_requests_without_a_valid_key_carry_no_rate_limit_headers(limited_client: Any) -> None:
    for headers in ({}, {"X-API-Key": "pk_live_" + "x" * 32}):
        resp = await limited_client.get("/api/platforms", headers=headers)
        assert resp.status == 401
        assert not any(h.startswith("X-RateLimit") for h in resp.headers)


async def test_rejected_requests_are_not_counted_as_usage(limited_client: Any, make_key: Any, engine: Any) -> None:
    key = await make_key()
    for _ in range(5):
        await limited_client.get("/api/platforms", headers=key.headers())
    async with engine.connect() as conn:
        usage = await rate_limits.usage_by_key(conn, [key.id], limited_client.clock.now().date())
    assert usage[key.id] == {"requests_today": 3, "requests_this_month": 3}


async def test_the_limit_holds_across_two_server_processes(start_servers: Any, make_key: Any) -> None:
    key = await make_key(tier="starter")
    a, b = start_servers(2, OUIPOST_RATE_LIMITS="starter=5,professional=300,enterprise=1200")
    # Stay inside one window: start afresh if fewer than 10 s are left in this minute.
    if 60 - time.time() % 60 < 10:
        await asyncio.sleep(60 - time.time() % 60 + 0.5)
    headers = {"X-API-Key": key.secret}
    seen = []
    for server in (a, b, a, b, a):
        status, resp_headers, _ = server.request("GET", "/api/platforms", headers=headers)
        assert status == 200
        seen.append(int(resp_headers["X-RateLimit-Remaining"]))
    assert seen == [4, 3, 2, 1, 0]
    for server in (b, a):
        status, resp_headers, body = server.request("GET", "/api/platforms", headers=headers)
        assert status == 429
        assert json.loads(body)["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(resp_headers["Retry-After"]) <= 60
        assert resp_headers["X-RateLimit-Limit"] == "5"
