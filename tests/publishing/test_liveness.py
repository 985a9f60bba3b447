"""Liveness in /admin/health: the workers alive, the oldest due job and its age, `degraded` when
due jobs wait while no worker is alive; /healthz stays a plain 200 for load balancers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.jobs import queue
from tests.queue.conftest import add_job
from tests.queue.test_worker import wait_until
from workers.worker import Worker


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No embedded worker: each test decides whether a worker is alive."""
    return settings.with_overrides(workers=0)


async def _queue_health(client: Any, admin: Any) -> tuple[str, dict[str, Any]]:
    resp = await client.get("/admin/health", headers=admin.headers)
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]
    return data["status"], data["components"]["queue"]


async def test_due_jobs_with_no_worker_alive_make_health_degraded(client: Any, admin: Any, engine: Any) -> None:
    now = Clock().now()
    await add_job(engine, now=now - timedelta(seconds=300), run_at=now - timedelta(seconds=90))
    status, component = await _queue_health(client, admin)
    assert status == "degraded" and component["status"] == "degraded"
    assert component["workers_alive"] == 0 and component["workers"] == []
    assert component["due_jobs"] == 1 and 85 <= component["oldest_due_job"]["age_seconds"] <= 120
    assert component["oldest_due_job"]["run_at"].endswith("Z") and "no worker is alive" in component["detail"]
    healthz = await client.get("/healthz")  # load balancers only learn whether this process can serve
    assert healthz.status == 200


async def test_a_live_worker_makes_the_same_queue_healthy(client: Any, admin: Any, engine: Any) -> None:
    now = Clock().now()
    await add_job(engine, now=now, run_at=now - timedelta(seconds=90), queue="elsewhere")
    worker = Worker(engine, {}, queues=["publish"], clock=Clock(), poll_interval=0.05)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: _alive(engine), timeout=10)
        status, component = await _queue_health(client, admin)
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=15)
    assert status == "healthy" and component["status"] == "healthy"
    assert component["workers_alive"] == 1 and component["workers"][0]["id"] == worker.id
    assert component["workers"][0]["last_heartbeat"].endswith("Z")
    assert component["due_jobs"] == 1 and component["oldest_due_job"]["age_seconds"] >= 89


async def test_an_empty_queue_is_healthy_without_workers(client: Any, admin: Any) -> None:
    status, component = await _queue_health(client, admin)
    assert status == "healthy" and component["oldest_due_job"] is None and component["due_jobs"] == 0


async def _alive(engine: Any) -> bool:
    return (await queue.queue_stats(engine, Clock().now())).workers_alive == 1
