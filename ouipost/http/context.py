"""Typed keys for what lives on the application and on each request (never module globals)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.core.crypto import Cipher
from ouipost.identity.api_keys import ApiKey
from ouipost.identity.users import PasswordHashing
from ouipost.jobs.queue import Waker
from ouipost.platforms.http import PlatformHttp
from ouipost.storage import Storage

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", AsyncEngine)
CLOCK = web.AppKey("clock", Clock)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
# The embedded worker of `serve` (absent with --no-workers or OUIPOST_WORKERS=0); see queue.notify_enqueued.
WORKER = web.AppKey("worker", Waker)
STARTED_AT = web.AppKey("started_at", float)  # time.time() when the app was built: /admin/system's uptime
PLATFORM_HTTP = web.AppKey("platform_http", PlatformHttp)
CIPHER = web.AppKey("cipher", Cipher)
STORAGE = web.AppKey("storage", Storage)
# argon2id checks off the event loop, a bounded number at once (see ouipost/identity/users.py).
PASSWORDS = web.AppKey("passwords", PasswordHashing)

API_KEY = web.RequestKey("api_key", ApiKey)
WORKSPACE_ID = web.RequestKey("workspace_id", str)
