"""Per-key rate limits on /api: headers on every answer, 429 past the limit, shared by processes through
Redis (process-local without it), failing open while Redis is down; usage counted in batches."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from ouipost.app import create_app
from ouipost.core.clock import FrozenClock
from ouipost.db.tables import api_keys as api_keys_table
from ouipost.http import usage
from ouipost.http.rate_limits import LIMITER, RETRY_SECONDS, LocalLimiter
from ouipost.identity import api_keys
from tests.admin.conftest import free_port, login

SHARED_REDIS = ("127.0.0.1", 6379)
TEST_REDIS_DB = 15  # a database of its own on the shared Redis; keys are prefixed per test run too


@pytest.fixture
async def limited_client(aiohttp_client: Any, settings: Any, engine: Any) -> Any:
    """starter=3 per minute, on a clock frozen 10 s into a minute, process-local limits."""
    clock = FrozenClock(datetime(2031, 5, 6, 7, 8, 10, tzinfo=UTC))
    app = create_app(settings.with_overrides(rate_limits={"starter": 3, "professional": 5}), engine=engine,
                     clock=clock)
    client = await aiohttp_client(app)
    client.clock = clock
    return client


def _answers(host: str, port: int) -> bool:
    try:
        return bool(redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_settings(database_url: str) -> Iterator[dict[str, str]]:
    """OUIPOST_REDIS_URL / _KEY_PREFIX on the machine's Redis (skip when nothing answers there), with a
    key prefix naming this test run's process and database, removed afterwards."""
    if not _answers(*SHARED_REDIS):
        pytest.skip("no Redis answers at 127.0.0.1:6379")
    prefix = f"ouipost-test-{os.getpid()}-{abs(hash(database_url))}:"
    yield {"OUIPOST_REDIS_URL": f"redis://{SHARED_REDIS[0]}:{SHARED_REDIS[1]}/{TEST_REDIS_DB}",
           "OUIPOST_REDIS_KEY_PREFIX": prefix}
    client = redis.Redis(host=SHARED_REDIS[0], port=SHARED_REDIS[1], db=TEST_REDIS_DB)
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: stop() kills it."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _stay_inside_one_minute(margin: float = 10) -> None:
    """Real-clock tests: start afresh when fewer than `margin` seconds are left in this minute."""
    if 60 - time.time() % 60 < margin:
        time.sleep(60 - time.time() % 60 + 0.5)


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
    await limited_client.app[usage.USAGE].flush()
    async with engine.connect() as conn:
        counts = await usage.usage_by_key(conn, [key.id], limited_client.clock.now().date())
    assert counts[key.id] == {"requests_today": 3, "requests_this_month": 3}


# --- the process-local limiter ----------------------------------------------------------------------


async def test_the_process_local_limiter_is_exact_under_concurrency(limited_client: Any, make_key: Any) -> None:
    key = await make_key(tier="professional")
    answers = await asyncio.gather(*(limited_client.get("/api/platforms", headers=key.headers()) for _ in range(40)))
    statuses = sorted(resp.status for resp in answers)
    assert statuses == [200] * 5 + [429] * 35
    remaining = sorted(int(resp.headers["X-RateLimit-Remaining"]) for resp in answers if resp.status == 200)
    assert remaining == [0, 1, 2, 3, 4]


async def test_the_process_local_limiter_counts_each_window_apart() -> None:
    limiter = LocalLimiter()
    assert [await limiter.hit("key_a", 60) for _ in range(3)] == [1, 2, 3]
    assert await limiter.hit("key_b", 60) == 1
    assert await limiter.hit("key_a", 120) == 1
    assert await limiter.hit("key_a", 60) == 4  # a late request of the previous window still counts there
    assert await limiter.hit("key_a", 180) == 1
    assert await limiter.hit("key_a", 60) == 1  # two windows back: forgotten


async def test_health_says_when_limits_are_process_local(limited_client: Any, make_user: Any) -> None:
    token = await login(limited_client, (await make_user())["email"])
    data = (await (await limited_client.get("/admin/health", headers={"Authorization": f"Bearer {token}"})).json())
    component = data["data"]["components"]["rate_limits"]
    assert component["status"] == "healthy" and component["backend"] == "process" and component["shared"] is False
    assert "each API process" in component["detail"]


async def test_without_redis_each_process_enforces_the_limit_on_its_own(
    start_servers: Any, make_key: Any
) -> None:
    key = await make_key(tier="starter")
    a, b = start_servers(2, OUIPOST_RATE_LIMITS="starter=2,professional=300,enterprise=1200")
    _stay_inside_one_minute()
    headers = {"X-API-Key": key.secret}
    for server in (a, b):
        assert [server.request("GET", "/api/platforms", headers=headers)[0] for _ in range(3)] == [200, 200, 429]


# --- Redis ------------------------------------------------------------------------------------------


