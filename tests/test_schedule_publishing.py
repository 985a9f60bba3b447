"""Queueing posts into recurring schedules and the worker publishing them at their slot times.

The app runs on a FrozenClock that the embedded worker shares, so "wait until 09:00 on Monday" is
one `advance` of the clock; the sandbox networks answer over real HTTP as always.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from ouipost.app import create_app
from ouipost.db.queue_tables import jobs
from tests.schedules.helpers import create_post, create_schedule
from tests.test_accounts import connect

ZONE = ZoneInfo("Europe/Paris")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Only publish jobs: periodic jobs (token refresh, dispatch) may be queued beside them.
QUEUED_PUBLISH = (jobs.c.status == "queued", jobs.c.kind == "publish_post")


@pytest.fixture
async def timed(aiohttp_client: Any, settings: Any, engine: Any, frozen_clock: Any, make_key: Any) -> Any:
    client = await aiohttp_client(create_app(settings, engine=engine, clock=frozen_clock))
    key = await make_key()
    await connect(client, key, "bluesky")
    await connect(client, key, "twitter")
    return client, key, frozen_clock


def next_minute_slot(clock: Any, minutes: int = 2) -> tuple[dict[str, str], Any]:
    local = (clock.now().astimezone(ZONE) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    return {"day": DAYS[local.weekday()], "time": local.strftime("%H:%M")}, local


async def post_status(client: Any, key: Any, post_id: str) -> dict:
    return (await (await client.get(f"/api/posts/{post_id}", headers=key.headers())).json())["data"]["post"]


async def wait_for(client: Any, key: Any, post_id: str, status: str, timeout: float = 10) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        post = await post_status(client, key, post_id)
        if post["status"] == status or asyncio.get_running_loop().time() > deadline:
            return post
        await asyncio.sleep(0.1)


async def queue(client: Any, key: Any, post_id: str, schedule_id: str) -> Any:
    return await client.post(f"/api/posts/{post_id}/schedule", json={"schedule_id": schedule_id},
                             headers=key.headers())


async def test_queued_posts_publish_at_their_slot_times_in_order(timed: Any, sandbox: Any) -> None:
    client, key, clock = timed
    slot, local = next_minute_slot(clock)
    schedule = await create_schedule(client, key, timezone="Europe/Paris",
                                     slots=[{**slot, "platforms": ["bluesky", "twitter"]}])
    first = await create_post(client, key, ["bluesky"], content="first in the queue")
    second = await create_post(client, key, ["bluesky", "twitter"], content="second in the queue")
    one = await queue(client, key, first["id"], schedule["id"])
    two = await queue(client, key, second["id"], schedule["id"])
    assert one.status == two.status == 200
    assert (await one.json())["data"]["post"]["scheduled_at"] == local.astimezone(ZoneInfo("UTC")).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert (await two.json())["data"]["post"]["scheduled_at"] == (local + timedelta(days=7)).astimezone(
        ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    upcoming = (await (await client.get(f"/api/schedules/{schedule['id']}", headers=key.headers())).json())[
        "data"]["schedule"]["upcoming_posts"]
    assert [u["post_id"] for u in upcoming] == [first["id"], second["id"]]
    assert upcoming[0]["slot_time"].endswith(("+01:00", "+02:00"))

    clock.advance(minutes=3)  # the first slot has come
    assert (await wait_for(client, key, first["id"], "published"))["status"] == "published"
    assert (await post_status(client, key, second["id"]))["status"] == "scheduled"
    assert [p.text for p in sandbox.publications] == ["first in the queue"]


@pytest.mark.slow  # waits for two worker polls
async def test_a_paused_schedule_publishes_nothing_and_resuming_replans(timed: Any, sandbox: Any,
                                                                       engine: Any) -> None:
    client, key, clock = timed
    slot, local = next_minute_slot(clock)
    schedule = await create_schedule(client, key, timezone="Europe/Paris",
                                     slots=[{**slot, "platforms": ["bluesky"]}])
    post = await create_post(client, key, ["bluesky"])
    assert (await queue(client, key, post["id"], schedule["id"])).status == 200
    paused = await client.put(f"/api/schedules/{schedule['id']}", json={"is_active": False}, headers=key.headers())
    assert paused.status == 200
    clock.advance(minutes=3)
    await asyncio.sleep(2.5)  # two worker polls
    assert (await post_status(client, key, post["id"]))["status"] == "scheduled"
    assert sandbox.publications == []
    resumed = await client.put(f"/api/schedules/{schedule['id']}", json={"is_active": True}, headers=key.headers())
    assert resumed.status == 200
    moved = await post_status(client, key, post["id"])
    expected = (local + timedelta(days=7)).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert moved["scheduled_at"] == expected
    async with engine.connect() as conn:
        run_at = await conn.scalar(sa.select(jobs.c.run_at).where(*QUEUED_PUBLISH))
    assert run_at.strftime("%Y-%m-%dT%H:%M:%SZ") == expected


async def test_no_fitting_slot_is_409_and_the_post_stays_a_draft(timed: Any) -> None:
    client, key, _ = timed
    schedule = await create_schedule(client, key, slots=[{"day": "monday", "time": "09:00",
                                                          "platforms": ["bluesky"]}])
    post = await create_post(client, key, ["twitter"])
    resp = await queue(client, key, post["id"], schedule["id"])
    assert resp.status == 409
    assert "twitter" in (await resp.json())["error"]["message"].lower()
    assert (await post_status(client, key, post["id"]))["status"] == "draft"


async def test_schedule_id_and_scheduled_at_are_exclusive_and_tenant_bound(timed: Any, make_key: Any) -> None:
    client, key, _ = timed
    post = await create_post(client, key, ["bluesky"])
    both = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                             json={"schedule_id": "sched_x", "scheduled_at": "2031-01-01T00:00:00Z"})
    assert both.status == 422
    other = await make_key()
    theirs = await create_schedule(client, other, slots=[{"day": "monday", "time": "09:00",
                                                          "platforms": ["bluesky"]}])
    foreign = await queue(client, key, post["id"], theirs["id"])
    assert foreign.status == 404


async def test_unscheduling_one_post_keeps_the_others_in_their_slots(timed: Any) -> None:
    client, key, _ = timed
    schedule = await create_schedule(client, key, slots=[{"day": "monday", "time": "09:00",
                                                          "platforms": ["bluesky"]}])
    posts = [await create_post(client, key, ["bluesky"], content=f"post {i}") for i in range(3)]
    times = []
    for post in posts:
        resp = await queue(client, key, post["id"], schedule["id"])
        times.append((await resp.json())["data"]["post"]["scheduled_at"])
    resp = await client.post(f"/api/posts/{posts[0]['id']}/unschedule", headers=key.headers())
    assert resp.status == 200
    assert [(await post_status(client, key, p["id"]))["scheduled_at"] for p in posts[1:]] == times[1:]
    detail = (await (await client.get(f"/api/schedules/{schedule['id']}", headers=key.headers())).json())
    assert [u["post_id"] for u in detail["data"]["schedule"]["upcoming_posts"]] == [p["id"] for p in posts[1:]]


async def test_deleting_a_schedule_returns_its_posts_to_draft_and_drops_their_jobs(timed: Any, engine: Any) -> None:
    client, key, _ = timed
    schedule = await create_schedule(client, key, slots=[{"day": "friday", "time": "17:30",
                                                          "platforms": ["bluesky"]}])
    post = await create_post(client, key, ["bluesky"])
    await queue(client, key, post["id"], schedule["id"])
    assert (await client.delete(f"/api/schedules/{schedule['id']}", headers=key.headers())).status == 200
    assert (await post_status(client, key, post["id"]))["status"] == "draft"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(jobs).where(*QUEUED_PUBLISH)) == 0
