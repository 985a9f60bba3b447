"""GET /api/analytics and GET /admin/analytics on a small seeded data set with exact figures.

The workspace lives in Europe/Paris; summer time starts on 2025-03-30 at 01:00 UTC, inside the
period. Targets are published and snapshotted through the domain functions the worker uses, at
chosen instants:

  P1 twitter   2025-03-28T10:00Z (Paris 28th)   latest 300 impressions, 25 engagement, 5 clicks
  P1 linkedin  2025-03-28T10:00:30Z             200 impressions, 150 reach, 20 engagement
  P2 twitter   2025-03-29T23:30Z (Paris 30th 00:30+01:00)      1000 / 50 / 10 clicks
  P3 linkedin  2025-03-30T22:30Z (Paris 31st 00:30+02:00; a fixed +01:00 would say the 30th)
                                                400 impressions, 300 reach, 40 engagement
  P4 bluesky   2025-03-31T21:59Z (Paris 31st 23:59), no insights yet
  P5 twitter   2025-04-02T08:00Z, after the period
  another workspace: twitter 2025-03-30T12:00Z, 99999 impressions (never shown here)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.analytics.conftest import account_snapshot, published_at, snapshot
from tests.test_accounts import connect
from tests.test_publishing import create_post

PERIOD = {"from": "2025-03-28", "to": "2025-04-01"}


async def set_timezone(client: Any, key: Any, zone: str) -> None:
    resp = await client.put(f"/api/workspaces/{key.workspace_id}", json={"settings": {"timezone": zone}},
                            headers=key.headers())
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def seeded(quiet_client: Any, make_key: Any, engine: Any) -> dict[str, Any]:
    key = await make_key()
    await set_timezone(quiet_client, key, "Europe/Paris")
    p1 = await create_post(quiet_client, key, ["twitter", "linkedin"], content="Spring menu")
    p2 = await create_post(quiet_client, key, ["twitter"], content="Midnight croissants")
    p3 = await create_post(quiet_client, key, ["linkedin"], content="We are hiring")
    p4 = await create_post(quiet_client, key, ["bluesky"], content="Fresh from the oven")
    p5 = await create_post(quiet_client, key, ["twitter"], content="April fools")

    t = await published_at(engine, p1["id"], "twitter", "2025-03-28T10:00:00Z")
    await snapshot(engine, t, "2025-03-28T11:00:00Z", impressions=100, engagement=10, clicks=2, like_count=8)
    await snapshot(engine, t, "2025-03-29T10:00:00Z", impressions=300, engagement=25, clicks=5, like_count=20,
                   retweet_count=3)
    t = await published_at(engine, p1["id"], "linkedin", "2025-03-28T10:00:30Z")
    await snapshot(engine, t, "2025-03-28T12:00:00Z", impressions=200, reach=150, engagement=20, REACTION=15,
                   COMMENT=5)
    t = await published_at(engine, p2["id"], "twitter", "2025-03-29T23:30:00Z")
    await snapshot(engine, t, "2025-03-30T06:00:00Z", impressions=1000, engagement=50, clicks=10)
    t = await published_at(engine, p3["id"], "linkedin", "2025-03-30T22:30:00Z")
    await snapshot(engine, t, "2025-03-31T08:00:00Z", impressions=400, reach=300, engagement=40)
    await published_at(engine, p4["id"], "bluesky", "2025-03-31T21:59:00Z")
    t = await published_at(engine, p5["id"], "twitter", "2025-04-02T08:00:00Z")
    await snapshot(engine, t, "2025-04-02T09:00:00Z", impressions=5000, engagement=500)

    other = await make_key()
    await set_timezone(quiet_client, other, "Europe/Paris")
    foreign = await create_post(quiet_client, other, ["twitter"], content="Not yours")
    t = await published_at(engine, foreign["id"], "twitter", "2025-03-30T12:00:00Z")
    await snapshot(engine, t, "2025-03-30T13:00:00Z", impressions=99999, engagement=9999)
    return {"key": key, "other": other, "posts": [p1, p2, p3, p4, p5], "foreign": foreign}


async def get_analytics(client: Any, key: Any, **params: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/api/analytics", params=params, headers=key.headers())
    return resp.status, await resp.json()


async def test_exact_figures_by_day_across_the_dst_change(quiet_client: Any, seeded: dict[str, Any]) -> None:
    status, body = await get_analytics(quiet_client, seeded["key"], **PERIOD)
    assert status == 200, body
    data = body["data"]
    assert data["period"] == {"from": "2025-03-27T23:00:00Z", "to": "2025-04-01T21:59:59Z",
                              "timezone": "Europe/Paris", "granularity": "day"}
    assert data["summary"] == {
        "total_posts": 4, "total_impressions": 1900, "total_reach": 450, "total_engagement": 135,
        "total_clicks": 15, "avg_engagement_rate": 7.11, "best_performing_platform": "linkedin",
    }
    assert data["by_platform"] == {
        "bluesky": {"posts": 1, "impressions": 0, "reach": 0, "engagement": 0, "clicks": 0, "engagement_rate": 0},
        "linkedin": {"posts": 2, "impressions": 600, "reach": 450, "engagement": 60, "clicks": 0,
                     "engagement_rate": 10.0},
        "twitter": {"posts": 2, "impressions": 1300, "reach": 0, "engagement": 75, "clicks": 15,
                    "engagement_rate": 5.77},
    }
    assert [(p["date"], p["posts"], p["impressions"], p["engagement"], p["reach"], p["clicks"])
            for p in data["timeline"]] == [
        ("2025-03-28", 1, 500, 45, 150, 5),
        ("2025-03-29", 0, 0, 0, 0, 0),  # nothing published that day: shown, as zeros
        ("2025-03-30", 1, 1000, 50, 0, 10),  # 23:30 UTC on the 29th is past midnight in Paris
        ("2025-03-31", 2, 400, 40, 300, 0),  # 22:30 UTC on the 30th is the 31st in summer time
        ("2025-04-01", 0, 0, 0, 0, 0),
    ]
    p1, p2, p3, p4, _ = seeded["posts"]
    assert [(t["id"], t["platform"], t["impressions"], t["engagement"]) for t in data["top_posts"]] == [
        (p2["id"], "twitter", 1000, 50), (p3["id"], "linkedin", 400, 40), (p1["id"], "twitter", 300, 25),
        (p1["id"], "linkedin", 200, 20), (p4["id"], "bluesky", 0, 0),
    ]
    assert data["top_posts"][0]["content"] == "Midnight croissants"
    assert data["top_posts"][0]["published_at"] == "2025-03-29T23:30:00Z"


async def test_hour_week_and_month_buckets_follow_the_local_calendar(
    quiet_client: Any, seeded: dict[str, Any]
) -> None:
    status, body = await get_analytics(quiet_client, seeded["key"], granularity="hour",
                                       **{"from": "2025-03-30T00:00:00+01:00", "to": "2025-03-30T03:30:00+02:00"})
    assert status == 200, body
    assert [(p["date"], p["posts"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-03-30T00:00:00+01:00", 1, 1000),
        ("2025-03-30T01:00:00+01:00", 0, 0),
        ("2025-03-30T03:00:00+02:00", 0, 0),  # 02:00 does not exist in Paris that night
    ]
    status, body = await get_analytics(quiet_client, seeded["key"], granularity="week", **PERIOD)
    assert [(p["date"], p["posts"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-03-24", 2, 1500), ("2025-03-31", 2, 400),
    ]
    status, body = await get_analytics(quiet_client, seeded["key"], granularity="month",
                                       **{"from": "2025-03-01", "to": "2025-04-30"})
    assert [(p["date"], p["posts"], p["impressions"]) for p in body["data"]["timeline"]] == [
        ("2025-03", 4, 1900), ("2025-04", 1, 5000),
    ]


async def test_platform_filter(quiet_client: Any, seeded: dict[str, Any]) -> None:
    status, body = await get_analytics(quiet_client, seeded["key"], platform="twitter", **PERIOD)
    assert status == 200
    data = body["data"]
    assert list(data["by_platform"]) == ["twitter"]
    assert (data["summary"]["total_posts"], data["summary"]["total_impressions"]) == (2, 1300)
    assert [p["impressions"] for p in data["timeline"]] == [300, 0, 1000, 0, 0]
    assert {t["platform"] for t in data["top_posts"]} == {"twitter"}


async def test_an_empty_period_is_all_zeros(quiet_client: Any, seeded: dict[str, Any]) -> None:
    status, body = await get_analytics(quiet_client, seeded["key"], **{"from": "2025-01-01", "to": "2025-01-03"})
    assert status == 200
    data = body["data"]
    assert data["summary"] == {"total_posts": 0, "total_impressions": 0, "total_reach": 0, "total_engagement": 0,
                               "total_clicks": 0, "avg_engagement_rate": 0, "best_performing_platform": None}
    assert data["by_platform"] == {} and data["top_posts"] == []
    assert [(p["date"], p["impressions"], p["posts"]) for p in data["timeline"]] == [
        ("2025-01-01", 0, 0), ("2025-01-02", 0, 0), ("2025-01-03", 0, 0)]


async def test_audience_followers_growth_and_demographics(
    quiet_client: Any, seeded: dict[str, Any], engine: Any
) -> None:
    key = seeded["key"]
    [twitter] = await connect(quiet_client, key, "twitter")
    [linkedin] = await connect(quiet_client, key, "linkedin")
    twitter["workspace_id"] = linkedin["workspace_id"] = key.workspace_id
    await account_snapshot(engine, twitter, "2025-03-20T00:00:00Z", 1000)
    await account_snapshot(engine, twitter, "2025-03-29T00:00:00Z", 1100)
    await account_snapshot(engine, twitter, "2025-04-01T12:00:00Z", 1200, {
        "age_groups": {"18-24": 50, "25-34": 50}, "top_locations": [{"country": "France", "percentage": 100}]})
    await account_snapshot(engine, twitter, "2025-04-05T00:00:00Z", 1500)  # after the period
    await account_snapshot(engine, linkedin, "2025-03-30T00:00:00Z", 500)  # first seen inside the period
    await account_snapshot(engine, linkedin, "2025-04-01T10:00:00Z", 550, {
        "age_groups": {"18-24": 20, "25-34": 80},
        "top_locations": [{"country": "France", "percentage": 60}, {"country": "Belgium", "percentage": 40}]})
    status, body = await get_analytics(quiet_client, key, **PERIOD)
    assert status == 200
    assert body["data"]["audience"] == {
        "total_followers": 1750,  # 1200 + 550
        "follower_growth": 250,  # from 1000 (twitter before the period) + 500 (linkedin's first)
        "growth_rate": 16.67,
        "demographics": {
            "age_groups": {"18-24": 40.57, "25-34": 59.43},  # weighted by followers
            "top_locations": [{"country": "France", "percentage": 87.43}, {"country": "Belgium", "percentage": 12.57}],
        },
    }
    status, body = await get_analytics(quiet_client, key, platform="linkedin", **PERIOD)
    assert body["data"]["audience"]["total_followers"] == 550
    assert body["data"]["audience"]["follower_growth"] == 50


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-04-02", "to": "2025-04-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-01"}, "to"),
        ({"from": "01/04/2025"}, "from"),
        ({"granularity": "minute"}, "granularity"),
        ({"granularity": "hour", "from": "2023-01-01", "to": "2025-01-02"}, "granularity"),
        ({"platform": "myspace"}, "platform"),
        ({"page": "2"}, "page"),
    ],
)
async def test_bad_queries_are_422(quiet_client: Any, key: Any, params: dict[str, str], field: str) -> None:
    status, body = await get_analytics(quiet_client, key, **params)
    assert status == 422, body
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert field in body["error"]["details"]


async def test_too_many_hours_says_so(quiet_client: Any, key: Any) -> None:
    status, body = await get_analytics(quiet_client, key, granularity="hour",
                                       **{"from": "2023-01-01", "to": "2025-06-01"})
    assert status == 422 and "Too many points" in body["error"]["message"]
    status, body = await get_analytics(quiet_client, key, granularity="hour",
                                       **{"from": "2023-01-01", "to": "2024-12-31"})
    assert status == 200 and len(body["data"]["timeline"]) == 731 * 24


async def test_other_workspaces_and_keys_without_the_permission(
    quiet_client: Any, seeded: dict[str, Any], make_key: Any
) -> None:
    status, body = await get_analytics(quiet_client, seeded["other"], **PERIOD)
    assert body["data"]["summary"]["total_impressions"] == 99999
    reader = await make_key(permissions=["posts.read"], workspace=seeded["key"].workspace_id)
    status, body = await get_analytics(quiet_client, reader, **PERIOD)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"


# --- the admin view ----------------------------------------------------------------------------------


async def test_admin_analytics_sums_every_workspace(
    quiet_client: Any, make_key: Any, engine: Any, admin_headers: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    def ago(days: float) -> str:
        return (datetime.now(UTC) - timedelta(days=days)).isoformat()

    mine, theirs = await make_key(), await make_key()
    a = await create_post(quiet_client, mine, ["twitter"], content="Mine")
    b = await create_post(quiet_client, theirs, ["linkedin"], content="Theirs")
    c = await create_post(quiet_client, theirs, ["twitter"], content="Old")
    t = await published_at(engine, a["id"], "twitter", ago(2))
    await snapshot(engine, t, ago(1), impressions=100, engagement=10, clicks=1)
    t = await published_at(engine, b["id"], "linkedin", ago(20))
    await snapshot(engine, t, ago(19), impressions=300, reach=200, engagement=15)
    t = await published_at(engine, c["id"], "twitter", ago(200))
    await snapshot(engine, t, ago(199), impressions=1000, engagement=100)

    headers = await admin_headers("viewer")
    week = await (await quiet_client.get("/admin/analytics?period=7d", headers=headers)).json()
    assert week["data"]["summary"]["total_impressions"] == 100
    assert len(week["data"]["timeline"]) == 8  # seven days back, today included
    month = await (await quiet_client.get("/admin/analytics", headers=headers)).json()
    assert month["data"]["period"]["name"] == "30d"
    assert month["data"]["summary"] == {
        "total_posts": 2, "total_impressions": 400, "total_reach": 200, "total_engagement": 25, "total_clicks": 1,
        "avg_engagement_rate": 6.25, "best_performing_platform": "twitter",
    }
    assert {t["workspace_id"] for t in month["data"]["top_posts"]} == {mine.workspace_id, theirs.workspace_id}
    year = await (await quiet_client.get("/admin/analytics?period=1y", headers=headers)).json()
    assert year["data"]["summary"]["total_impressions"] == 1400
    assert year["data"]["period"]["granularity"] == "month" and len(year["data"]["timeline"]) in (12, 13)


@pytest.mark.parametrize("query", ["period=2w", "period=", "period=30d&workspace=x"])
async def test_admin_analytics_refuses_unknown_periods(quiet_client: Any, admin_headers: Any, query: str) -> None:
    resp = await quiet_client.get(f"/admin/analytics?{query}", headers=await admin_headers("viewer"))
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "VALIDATION_ERROR"


async def test_admin_analytics_needs_the_permission(quiet_client: Any, admin_headers: Any) -> None:
    resp = await quiet_client.get("/admin/analytics", headers=await admin_headers("viewer", permissions=[]))
    assert resp.status == 403
    assert (await quiet_client.get("/admin/analytics")).status == 401
