"""/admin/dashboard, /stats, /health, /platform-health, /system."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ouipost.admin import monitoring
from ouipost.app import create_app
from ouipost.db.engine import create_engine
from ouipost.db.tables import posts
from ouipost.identity import workspaces
from ouipost.publishing import platform_calls


async def _seed(engine: Any, clock: Any) -> None:
    now = clock.now()
    async with engine.begin() as conn:
        ws = await workspaces.create_workspace(conn, name="W", description=None, settings=None, now=now)
        for i, (status, platforms) in enumerate([
            ("draft", ["facebook"]), ("scheduled", ["facebook", "twitter"]), ("published", ["instagram"]),
            ("failed", ["twitter"]), ("published", ["linkedin", "pinterest"]), ("published", ["youtube"]),
        ]):
            await conn.execute(posts.insert().values(
                id=f"post_{i}", workspace_id=ws["id"], status=status, content="x", hashtags=[], platforms=platforms,
                platform_content={}, created_at=now, updated_at=now,
            ))


async def test_dashboard(client: Any, admin: Any, engine: Any, clock: Any, make_key: Any) -> None:
    await _seed(engine, clock)
    key = await make_key()
    await client.get("/api/platforms", headers=key.headers())
    resp = await client.get("/admin/dashboard", headers=admin.headers)
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert data["overview"] == {"total_workspaces": 2, "total_posts": 6, "total_accounts": 0, "total_users": 1}
    assert data["activity"] == {"posts_today": 6, "posts_this_week": 6, "scheduled_posts": 1, "failed_posts": 1}
    assert data["api_usage"] == {"requests_today": 1, "requests_this_month": 1, "active_keys": 1}
    assert data["platform_distribution"]["facebook"] == 2 and data["platform_distribution"]["twitter"] == 2
    assert sum(data["platform_distribution"].values()) == 8 and "other" in data["platform_distribution"]


async def test_stats(client: Any, admin: Any, engine: Any, clock: Any) -> None:
    await _seed(engine, clock)
    data = (await (await client.get("/admin/stats", headers=admin.headers)).json())["data"]
    assert data["posts"]["total"] == 6
    # Every status is counted, the ones no post is in as 0 (the reference shows the four most common).
    assert data["posts"]["by_status"] == {"draft": 1, "pending_approval": 0, "scheduled": 1, "publishing": 0,
                                          "published": 3, "partially_published": 0, "failed": 1}
    assert data["posts"]["by_platform"]["facebook"] == 2
    assert data["accounts"] == {"total": 0, "by_status": {"active": 0, "expired": 0, "error": 0}}
    assert data["usage"]["storage_used_mb"] >= 0 and data["usage"]["storage_limit_mb"] > 0
    assert data["usage"]["api_calls_this_month"] == 0
    assert (await client.get("/admin/stats?x=1", headers=admin.headers)).status == 422


async def test_health_measures_each_component(client: Any, admin: Any) -> None:
    resp = await client.get("/admin/health", headers=admin.headers)
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert data["status"] == "healthy" and data["timestamp"].endswith("Z")
    components = data["components"]
    assert components["database"]["status"] == "healthy" and components["database"]["latency_ms"] >= 0
    assert 0 <= components["storage"]["used_percent"] <= 100
    assert components["queue"]["pending_jobs"] >= 0


async def test_health_is_503_when_the_database_is_down(
    aiohttp_client: Any, settings: Any, admin: Any, tmp_path: Any
) -> None:
    unreachable = tmp_path / "not-a-file"
    unreachable.mkdir()  # a directory cannot be opened as an SQLite database
    dead = create_engine(f"sqlite+aiosqlite:///{unreachable}")
    client = await aiohttp_client(create_app(settings, engine=dead))
    resp = await client.get("/admin/health", headers=admin.headers)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert (await monitoring.check_database(dead))["status"] == "unhealthy"
    await dead.dispose()


async def test_platform_health_from_recorded_calls(client: Any, admin: Any, engine: Any, clock: Any) -> None:
    now = clock.now()
    async with engine.begin() as conn:
        for i in range(20):
            await platform_calls.record_platform_call(conn, network="facebook", ok=True, status=200, latency_ms=400,
                                                  at=now - timedelta(minutes=i))
        for i in range(10):
            await platform_calls.record_platform_call(conn, network="twitter", ok=i != 0, status=429 if i == 0 else 201,
                                                  latency_ms=1000, at=now - timedelta(minutes=i))
        await platform_calls.record_platform_call(conn, network="tiktok", ok=False, status=503, latency_ms=50, at=now)
        await platform_calls.record_platform_call(conn, network="tiktok", ok=True, status=200, latency_ms=50,
                                              at=now - timedelta(days=2))
    data = (await (await client.get("/admin/platform-health", headers=admin.headers)).json())["data"]
    facebook, twitter, tiktok = (data["platforms"][n] for n in ("facebook", "twitter", "tiktok"))
    assert facebook["status"] == "operational" and facebook["error_rate_24h"] == 0.0
    assert facebook["avg_response_time_ms"] == 400 and facebook["last_successful_post"] is not None
    assert twitter["status"] == "degraded" and twitter["api_status"] == "partial_outage"
    assert twitter["error_rate_24h"] == 10.0 and any("Rate limited" in i for i in twitter["issues"])
    assert tiktok["status"] == "down" and tiktok["last_successful_post"] is not None
    assert data["platforms"]["bluesky"]["status"] == "unknown"
    assert data["overall_status"] == "degraded" and data["last_updated"].endswith("Z")


async def test_platform_health_without_data_is_unknown(client: Any, admin: Any) -> None:
    data = (await (await client.get("/admin/platform-health", headers=admin.headers)).json())["data"]
    assert data["overall_status"] == "unknown"
    assert {p["status"] for p in data["platforms"].values()} == {"unknown"}


async def test_system(client: Any, admin: Any, engine: Any) -> None:
    data = (await (await client.get("/admin/system", headers=admin.headers)).json())["data"]
    from ouipost import __version__

    assert data["version"] == __version__ and data["python_version"].count(".") == 2
    assert data["database_version"].split()[0] in ("SQLite", "MariaDB", "MySQL", "PostgreSQL")
    assert data["uptime_seconds"] >= 0
    assert data["memory"]["used_mb"] > 0 and data["memory"]["limit_mb"] > 0
    assert data["features"]["webhooks"] is True and data["features"]["multi_platform"] is True
