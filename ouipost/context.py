"""Typed keys for what lives on the application and on each request (never module globals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.clock import Clock
from ouipost.config import Settings
from ouipost.crypto import Cipher
from ouipost.platforms.http import PlatformHttp
from ouipost.storage import Storage
from ouipost.users import PasswordHashing

if TYPE_CHECKING:  # workers.worker imports the queue, which imports this module
    from workers.worker import Worker


@dataclass(frozen=True)
class ApiKey:
    """The authenticated API key of a request."""

    id: str
    name: str
    prefix: str
    tier: str
    permissions: frozenset[str]
    last_used_at: datetime | None = None  # as stored when the request began
    reaches: str | None = None  # the request's X-Workspace-ID, when the key reaches it


SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", AsyncEngine)
CLOCK = web.AppKey("clock", Clock)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
# The embedded worker of `serve` (absent with --no-workers or OUIPOST_WORKERS=0); see queue.notify_enqueued.
WORKER: web.AppKey[Worker] = web.AppKey("worker")
PLATFORM_HTTP = web.AppKey("platform_http", PlatformHttp)
CIPHER = web.AppKey("cipher", Cipher)
STORAGE = web.AppKey("storage", Storage)
# argon2id checks off the event loop, a bounded number at once (see ouipost/users.py).
PASSWORDS = web.AppKey("passwords", PasswordHashing)

API_KEY = web.RequestKey("api_key", ApiKey)
WORKSPACE_ID = web.RequestKey("workspace_id", str)
