"""Fixtures for the publishing tests: the admin session fixtures (health), an app without embedded
worker, and helpers that run the publish and refresh handlers directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.jobs.queue import Job
from tests.admin.conftest import _collect_migration_leftovers, admin, make_user, sign_in  # noqa: F401
from tests.resources import resources_for
from workers.worker import JobContext


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    return settings.with_overrides(workers=0)


@pytest.fixture
async def quiet_client(
    aiohttp_client: Any, quiet_settings: Settings, engine: AsyncEngine, clock: Clock
) -> TestClient:
    """The app without its embedded worker: the tests run handlers themselves."""
    return await aiohttp_client(create_app(quiet_settings, engine=engine, clock=clock))


def job_context(engine: AsyncEngine, settings: Settings, session: aiohttp.ClientSession, kind: str,
                payload: dict[str, Any], *, job_id: int = 1, attempts: int = 1, clock: Clock | None = None,
                unique_key: str | None = None) -> JobContext:
    job = Job(id=job_id, queue="default", kind=kind, payload=payload, attempts=attempts, max_attempts=8,
              run_at=datetime.now(UTC), unique_key=unique_key, locked_by="test-worker")
    clock = clock or Clock()
    return JobContext(job, engine, clock, resources_for(settings, engine, clock, session))