async def test_the_limit_holds_across_two_server_processes(
    start_servers: Any, make_key: Any, redis_settings: dict[str, str]
) -> None:
    key = await make_key(tier="starter")
    a, b = start_servers(2, OUIPOST_RATE_LIMITS="starter=5,professional=300,enterprise=1200", **redis_settings)
    _stay_inside_one_minute()
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
        assert int(resp_headers["X-RateLimit-Reset"]) == (int(time.time()) // 60 + 1) * 60


async def test_concurrent_requests_on_two_processes_share_one_exact_count(
    start_servers: Any, make_key: Any, redis_settings: dict[str, str]
) -> None:
    key = await make_key(tier="professional")
    a, b = start_servers(2, OUIPOST_RATE_LIMITS="starter=60,professional=20,enterprise=1200", **redis_settings)
    _stay_inside_one_minute()
    headers = {"X-API-Key": key.secret}
    calls = [asyncio.to_thread(server.request, "GET", "/api/platforms", headers=headers) for server in (a, b) * 15]
    statuses = sorted(status for status, _, _ in await asyncio.gather(*calls))
    assert statuses == [200] * 20 + [429] * 10


@pytest.fixture
async def redis_client(aiohttp_client: Any, settings: Any, engine: Any, own_redis: RedisServer) -> Any:
    """The app on the test's own redis-server, starter=3, on a clock frozen 10 s into a minute."""
    clock = FrozenClock(datetime(2031, 5, 6, 7, 8, 10, tzinfo=UTC))
    app = create_app(settings.with_overrides(rate_limits={"starter": 3, "professional": 5},
                                             redis_url=own_redis.url, redis_key_prefix="t:"),
                     engine=engine, clock=clock)
    return await aiohttp_client(app)


async def test_redis_stopped_mid_run_fails_open_then_limits_resume(
    redis_client: Any, own_redis: RedisServer, make_key: Any, make_user: Any
) -> None:
    key = await make_key()
    admin = {"Authorization": f"Bearer {await login(redis_client, (await make_user())['email'])}"}
    health = (await (await redis_client.get("/admin/health", headers=admin)).json())["data"]
    assert health["components"]["rate_limits"]["backend"] == "redis"
    assert health["components"]["rate_limits"]["redis_status"] == "up"
    assert [(await redis_client.get("/api/platforms", headers=key.headers())).status for _ in range(4)] == [
        200, 200, 200, 429]

    own_redis.stop()
    for _ in range(10):  # served, unchecked: Remaining shows the whole limit
        resp = await redis_client.get("/api/platforms", headers=key.headers())
        assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "3"
    resp = await redis_client.get("/admin/health", headers=admin)
    assert resp.status == 200  # degraded, not unavailable: requests are served
    body = (await resp.json())["data"]
    component = body["components"]["rate_limits"]
    assert body["status"] == "degraded"
    assert component["status"] == "degraded" and component["redis_status"] == "down"
    assert "without rate limits" in component["detail"] and component["down_since"].endswith("Z")

    own_redis.start()  # empty: the window's count starts afresh
    await asyncio.sleep(RETRY_SECONDS + 0.1)
    statuses = [(await redis_client.get("/api/platforms", headers=key.headers())).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    health = (await (await redis_client.get("/admin/health", headers=admin)).json())["data"]
    assert health["components"]["rate_limits"]["redis_status"] == "up"


async def test_a_stalled_redis_does_not_stall_requests(
    redis_client: Any, own_redis: RedisServer, make_key: Any
) -> None:
    key = await make_key()
    assert own_redis.process is not None
    own_redis.process.send_signal(19)  # SIGSTOP: connections open, no answers
    try:
        started = time.monotonic()
        statuses = [(await redis_client.get("/api/platforms", headers=key.headers())).status for _ in range(20)]
        assert statuses == [200] * 20
        assert time.monotonic() - started < 3  # one timeout, then served unchecked
    finally:
        own_redis.process.send_signal(18)  # SIGCONT


async def test_redis_down_at_start_still_serves(aiohttp_client: Any, settings: Any, engine: Any,
                                                make_key: Any) -> None:
    app = create_app(settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0"), engine=engine)
    client = await aiohttp_client(app)
    key = await make_key()
    assert [(await client.get("/api/platforms", headers=key.headers())).status for _ in range(3)] == [200] * 3
    assert (await app[LIMITER].health())["redis_status"] == "down"


# --- usage ------------------------------------------------------------------------------------------


async def test_usage_counts_match_the_requests_after_a_flush(
    limited_client: Any, make_key: Any, engine: Any
) -> None:
    first, second = await make_key(tier="professional"), await make_key(tier="professional")
    for key, count in ((first, 4), (second, 2)):
        for _ in range(count):
            assert (await limited_client.get("/api/platforms", headers=key.headers())).status == 200
    recorder = limited_client.app[usage.USAGE]
    assert recorder.pending == 6
    assert await recorder.flush() == 6 and recorder.pending == 0
    async with engine.connect() as conn:
        counts = await usage.usage_by_key(conn, [first.id, second.id], limited_client.clock.now().date())
        last_used = dict((await conn.execute(
            api_keys_table.select().with_only_columns(api_keys_table.c.id, api_keys_table.c.last_used_at)
            .where(api_keys_table.c.id.in_([first.id, second.id]))
        )).all())
    assert counts[first.id]["requests_today"] == 4 and counts[second.id]["requests_today"] == 2
    assert last_used == {first.id: limited_client.clock.now(), second.id: limited_client.clock.now()}
    # A second flush adds to the rows already there.
    await limited_client.get("/api/platforms", headers=first.headers())
    await recorder.flush()
    async with engine.connect() as conn:
        counts = await usage.usage_by_key(conn, [first.id], limited_client.clock.now().date())
    assert counts[first.id]["requests_today"] == 5


async def test_usage_of_a_key_deleted_before_the_flush_is_dropped(
    limited_client: Any, make_key: Any, engine: Any
) -> None:
    gone, kept = await make_key(), await make_key()
    for key in (gone, kept):
        await limited_client.get("/api/platforms", headers=key.headers())
    async with engine.begin() as conn:
        await conn.execute(api_keys_table.delete().where(api_keys_table.c.id == gone.id))
    assert await limited_client.app[usage.USAGE].flush() == 2
    async with engine.connect() as conn:
        counts = await usage.usage_by_key(conn, [kept.id], limited_client.clock.now().date())
    assert counts[kept.id]["requests_today"] == 1


@pytest.mark.slow  # waits for the usage flush
async def test_usage_is_written_within_five_seconds_without_a_flush_asked(
    client: Any, make_key: Any, engine: Any, clock: Any
) -> None:
    key = await make_key()
    for _ in range(3):
        await client.get("/api/platforms", headers=key.headers())
    started, seen = time.monotonic(), 0
    while time.monotonic() - started < 5 and seen < 3:
        await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            seen = (await usage.usage_by_key(conn, [key.id], clock.now().date()))[key.id]["requests_today"]
    assert seen == 3


async def test_a_clean_shutdown_flushes_the_usage(aiohttp_client: Any, settings: Any, make_key: Any,
                                                  engine: Any) -> None:
    stoppable_client = await aiohttp_client(create_app(settings, engine=engine))
    key = await make_key()
    for _ in range(7):
        await stoppable_client.get("/api/platforms", headers=key.headers())
    recorder = stoppable_client.app[usage.USAGE]
    await stoppable_client.close()  # runs the app's cleanup
    assert recorder.pending == 0
    async with engine.connect() as conn:
        counts = await usage.usage_by_key(conn, [key.id], datetime.now(UTC).date())
    assert counts[key.id]["requests_today"] == 7


async def test_a_second_signal_during_the_stop_does_not_cut_the_usage_flush(
    start_servers: Any, make_key: Any, engine: Any
) -> None:
    """Ctrl-C reaches the whole process group and systemd may signal again: the first signal stops
    the server, the ones after it are ignored until its usage is written."""
    key = await make_key(tier="professional")
    (server,) = start_servers(1)
    for _ in range(9):
        assert server.request("GET", "/api/platforms", headers={"X-API-Key": key.secret})[0] == 200
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGTERM):
        server.process.send_signal(signum)
    server.process.communicate(timeout=20)
    assert server.process.returncode == 0
    async with engine.connect() as conn:
        counts = await usage.usage_by_key(conn, [key.id], datetime.now(UTC).date())
    assert counts[key.id]["requests_today"] == 9


async def test_a_server_process_stopped_by_sigterm_writes_its_usage(
    start_servers: Any, make_key: Any, engine: Any
) -> None:
    key = await make_key(tier="professional")
    (server,) = start_servers(1)
    for _ in range(9):
        assert server.request("GET", "/api/platforms", headers={"X-API-Key": key.secret})[0] == 200
    server.process.terminate()
    server.process.communicate(timeout=20)
    assert server.process.returncode == 0
    async with engine.connect() as conn:
        counts = await usage.usage_by_key(conn, [key.id], datetime.now(UTC).date())
    assert counts[key.id]["requests_today"] == 9


# --- revocation across processes ----------------------------------------------------------------------


async def test_a_revoked_key_is_refused_at_once_by_every_process(
    start_servers: Any, make_key: Any, engine: Any
) -> None:
    key = await make_key()
    a, b = start_servers(2)
    headers = {"X-API-Key": key.secret}
    assert [s.request("GET", "/api/platforms", headers=headers)[0] for s in (a, b)] == [200, 200]
    async with engine.begin() as conn:
        await api_keys.revoke_key(conn, key.id, datetime.now(UTC))
    assert [s.request("GET", "/api/platforms", headers=headers)[0] for s in (a, b)] == [401, 401]

