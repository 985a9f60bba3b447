"""Webhook delivery fixtures: local receivers, an admin signed in over HTTP, and a driver that runs
the `webhooks` queue's due jobs one by one on a chosen clock (deterministic retries)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.db.queue_tables import jobs
from ouipost.identity import users
from ouipost.jobs import queue
from ouipost.webhooks import service as webhooks
from workers.registry import HANDLERS
from workers.resources import worker_resources
from workers.worker import JobContext

PASSWORD = "correct horse battery staple"
DRIVER_ID = "test-driver"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """OUIPOST_WEBHOOK_ALLOW_PRIVATE on: the receivers listen on 127.0.0.1."""
    return settings.with_overrides(webhook_allow_private=True)


@dataclass
class Receiver:
    url: str = ""
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn; 200 when empty

    def payloads(self) -> list[Any]:
        import json

        return [json.loads(body) for body, _ in self.received]


@pytest.fixture
def make_receiver(aiohttp_server: Any) -> Callable[[], Awaitable[Receiver]]:
    """make_receiver() -> a local HTTP endpoint that records every POST and answers `statuses` in turn."""

    async def make() -> Receiver:
        box = Receiver()

        async def handle(request: web.Request) -> web.Response:
            box.received.append((await request.text(), dict(request.headers)))
            return web.Response(status=box.statuses.pop(0) if box.statuses else 200, text="thanks")

        app = web.Application()
        app.router.add_post("/hook", handle)
        server = await aiohttp_server(app)
        box.url = f"http://127.0.0.1:{server.port}/hook"
        return box

    return make


@pytest.fixture
async def receiver(make_receiver: Callable[[], Awaitable[Receiver]]) -> Receiver:
    return await make_receiver()


@pytest.fixture
async def admin_client(aiohttp_client: Any, settings: Settings, engine: AsyncEngine, clock: Clock) -> TestClient:
    """The app without an embedded worker: tests that drive jobs themselves read the admin API here."""
    return await aiohttp_client(create_app(settings.with_overrides(workers=0), engine=engine, clock=clock))


@dataclass
class Admin:
    headers: dict[str, str]


async def sign_in(client: TestClient, engine: AsyncEngine, clock: Clock, email: str) -> Admin:
    async with engine.begin() as conn:
        await users.create_user(conn, email=email, password=PASSWORD, name="Hook Admin", role="admin",
                                permissions=None, now=clock.now())
    resp = await client.post("/admin/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return Admin({"Authorization": f"Bearer {(await resp.json())['data']['token']}"})


async def add_webhook(
    engine: AsyncEngine, settings: Settings, clock: Clock, url: str, events: list[str]
) -> tuple[str, str]:
    """A webhook made through the domain; returns (id, secret)."""
    async with engine.begin() as conn:
        row, secret = await webhooks.create_webhook(
            conn, url=url, events=events, secret=None, description=None, created_by=None,
            secret_key=settings.secret_key, now=clock.now(),
        )
    return row["id"], secret


async def run_due_jobs(engine: AsyncEngine, clock: Clock, settings: Settings, *, max_rounds: int = 50) -> list[str]:
    """Run the due jobs of the `webhooks` queue as a worker would (claim, handle, acknowledge or
    retry), until none is due at `clock.now()`; returns the kinds run, in order."""
    ran: list[str] = []
    async with worker_resources(settings, engine, clock) as resources:
        for _ in range(max_rounds):
            claimed = await queue.claim_due_jobs(engine, DRIVER_ID, ["webhooks"], 10, 30.0, clock.now())
            if not claimed:
                return ran
            for job in claimed:
                ran.append(job.kind)
                try:
                    await HANDLERS[job.kind](JobContext(job, engine, clock, resources))
                except queue.RetryJob as exc:
                    await queue.fail_or_retry(engine, job, str(exc), clock.now(), retry_after=exc.retry_after)
                except queue.JobFailed as exc:
                    await queue.fail_or_retry(engine, job, str(exc), clock.now(), retryable=False)
                else:
                    await queue.complete_jobs(engine, [job.id], DRIVER_ID, clock.now())
    raise AssertionError("jobs kept coming")


async def live_jobs(engine: AsyncEngine, kind: str | None = None) -> list[Any]:
    query = sa.select(jobs).where(jobs.c.status.in_(("queued", "running"))).order_by(jobs.c.id)
    if kind:
        query = query.where(jobs.c.kind == kind)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


async def eventually(condition: Callable[[], Any], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(0.05)
