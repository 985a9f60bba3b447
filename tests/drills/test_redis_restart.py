"""Drill: Redis (the rate limits shared by every process) stopped and started again under load.

Clients keep reading and writing through the API while the test's own redis-server is killed and,
seconds later, started again empty. No answer is a 500 (nor any 5xx): requests are served without
limits while Redis is away; once it is back, the limits count and refuse again by themselves."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from ouipost.app import create_app
from tests.admin.test_rate_limits import RedisServer, _stay_inside_one_minute, own_redis  # noqa: F401
from tests.drills.conftest import DRILL_SECONDS

pytestmark = [pytest.mark.drill]

CLIENTS = 8
DOWN_SECONDS = 5.0
PROBE_LIMIT = 5  # starter keys: a limit small enough to see it refuse again


async def test_redis_stopped_and_started_under_load(
    aiohttp_client: Any, settings: Any, engine: Any, make_key: Any, own_redis: RedisServer,  # noqa: F811
    report_figures: Any,
) -> None:
    started = time.monotonic()
    limits = {"starter": PROBE_LIMIT, "professional": 300, "enterprise": 1_000_000}
    app = create_app(settings.with_overrides(redis_url=own_redis.url, rate_limits=limits, workers=0), engine=engine)
    client = await aiohttp_client(app)
    load_key = await make_key(tier="enterprise")
    statuses: Counter[int] = Counter()
    phase_statuses: dict[str, Counter[int]] = {"up": Counter(), "down": Counter(), "back": Counter()}
    phase = "up"
    unchecked = 0  # answers while Redis was away that showed the whole limit left (served unchecked)
    stop = asyncio.Event()
    counting_again = asyncio.Event()  # a load answer after the restart counted in Redis

    async def load(n: int) -> None:
        nonlocal unchecked
        i = 0
        while not stop.is_set():
            i += 1
            if i % 3:
                resp = await client.get("/api/posts?limit=5", headers=load_key.headers())
            else:
                resp = await client.post("/api/posts", json={"content": f"load {n}-{i}", "platforms": ["bluesky"]},
                                         headers=load_key.headers())
            statuses[resp.status] += 1
            phase_statuses[phase][resp.status] += 1
            remaining = resp.headers.get("X-RateLimit-Remaining")
            if phase == "down" and remaining == str(limits["enterprise"]):
                unchecked += 1
            if phase == "back" and remaining is not None and remaining != str(limits["enterprise"]):
                counting_again.set()
            await resp.read()

    async with asyncio.timeout(DRILL_SECONDS):
        tasks = [asyncio.create_task(load(n)) for n in range(CLIENTS)]
        await asyncio.sleep(2)
        phase = "down"
        await asyncio.to_thread(own_redis.stop)
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(own_redis.start)  # empty: the window's counts start afresh
        phase = "back"
        restarted = time.monotonic()
        await counting_again.wait()
        resumed_after = time.monotonic() - restarted
        # Limits resume: a starter key gets PROBE_LIMIT answers, then 429 with Retry-After.
        probe = await make_key()
        await asyncio.to_thread(_stay_inside_one_minute, 5)  # the probe's answers in one window
        probe_statuses = []
        for _ in range(PROBE_LIMIT + 1):
            resp = await client.get("/api/platforms", headers=probe.headers())
            probe_statuses.append(resp.status)
        retry_after = resp.headers.get("Retry-After")
        stop.set()
        await asyncio.gather(*tasks)

    report_figures(
        "Redis stopped 5 s under load (8 API clients)", requests=sum(statuses.values()),
        answers=dict(sorted(statuses.items())), answers_while_down=dict(sorted(phase_statuses["down"].items())),
        served_unchecked_while_down=unchecked, limits_counting_again_after_seconds=resumed_after,
        probe_after_restart=probe_statuses,
        seconds=time.monotonic() - started)
    assert not [s for s in statuses if s >= 500], statuses
    assert phase_statuses["down"][200] + phase_statuses["down"][201] > 0  # served while Redis was away
    assert unchecked > 0  # ...without limits (Remaining shows the whole limit), not refused
    assert probe_statuses == [200] * PROBE_LIMIT + [429]
    assert retry_after is not None and int(retry_after) > 0
