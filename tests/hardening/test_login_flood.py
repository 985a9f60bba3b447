"""Logins cannot freeze or break the server: password checks run off the event loop, a bounded number
at a time, and concurrent failed logins never answer 500 (MariaDB deadlocks included)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.db.admin_tables import audit_logs, login_failures
from ouipost.http.context import PASSWORDS
from ouipost.identity import users

# Floods of argon2 password checks (seconds of CPU each): not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


async def _make_admin(engine: AsyncEngine, email: str) -> None:
    async with engine.begin() as conn:
        await users.create_user(conn, email=email, password=PASSWORD, name="Admin", role="admin", now=Clock().now())


async def test_logins_do_not_stall_other_requests(
    client: TestClient, engine: AsyncEngine, monkeypatch: Any,
) -> None:
    """While password checks run, other requests are still answered. On the event loop a check
    would block every request until it ends, so no answer could arrive while one is in flight:
    this counts answers that did, which needs no timing assumption."""
    await _make_admin(engine, "admin@example.com")
    in_flight, lock = 0, threading.Lock()
    check = users.verify_password

    def tracked(password_hash: str, password: str) -> bool:
        nonlocal in_flight
        with lock:
            in_flight += 1
        try:
            return check(password_hash, password)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(users, "verify_password", tracked)
    stop = asyncio.Event()

    async def probe() -> int:
        answered_during_checks = 0
        while not stop.is_set():
            resp = await client.get("/healthz")
            assert resp.status == 200
            with lock:
                answered_during_checks += in_flight > 0
            await asyncio.sleep(0.005)
        return answered_during_checks

    prober = asyncio.create_task(probe())
    attempts = [
        client.post("/admin/login", json={"email": email, "password": "wrong password"})
        for email in ["admin@example.com", "nobody@example.com"] * 4
    ]
    answers = await asyncio.gather(*attempts)
    stop.set()
    answered_during_checks = await prober
    assert sorted({a.status for a in answers}) == [401]
    assert answered_during_checks >= 3


async def test_password_checks_in_flight_are_bounded(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, monkeypatch: Any
) -> None:
    await _make_admin(engine, "admin@example.com")
    app = create_app(settings, engine=engine)
    app[PASSWORDS] = users.PasswordHashing(concurrency=2)
    client = await aiohttp_client(app)
    running, most, lock = 0, 0, threading.Lock()
    check = users.verify_password

    def counted(password_hash: str, password: str) -> bool:
        nonlocal running, most
        assert threading.current_thread() is not threading.main_thread()
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)
            return check(password_hash, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(users, "verify_password", counted)
    answers = await asyncio.gather(*[
        client.post("/admin/login", json={"email": f"user{i}@example.com", "password": "wrong"}) for i in range(8)
    ], client.post("/admin/login", json={"email": "admin@example.com", "password": PASSWORD}))
    assert [a.status for a in answers] == [401] * 8 + [200]
    assert most == 2


async def test_a_flood_of_failed_logins_never_answers_500_and_still_locks(
    client: TestClient, engine: AsyncEngine
) -> None:
    await _make_admin(engine, "admin@example.com")
    emails = ["admin@example.com"] * 10 + [f"other{i % 5}@example.com" for i in range(10)]
    answers = await asyncio.gather(*[
        client.post("/admin/login", json={"email": email, "password": "wrong password"}) for email in emails
    ])
    statuses = [a.status for a in answers]
    assert set(statuses) <= {401, 429}, statuses
    # Ten failures for one e-mail: locked now, whatever the order they were counted in.
    locked = await client.post("/admin/login", json={"email": "admin@example.com", "password": PASSWORD})
    assert locked.status == 429 and int(locked.headers["Retry-After"]) > 0
    async with engine.connect() as conn:
        failures = await conn.scalar(sa.select(sa.func.count()).select_from(login_failures))
        audited = await conn.scalar(
            sa.select(sa.func.count()).select_from(audit_logs).where(audit_logs.c.action == "auth.login_failed")
        )
    assert audited == 21 and failures == 20 - statuses.count(429)
