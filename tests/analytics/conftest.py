"""Analytics fixtures: an app without the embedded worker (seeded targets have syncs due at once),
and helpers that seed published targets and snapshots through the domain's own functions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.analytics import service as analytics
from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.db.tables import post_targets
from ouipost.identity import users
from ouipost.jobs.queue import Job
from ouipost.platforms.base import AccountStats, Insights
from ouipost.publishing import service as publishing
from tests.resources import resources_for
from workers.worker import JobContext

PASSWORD = "correct horse battery staple"


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    return settings.with_overrides(workers=0)


@pytest.fixture
async def quiet_client(
    aiohttp_client: Any, quiet_settings: Settings, engine: AsyncEngine, clock: Clock
) -> TestClient:
    """The app without its embedded worker: tests run the analytics handlers themselves."""
    return await aiohttp_client(create_app(quiet_settings, engine=engine, clock=clock))


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def target_of(engine: AsyncEngine, post_id: str, network: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(post_targets).where(
            post_targets.c.post_id == post_id, post_targets.c.network == network,
        ))).mappings().one()
    return dict(row)


async def published_at(engine: AsyncEngine, post_id: str, network: str, at: str) -> dict[str, Any]:
    """Mark the post's target on `network` published at `at`, as the publish worker does."""
    target = await target_of(engine, post_id, network)
    async with engine.begin() as conn:
        await publishing.mark_target_published(conn, target["id"], f"remote-{target['id']}",
                                               f"https://example.com/{target['id']}", iso(at))
    return await target_of(engine, post_id, network)


async def snapshot(engine: AsyncEngine, target: dict[str, Any], at: str, *, impressions: int = 0, reach: int = 0,
                   engagement: int = 0, clicks: int = 0, **metrics: float) -> None:
    async with engine.begin() as conn:
        await analytics.store_snapshot(conn, target, Insights(
            metrics=metrics, impressions=impressions, reach=reach, engagement=engagement, clicks=clicks,
        ), iso(at))


async def account_snapshot(engine: AsyncEngine, account: dict[str, Any], at: str, followers: int,
                           demographics: dict[str, Any] | None = None) -> None:
    async with engine.begin() as conn:
        row = {"id": account["id"], "workspace_id": account["workspace_id"], "platform": account["platform"]}
        await analytics.store_account_snapshot(conn, row, AccountStats(followers=followers, demographics=demographics),
                                               iso(at))


def job_context(engine: AsyncEngine, settings: Settings, session: aiohttp.ClientSession, kind: str,
                payload: dict[str, Any], *, clock: Clock | None = None, attempts: int = 1,
                max_attempts: int = analytics.SYNC_MAX_ATTEMPTS) -> JobContext:
    job = Job(id=0, queue=analytics.QUEUE, kind=kind, payload=payload, attempts=attempts, max_attempts=max_attempts,
              run_at=datetime.now().astimezone(), unique_key=None, locked_by="test")
    clock = clock or Clock()
    return JobContext(job, engine, clock, resources_for(settings, engine, clock, session))


@pytest.fixture
def admin_headers(client_for_admin: TestClient, engine: AsyncEngine) -> Callable[..., Any]:
    """admin_headers(role="viewer", permissions=None) -> Authorization headers of a new admin user."""
    counter = iter(range(1000))

    async def make(role: str = "viewer", permissions: list[str] | None = None) -> dict[str, str]:
        email = f"{role}{next(counter)}@example.com"
        async with engine.begin() as conn:
            await users.create_user(conn, email=email, password=PASSWORD, name="Analyst", role=role,
                                    permissions=permissions, now=Clock().now())
        resp = await client_for_admin.post("/admin/login", json={"email": email, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['data']['token']}"}

    return make


@pytest.fixture
def client_for_admin(quiet_client: TestClient) -> TestClient:
    return quiet_client
