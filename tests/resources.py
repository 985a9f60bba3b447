"""A worker's resources for tests that run job handlers themselves (workers/resources.py)."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.core.crypto import Cipher
from ouipost.storage import storage_from_settings
from workers.resources import WorkerResources


def resources_for(settings: Settings, engine: AsyncEngine, clock: Clock,
                  session: aiohttp.ClientSession) -> WorkerResources:
    """Resources around the test's own HTTP session (the test closes it), built without a context
    manager for handlers run one by one: local storage holds nothing to close, and these tests
    deliver no webhooks (the webhook tests use workers.resources.worker_resources, whose session
    has the private-address guard)."""
    return WorkerResources(
        settings=settings, engine=engine, clock=clock, http=session, webhook_http=session,
        cipher=Cipher(settings.secret_key), storage=storage_from_settings(settings),
    )
