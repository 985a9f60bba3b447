"""The hourly and daily rollups stay equal to a recomputation from the published targets and their
snapshots, through publications, re-syncs, late answers, post and workspace deletion and the
migration's backfill; and GET /api/analytics, which reads them, stays exact across DST changes.

The recomputation is written here from the rules alone: each published target counts with its latest
snapshot (by taken_at, then storage order; zeros before the first), a post counts once at its first
published target and once per network at its first target there, everything by the UTC hour or day
of the target's publication.
"""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.db.analytics_tables import (
    daily_network_insights,
    hourly_insights,
    hourly_network_insights,
    insight_snapshots,
)
from ouipost.db.tables import post_targets
from tests.analytics.conftest import published_at, snapshot
from tests.test_publishing import create_post

FIGURES = ("impressions", "reach", "engagement", "clicks")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def recomputed(engine: AsyncEngine) -> dict[str, dict[tuple[Any, ...], dict[str, int]]]:
    """The three rollups as the rules define them, from post_targets and insight_snapshots."""
    async with engine.connect() as conn:
        targets = (await conn.execute(
            sa.select(post_targets.c.id, post_targets.c.post_id, post_targets.c.workspace_id, post_targets.c.network,
                      post_targets.c.published_at)
            .where(post_targets.c.status == "published").order_by(post_targets.c.published_at, post_targets.c.id)
        )).all()
        snapshots = (await conn.execute(
            sa.select(insight_snapshots).order_by(insight_snapshots.c.taken_at, insight_snapshots.c.id)
        )).mappings().all()
    latest = {s["target_id"]: {name: s[name] for name in FIGURES} for s in snapshots}  # the last one wins
    rollups: dict[str, dict[tuple[Any, ...], dict[str, int]]] = {
        "hourly_insights": {}, "hourly_network_insights": {}, "daily_network_insights": {},
    }
    posts_seen: set[str] = set()
    networks_seen: set[tuple[str, str]] = set()
    for target in targets:
        hour = int((target.published_at - EPOCH).total_seconds()) // 3600
        first_of_post = int(target.post_id not in posts_seen)
        first_of_network = int((target.post_id, target.network) not in networks_seen)
        posts_seen.add(target.post_id)
        networks_seen.add((target.post_id, target.network))
        figures = latest.get(target.id, dict.fromkeys(FIGURES, 0))
        for table, key, posts in (
            ("hourly_insights", (target.workspace_id, hour), first_of_post),
            ("hourly_network_insights", (target.workspace_id, target.network, hour), first_of_network),
            ("daily_network_insights", (target.workspace_id, hour // 24, target.network), first_of_network),
        ):
            row = rollups[table].setdefault(key, {"targets": 0, "posts": 0, **dict.fromkeys(FIGURES, 0)})
            row["targets"] += 1
            row["posts"] += posts
            for name in FIGURES:
                row[name] += figures[name]
    return rollups


async def stored(engine: AsyncEngine) -> dict[str, dict[tuple[Any, ...], dict[str, int]]]:
    found: dict[str, dict[tuple[Any, ...], dict[str, int]]] = {}
    async with engine.connect() as conn:
        for table in (hourly_insights, hourly_network_insights, daily_network_insights):
            keys = [column.name for column in table.primary_key.columns]
            rows = (await conn.execute(sa.select(table))).mappings().all()
            found[table.name] = {
                tuple(row[k] for k in keys): {k: int(v) for k, v in row.items() if k not in keys} for row in rows
            }
    return found


async def assert_rollups_match(engine: AsyncEngine) -> None:
    assert await stored(engine) == await recomputed(engine)


@pytest.fixture
async def published(quiet_client: Any, make_key: Any, engine: AsyncEngine) -> dict[str, Any]:
    """Two workspaces; posts on one and two networks, two of them in the same UTC hour, synced a few
    times each."""
    key, other = await make_key(), await make_key()
    p1 = await create_post(quiet_client, key, ["twitter", "linkedin"], content="Two networks")
    p2 = await create_post(quiet_client, key, ["twitter"], content="Same hour")
    p3 = await create_post(quiet_client, key, ["bluesky"], content="Next day")
    foreign = await create_post(quiet_client, other, ["twitter"], content="Elsewhere")

    t1 = await published_at(engine, p1["id"], "twitter", "2025-06-01T10:05:00Z")
    await snapshot(engine, t1, "2025-06-01T11:00:00Z", impressions=100, reach=80, engagement=10, clicks=1)
    t2 = await published_at(engine, p1["id"], "linkedin", "2025-06-01T10:06:00Z")
    await snapshot(engine, t2, "2025-06-01T12:00:00Z", impressions=50, reach=40, engagement=5)
    t3 = await published_at(engine, p2["id"], "twitter", "2025-06-01T10:59:59Z")
    await snapshot(engine, t3, "2025-06-01T12:00:00Z", impressions=70, engagement=7, clicks=2)
    t4 = await published_at(engine, p3["id"], "bluesky", "2025-06-02T00:30:00Z")  # never synced
    t5 = await published_at(engine, foreign["id"], "twitter", "2025-06-01T10:30:00Z")
    await snapshot(engine, t5, "2025-06-01T11:30:00Z", impressions=9000, engagement=900)
    return {"key": key, "other": other, "posts": [p1, p2, p3], "foreign": foreign,
            "targets": [t1, t2, t3, t4, t5]}


async def test_publications_and_first_syncs_are_in_the_rollups(
    published: dict[str, Any], engine: AsyncEngine
) -> None:
    await assert_rollups_match(engine)
    rollups = await stored(engine)
    hour = int((datetime(2025, 6, 1, 10, tzinfo=UTC) - EPOCH).total_seconds()) // 3600
    workspace = published["key"].workspace_id
    # p1 (twitter + linkedin) and p2 (twitter) in one UTC hour: 3 targets, 2 posts, latest figures added up.
    assert rollups["hourly_insights"][(workspace, hour)] == {
        "targets": 3, "posts": 2, "impressions": 220, "reach": 120, "engagement": 22, "clicks": 3}
    assert rollups["hourly_network_insights"][(workspace, "twitter", hour)]["posts"] == 2
    assert rollups["daily_network_insights"][(workspace, hour // 24, "linkedin")]["impressions"] == 50


async def test_a_later_snapshot_replaces_the_figures_and_a_late_older_one_does_not(
    published: dict[str, Any], engine: AsyncEngine
) -> None:
    t1, t2 = published["targets"][:2]
    await snapshot(engine, t1, "2025-06-02T10:00:00Z", impressions=400, reach=300, engagement=40, clicks=4)
    await snapshot(engine, t1, "2025-06-01T20:00:00Z", impressions=250, engagement=25)  # a late retry: history only
    await snapshot(engine, t2, "2025-06-03T10:00:00Z", impressions=45, reach=40, engagement=3)  # figures can drop
    await assert_rollups_match(engine)
    hour = int((datetime(2025, 6, 1, 10, tzinfo=UTC) - EPOCH).total_seconds()) // 3600
    row = (await stored(engine))["hourly_insights"][(published["key"].workspace_id, hour)]
    assert (row["impressions"], row["reach"], row["engagement"], row["clicks"]) == (400 + 45 + 70, 340, 50, 6)


async def test_deleting_a_post_takes_it_out_and_drops_emptied_rows(
    quiet_client: Any, published: dict[str, Any], engine: AsyncEngine
) -> None:
    key = published["key"]
    p1, _, p3 = published["posts"]
    for post in (p1, p3):
        resp = await quiet_client.delete(f"/api/posts/{post['id']}", headers=key.headers())
        assert resp.status == 200, await resp.text()
    await assert_rollups_match(engine)
    rollups = await stored(engine)
    assert not any(k[1] == "linkedin" for k in rollups["hourly_network_insights"])  # only p1 was there
    assert not any(k[2] == "bluesky" for k in rollups["daily_network_insights"])
    status, body = await get_analytics(quiet_client, key, **{"from": "2025-06-01", "to": "2025-06-02"})
    assert status == 200, body
    assert body["data"]["summary"]["total_posts"] == 1
    assert list(body["data"]["by_platform"]) == ["twitter"]


async def test_deleting_a_workspace_removes_its_rollups_only(
    quiet_client: Any, published: dict[str, Any], engine: AsyncEngine
) -> None:
    key = published["key"]
    resp = await quiet_client.delete(f"/api/workspaces/{key.workspace_id}", headers=key.headers())
    assert resp.status == 200, await resp.text()
    await assert_rollups_match(engine)
    rollups = await stored(engine)
    assert {k[0] for rows in rollups.values() for k in rows} == {published["other"].workspace_id}


async def test_the_migration_backfill_builds_the_same_rollups(
    published: dict[str, Any], engine: AsyncEngine
) -> None:
    t1 = published["targets"][0]
    await snapshot(engine, t1, "2025-06-02T10:00:00Z", impressions=400, reach=300, engagement=40, clicks=4)
    maintained = await stored(engine)
    path = Path(__file__).resolve().parents[2] / "sql" / "versions" / "0012_insight_rollups.py"
    spec = importlib.util.spec_from_file_location("insight_rollups_migration", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    async with engine.begin() as conn:
        for table in (hourly_insights, hourly_network_insights, daily_network_insights):
            await conn.execute(table.delete())
        await conn.run_sync(migration.backfill)
    assert await stored(engine) == maintained
    await assert_rollups_match(engine)


async def test_concurrent_syncs_of_targets_in_one_hour_lose_no_update(
    quiet_client: Any, make_key: Any, engine: AsyncEngine
) -> None:
    # Every snapshot of these targets moves the same rollup rows; each transaction adds its own
    # difference under the rows' locks, so the sums end exactly at the latest figures.
    key = await make_key()
    targets = []
    for n in range(6):
        post = await create_post(quiet_client, key, ["twitter", "linkedin"], content=f"Post {n}")
        for network in ("twitter", "linkedin"):
            targets.append(await published_at(engine, post["id"], network, f"2025-06-01T10:{n:02d}:00Z"))
    await asyncio.gather(*(
        snapshot(engine, target, f"2025-06-0{round_ + 2}T00:00:00Z", impressions=10 * round_ + index,
                 engagement=round_, clicks=index % 3)
        for round_ in range(4) for index, target in enumerate(targets)
    ))
    await assert_rollups_match(engine)
    hour = int((datetime(2025, 6, 1, 10, tzinfo=UTC) - EPOCH).total_seconds()) // 3600
    row = (await stored(engine))["hourly_insights"][(key.workspace_id, hour)]
    assert (row["targets"], row["posts"], row["impressions"]) == (12, 6, sum(30 + i for i in range(12)))


# --- reading the rollups across DST changes ------------------------------------------------------------


async def get_analytics(client: Any, key: Any, **params: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/api/analytics", params=params, headers=key.headers())
    return resp.status, await resp.json()


async def set_timezone(client: Any, key: Any, zone: str) -> None:
    resp = await client.put(f"/api/workspaces/{key.workspace_id}", json={"settings": {"timezone": zone}},
                            headers=key.headers())
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def new_york(quiet_client: Any, make_key: Any, engine: AsyncEngine) -> Any:
    """America/New_York: summer time from 2025-03-09 07:00 UTC (local days of 23 hours) to
    2025-11-02 06:00 UTC (25 hours). One target half an hour either side of each local midnight
    around both changes, impressions telling them apart."""
    key = await make_key()
    await set_timezone(quiet_client, key, "America/New_York")
    for at, impressions in (
        ("2025-03-09T04:30:00Z", 1),   # 23:30 EST on the 8th
        ("2025-03-09T05:30:00Z", 2),   # 00:30 EST on the 9th
        ("2025-03-10T03:30:00Z", 4),   # 23:30 EDT on the 9th (a fixed -05:00 would say 22:30 on the 9th)
        ("2025-03-10T04:30:00Z", 8),   # 00:30 EDT on the 10th (-05:00 would say 23:30 on the 9th)
        ("2025-11-02T03:30:00Z", 16),  # 23:30 EDT on the 1st
        ("2025-11-02T04:30:00Z", 32),  # 00:30 EDT on the 2nd
        ("2025-11-03T04:30:00Z", 64),  # 23:30 EST on the 2nd (-04:00 would say 00:30 on the 3rd)
        ("2025-11-03T05:30:00Z", 128),  # 00:30 EST on the 3rd
    ):
        post = await create_post(quiet_client, key, ["twitter"], content=f"At {at}")
        target = await published_at(engine, post["id"], "twitter", at)
        await snapshot(engine, target, at.replace(":30:00Z", ":45:00Z"), impressions=impressions, engagement=1)
    return key


async def test_day_buckets_follow_the_local_calendar_across_both_dst_changes(
    quiet_client: Any, new_york: Any, engine: AsyncEngine
) -> None:
    await assert_rollups_match(engine)
    status, body = await get_analytics(quiet_client, new_york, **{"from": "2025-03-08", "to": "2025-03-10"})
    assert status == 200, body
    assert [(p["date"], p["posts"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-03-08", 1, 1), ("2025-03-09", 2, 2 + 4), ("2025-03-10", 1, 8)]
    assert body["data"]["summary"]["total_impressions"] == 15
    status, body = await get_analytics(quiet_client, new_york, **{"from": "2025-11-01", "to": "2025-11-03"})
    assert [(p["date"], p["posts"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-11-01", 1, 16), ("2025-11-02", 2, 32 + 64), ("2025-11-03", 1, 128)]
    status, body = await get_analytics(quiet_client, new_york, granularity="week",
                                       **{"from": "2025-03-01", "to": "2025-11-30"})
    weeks = {p["date"]: p["impressions"] for p in body["data"]["timeline"] if p["impressions"]}
    assert weeks == {"2025-03-03": 1 + 2 + 4, "2025-03-10": 8, "2025-10-27": 16 + 32 + 64, "2025-11-03": 128}


async def test_periods_cut_inside_hours_and_days_count_exactly_what_they_hold(
    quiet_client: Any, new_york: Any
) -> None:
    # From 00:00 EST on the 9th to 23:40 EDT on the 9th, given as instants with minutes: the rollups
    # hold the whole hours, target_insights the partial ones at both ends (04:30Z in, 05:30Z in, 03:30Z in).
    status, body = await get_analytics(quiet_client, new_york, granularity="hour", platform="twitter",
                                       **{"from": "2025-03-09T05:10:00Z", "to": "2025-03-10T03:40:00Z"})
    assert status == 200, body
    hours = {p["date"]: p["impressions"] for p in body["data"]["timeline"] if p["impressions"]}
    assert hours == {"2025-03-09T00:00:00-05:00": 2, "2025-03-09T23:00:00-04:00": 4}
    assert len(body["data"]["timeline"]) == 23  # the 9th has no 02:00
    status, body = await get_analytics(quiet_client, new_york, **{"from": "2025-03-09T04:40:00Z",
                                                                  "to": "2025-03-10T04:20:00Z"})
    assert [(p["date"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-03-08", 0), ("2025-03-09", 6), ("2025-03-10", 0)]
    assert body["data"]["by_platform"]["twitter"]["impressions"] == 6


async def test_a_half_hour_zone_is_bucketed_exactly(quiet_client: Any, make_key: Any, engine: AsyncEngine) -> None:
    # Asia/Kolkata is UTC+05:30: the UTC hour 18:00-19:00 holds the end of one local day and the start
    # of the next (read from target_insights); the other hours come whole from the rollups.
    key = await make_key()
    await set_timezone(quiet_client, key, "Asia/Kolkata")
    for at, impressions in (
        ("2025-06-01T10:00:00Z", 1),  # 15:30 IST on the 1st
        ("2025-06-01T18:15:00Z", 2),  # 23:45 IST on the 1st
        ("2025-06-01T18:45:00Z", 4),  # 00:15 IST on the 2nd
        ("2025-06-02T02:10:00Z", 8),  # 07:40 IST on the 2nd
    ):
        post = await create_post(quiet_client, key, ["linkedin"], content=f"At {at}")
        target = await published_at(engine, post["id"], "linkedin", at)
        await snapshot(engine, target, "2025-06-03T00:00:00Z", impressions=impressions)
    status, body = await get_analytics(quiet_client, key, **{"from": "2025-06-01", "to": "2025-06-02"})
    assert status == 200, body
    assert [(p["date"], p["posts"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-06-01", 2, 1 + 2), ("2025-06-02", 2, 4 + 8)]
    status, body = await get_analytics(quiet_client, key, granularity="hour", platform="linkedin",
                                       **{"from": "2025-06-01T23:00:00+05:30", "to": "2025-06-02T00:59:59+05:30"})
    assert [(p["date"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-06-01T23:00:00+05:30", 2), ("2025-06-02T00:00:00+05:30", 4)]
