"""The aiohttp application: middlewares, routes, and what lives for the app's lifetime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost import __version__, rate_limits
from ouipost import admin as admin_api
from ouipost.api import accounts as accounts_api
from ouipost.api import analytics as analytics_api
from ouipost.api import media as media_api
from ouipost.api import platforms as platforms_api
from ouipost.api import posts as posts_api
from ouipost.api import schedules as schedules_api
from ouipost.api import workspaces as workspaces_api
from ouipost.api.auth import api_key_middleware
from ouipost.clock import Clock
from ouipost.config import Settings
from ouipost.context import CIPHER, CLOCK, DB, HTTP_CLIENT, PLATFORM_HTTP, SETTINGS, STORAGE, WORKER
from ouipost.crypto import Cipher
from ouipost.db.engine import create_engine
from ouipost.platforms.http import PlatformHttp
from ouipost.storage import storage_from_settings
from ouipost.storage.local import FILE_ROUTE, LocalStorage, make_file_handler
from ouipost.web import error_middleware, error_response, ok, request_id_middleware
from workers.registry import load_handlers
from workers.worker import Worker

STARTED_AT = web.AppKey("started_at", float)


def create_app(settings: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None) -> web.Application:
    """Build the app. The engine is created on startup unless one is given (tests share one)."""
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, api_key_middleware, rate_limits.rate_limit_middleware],
        client_max_size=settings.max_json_kb * 1024,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[STARTED_AT] = time.time()
    app[CIPHER] = Cipher(settings.secret_key)
    app[STORAGE] = storage_from_settings(settings)
    app.on_cleanup.append(_close_storage)
    app.cleanup_ctx.append(_database(engine))
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_embedded_worker)

    app.router.add_get("/healthz", healthz)
    app.add_routes(platforms_api.routes)
    app.add_routes(workspaces_api.routes)
    app.add_routes(schedules_api.routes)
    app.add_routes(accounts_api.routes)
    app.add_routes(posts_api.routes)
    app.add_routes(media_api.routes)
    app.add_routes(analytics_api.routes)
    if isinstance(app[STORAGE], LocalStorage):
        app.router.add_get(FILE_ROUTE, make_file_handler(app[STORAGE]))
    app.add_routes(admin_api.routes)
    app.on_response_prepare.append(rate_limits.add_rate_limit_headers)

    if settings.sandbox:
        from ouipost.sandbox import create_sandbox_app, set_mount_prefix

        sandbox_app = create_sandbox_app()
        set_mount_prefix(sandbox_app, "/sandbox")
        app.add_subapp("/sandbox", sandbox_app)
    return app


async def _close_storage(app: web.Application) -> None:
    await app[STORAGE].close()


def _database(given: AsyncEngine | None):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engine = given or create_engine(app[SETTINGS].database_url)
        app[DB] = engine
        yield
        if given is None:
            await engine.dispose()

    return ctx


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    # One client session per app, for every outgoing call (networks, webhooks).
    session = aiohttp.ClientSession(headers={"User-Agent": f"OuiPost/{__version__}"})
    app[HTTP_CLIENT] = session
    app[PLATFORM_HTTP] = PlatformHttp(session, base_url=app[SETTINGS].effective_platform_base_url)
    yield
    await session.close()


async def _embedded_worker(app: web.Application) -> AsyncIterator[None]:
    # `serve` runs the worker loop in-process with settings.workers slots (0: none, --no-workers).
    # It has an engine (a pool) of its own: a burst of jobs cannot take the connections API requests
    # need, and its shutdown bookkeeping (release leases, delete its row) runs on an engine that is
    # disposed after it, whatever the owner of the app's engine does first (tests dispose theirs).
    settings = app[SETTINGS]
    if settings.workers < 1:
        yield
        return
    engine = create_engine(settings.database_url)
    worker = Worker(
        engine, load_handlers(), concurrency=settings.workers, clock=app[CLOCK], settings=settings,
        http=app[HTTP_CLIENT],
    )
    app[WORKER] = worker
    task = asyncio.create_task(worker.run(), name="embedded-worker")
    try:
        yield
    finally:
        worker.stop()
        await task
        await engine.dispose()


async def healthz(request: web.Request) -> web.Response:
    """For load balancers: 200 when the database answers, 503 otherwise. No auth, no details."""
    try:
        async with request.app[DB].connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:
        return error_response(503, "SERVICE_UNAVAILABLE", "The database is unavailable")
    return ok({"status": "ok"})
