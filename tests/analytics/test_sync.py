"""Insights synced from the sandbox networks: the real publish flow, the sync handlers run directly
(with the sandbox clock moved forward so the deterministic figures have grown), and the worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.analytics import service as analytics
from ouipost.core.clock import FrozenClock
from ouipost.db.analytics_tables import insight_snapshots
from ouipost.db.queue_tables import jobs
from ouipost.jobs import queue
from ouipost.jobs.queue import RetryJob
from tests.analytics.conftest import job_context, target_of
from tests.test_accounts import connect
from tests.test_publishing import create_post, publish
from workers import sync_accounts, sync_analytics


async def published_post(client: Any, key: Any, networks: list[str], content: str = "Fresh bread") -> dict:
    for network in networks:
        await connect(client, key, network)
    post = await create_post(client, key, networks, content=content)
    status, body = await publish(client, key, post["id"])
    assert status == 200 and body["data"]["post"]["status"] == "published", body
    return post


async def post_analytics(client: Any, key: Any, post_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/posts/{post_id}/analytics", headers=key.headers())
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["data"]["post_id"] == post_id
    return body["data"]["analytics"]


async def sync_jobs(engine: Any, target_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(jobs).where(jobs.c.unique_key == analytics.sync_job_key(target_id))
                                  .order_by(jobs.c.id))
        return [dict(r) for r in rows.mappings()]


async def test_a_post_with_no_insights_yet_shows_zeros_and_its_first_sync_is_a_minute_away(
    client: Any, key: Any, engine: Any
) -> None:
    post = await published_post(client, key, ["linkedin"])
    data = await post_analytics(client, key, post["id"])
    assert data == {
        "summary": {"total_impressions": 0, "total_reach": 0, "total_engagement": 0, "total_clicks": 0,
                    "engagement_rate": 0},
        "by_platform": {"linkedin": {"impressions": 0, "reach": 0, "engagement": 0, "clicks": 0,
                                     "engagement_rate": 0, "last_synced_at": None}},
        "timeline": [],
    }
    target = await target_of(engine, post["id"], "linkedin")
    [job] = await sync_jobs(engine, target["id"])
    assert (job["status"], job["queue"], job["kind"]) == ("queued", "analytics", "sync_analytics")
    assert job["run_at"] == target["published_at"] + timedelta(minutes=1)


async def test_synced_insights_give_exact_figures_everywhere(
    client: Any, key: Any, engine: Any, sandbox: Any, settings: Any
) -> None:
    post = await published_post(client, key, ["twitter", "linkedin", "bluesky"])
    targets = [await target_of(engine, post["id"], n) for n in ("twitter", "linkedin", "bluesky")]
    clock = FrozenClock()
    first_round = clock.now()
    async with aiohttp.ClientSession() as session:
        sandbox.clock_offset = 540  # m = 10 for the sandbox: nine whole minutes, the tenth under way
        for target in targets:
            await sync_analytics.handle(job_context(engine, settings, session, "sync_analytics",
                                                    {"target_id": target["id"]}, clock=clock))
        data = await post_analytics(client, key, post["id"])
        # X (m=10): 100 impressions; likes 5 + retweets 1 + link clicks 2 = 8 engagements; 2 link clicks.
        # LinkedIn: IMPRESSION 80, MEMBERS_REACHED 50, REACTION 3 + COMMENT 1 = 4.
        # Bluesky: likes 30 + reposts 10 + replies 5 + quotes 2 + bookmarks 2 = 49, no impressions.
        assert data["summary"] == {"total_impressions": 180, "total_reach": 50, "total_engagement": 61,
                                   "total_clicks": 2, "engagement_rate": 33.89}
        assert data["by_platform"]["twitter"]["like_count"] == 5
        assert data["by_platform"]["twitter"]["non_public.url_link_clicks"] == 2
        assert data["by_platform"]["linkedin"]["MEMBERS_REACHED"] == 50
        assert data["by_platform"]["bluesky"] == {
            "impressions": 0, "reach": 0, "engagement": 49, "clicks": 0, "engagement_rate": 0,
            "bookmarkCount": 2, "likeCount": 30, "quoteCount": 2, "replyCount": 5, "repostCount": 10,
            "last_synced_at": data["by_platform"]["bluesky"]["last_synced_at"],
        }

        sandbox.clock_offset = 3540  # m = 60
        clock.advance(minutes=50)
        for target in targets:
            await sync_analytics.handle(job_context(engine, settings, session, "sync_analytics",
                                                    {"target_id": target["id"]}, clock=clock))
    data = await post_analytics(client, key, post["id"])
    # m=60: X 600 impressions, 62 engagements, 12 clicks; LinkedIn 480/300 reach/29; Bluesky 297.
    assert data["summary"] == {"total_impressions": 1080, "total_reach": 300, "total_engagement": 388,
                               "total_clicks": 12, "engagement_rate": 35.93}
    stamp = first_round.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert data["timeline"] == [
        {"timestamp": stamp, "impressions": 180, "reach": 50, "engagement": 61, "clicks": 2},
        {"timestamp": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"), "impressions": 1080, "reach": 300,
         "engagement": 388, "clicks": 12},
    ]
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(insight_snapshots)) == 6

    listed = (await (await client.get("/api/posts", headers=key.headers())).json())["data"]["posts"]
    assert listed[0]["analytics"] == {"impressions": 1080, "engagement": 388, "clicks": 12}
    shown = (await (await client.get(f"/api/posts/{post['id']}", headers=key.headers())).json())["data"]["post"]
    assert shown["analytics"] == {
        "total_impressions": 1080, "total_engagement": 388, "total_clicks": 12,
        "by_platform": {"twitter": {"impressions": 600, "engagement": 62, "clicks": 12},
                        "linkedin": {"impressions": 480, "engagement": 29, "clicks": 0},
                        "bluesky": {"impressions": 0, "engagement": 297, "clicks": 0}},
    }


async def test_each_sync_plans_the_next_one_along_the_schedule(
    client: Any, key: Any, engine: Any, settings: Any
) -> None:
    post = await published_post(client, key, ["bluesky"])
    target = await target_of(engine, post["id"], "bluesky")
    published = target["published_at"]
    async with aiohttp.ClientSession() as session:
        for elapsed, expected_next in ((timedelta(minutes=2), timedelta(minutes=15)),
                                       (timedelta(minutes=16), timedelta(hours=1)),
                                       (timedelta(days=3, hours=1), timedelta(days=7)),
                                       (timedelta(days=7, minutes=1), None)):
            now = published + elapsed
            [job] = await queue.claim_due_jobs(engine, "test-worker", [analytics.QUEUE], 1, 30, now + timedelta(days=8))
            assert job.kind == "sync_analytics" and job.payload == {"target_id": target["id"]}
            await sync_analytics.handle(_context_for(engine, settings, session, job, now))
            await queue.complete_jobs(engine, [job.id], "test-worker", now)
            live = [j for j in await sync_jobs(engine, target["id"]) if j["status"] == "queued"]
            if expected_next is None:
                assert live == []  # a week after publishing, the schedule is over
            else:
                assert [j["run_at"] for j in live] == [published + expected_next]
            # the accounts job that the first sync made sure of is not in the way of this loop
            async with engine.begin() as conn:
                await conn.execute(jobs.delete().where(jobs.c.kind == analytics.ACCOUNTS_KIND))


def _context_for(engine: Any, settings: Any, session: aiohttp.ClientSession, job: Any, now: Any) -> Any:
    from tests.resources import resources_for
    from workers.worker import JobContext

    clock = FrozenClock(now)
    return JobContext(job, engine, clock, resources_for(settings, engine, clock, session))


async def test_a_rate_limited_sync_retries_later_and_publishing_goes_on(
    client: Any, key: Any, engine: Any, sandbox: Any, settings: Any
) -> None:
    post = await published_post(client, key, ["twitter"])
    target = await target_of(engine, post["id"], "twitter")
    sandbox.add_fault("twitter", "rate_limit", method="GET", path_contains="/2/tweets/", count=None)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RetryJob) as info:
            await sync_analytics.handle(job_context(engine, settings, session, "sync_analytics",
                                                    {"target_id": target["id"]}))
    assert info.value.retry_after is not None and 800 < info.value.retry_after <= 901  # X's 15-minute window

    # Through the worker: the refresh runs at once, is refused, and the job waits for X's reset.
    resp = await client.post(f"/api/posts/{post['id']}/analytics/refresh", headers=key.headers())
    assert resp.status == 202
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        [job] = await sync_jobs(engine, target["id"])
        if (job["attempts"] >= 1 and job["status"] == "queued") or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "queued" and job["attempts"] == 1 and "asked to wait" in job["last_error"]
    assert job["run_at"] > target["published_at"] + timedelta(seconds=800)

    again = await create_post(client, key, ["twitter"], content="Publishing is not held up")
    status, body = await publish(client, key, again["id"])
    assert status == 200 and body["data"]["post"]["status"] == "published"
    data = await post_analytics(client, key, post["id"])
    assert data["summary"]["total_impressions"] == 0 and data["timeline"] == []


async def test_refresh_syncs_at_once_and_the_accounts_job_follows(
    client: Any, key: Any, engine: Any, sandbox: Any
) -> None:
    post = await published_post(client, key, ["bluesky"])
    target = await target_of(engine, post["id"], "bluesky")
    sandbox.clock_offset = 240  # m = 5: four whole minutes, the fifth under way
    resp = await client.post(f"/api/posts/{post['id']}/analytics/refresh", headers=key.headers())
    assert resp.status == 202
    assert (await resp.json())["data"] == {"post_id": post["id"], "status": "queued", "targets": 1}
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        data = await post_analytics(client, key, post["id"])
        if data["summary"]["total_engagement"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert data["summary"]["total_engagement"] == 24  # likes 15 + reposts 5 + replies 2 + quotes 1 + bookmarks 1
    assert data["by_platform"]["bluesky"]["likeCount"] == 15
    live = [j for j in await sync_jobs(engine, target["id"]) if j["status"] == "queued"]
    assert [j["run_at"] for j in live] == [target["published_at"] + timedelta(minutes=1)]  # the schedule goes on

    while True:  # the first sync enqueued the daily accounts job, which the worker runs at once
        body = (await (await client.get("/api/analytics", headers=key.headers())).json())["data"]
        if body["audience"]["total_followers"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert body["audience"]["total_followers"] == 321  # the sandbox's Bluesky profile
    assert body["summary"]["total_posts"] == 1 and body["summary"]["total_engagement"] == 24


async def test_refresh_needs_something_published_and_the_workspaces_own_post(
    client: Any, key: Any, make_key: Any
) -> None:
    draft = await create_post(client, key, ["twitter"])
    resp = await client.post(f"/api/posts/{draft['id']}/analytics/refresh", headers=key.headers())
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "CONFLICT"
    stranger = await make_key()
    for method, path in (("POST", f"/api/posts/{draft['id']}/analytics/refresh"),
                         ("GET", f"/api/posts/{draft['id']}/analytics")):
        resp = await client.request(method, path, headers=stranger.headers())
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "NOT_FOUND"
    resp = await client.get(f"/api/posts/{draft['id']}/analytics?granularity=day", headers=key.headers())
    assert resp.status == 422


async def test_daily_accounts_sync_records_followers_and_plans_tomorrow(
    client: Any, key: Any, engine: Any, settings: Any
) -> None:
    await connect(client, key, "twitter")
    await connect(client, key, "linkedin")
    clock = FrozenClock()
    async with aiohttp.ClientSession() as session:
        await sync_accounts.handle(job_context(engine, settings, session, "sync_accounts", {}, clock=clock))
    body = (await (await client.get("/api/analytics", headers=key.headers())).json())["data"]
    assert body["audience"]["total_followers"] == 1234 + 512  # the sandbox's X user and LinkedIn member
    accounts = (await (await client.get("/api/accounts", headers=key.headers())).json())["data"]["accounts"]
    assert sorted(a["stats"]["followers"] for a in accounts) == [512, 1234]
    async with engine.connect() as conn:
        run_at = await conn.scalar(sa.select(jobs.c.run_at).where(jobs.c.live_key == analytics.ACCOUNTS_JOB_KEY))
    assert run_at == clock.now() + timedelta(hours=24)


async def test_a_deleted_post_stops_its_sync(client: Any, key: Any, engine: Any, settings: Any) -> None:
    post = await published_post(client, key, ["bluesky"])
    target = await target_of(engine, post["id"], "bluesky")
    assert (await client.delete(f"/api/posts/{post['id']}", headers=key.headers())).status == 200
    async with aiohttp.ClientSession() as session:
        await sync_analytics.handle(job_context(engine, settings, session, "sync_analytics",
                                                {"target_id": target["id"]}))
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(insight_snapshots)) == 0
