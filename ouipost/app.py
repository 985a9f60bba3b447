"""The aiohttp application: middlewares, routes, and what lives for the app's lifetime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost import admin as admin_api
from ouipost.admin.common import authenticate
from ouipost.api import accounts as accounts_api
from ouipost.api import analytics as analytics_api
from ouipost.api import media as media_api
from ouipost.api import platforms as platforms_api
from ouipost.api import post_import as post_import_api
from ouipost.api import posts as posts_api
from ouipost.api import schedules as schedules_api
from ouipost.api import workspaces as workspaces_api
from ouipost.api.auth import api_key_middleware
from ouipost.config import Settings
from ouipost.core import errors
from ouipost.core.clock import Clock
from ouipost.core.crypto import Cipher
from ouipost.core.forwarded import forwarded_middleware
from ouipost.db.engine import create_engine
from ouipost.http import rate_limits, usage
from ouipost.http.context import (
    CIPHER,
    CLOCK,
    DB,
    HTTP_CLIENT,
    PASSWORDS,
    PLATFORM_HTTP,
    SETTINGS,
    STARTED_AT,
    STORAGE,
    WORKER,
)
from ouipost.http.metrics import metrics_handler, metrics_middleware
from ouipost.http.web import add_security_headers, error_middleware, error_response, ok, request_id_middleware
from ouipost.identity.users import PasswordHashing
from ouipost.openapi import describe, views
from ouipost.openapi.docs import setup_docs
from ouipost.platforms.http import PlatformHttp
from ouipost.storage import storage_from_settings
from ouipost.storage.local import FILE_ROUTE, LocalStorage, make_file_handler
from ouipost.ui import setup_ui
from ouipost.webhooks import service as webhooks
from workers.registry import load_handlers
from workers.resources import worker_resources
from workers.worker import Worker


def create_app(settings: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None) -> web.Application:
    """Build the app. The engine is created on startup unless one is given (tests share one)."""
    app = web.Application(
        middlewares=[
            # First: every other middleware and handler sees the client behind a trusted proxy.
            *([forwarded_middleware(settings.trusted_proxies)] if settings.trusted_proxies else []),
            metrics_middleware, request_id_middleware, error_middleware, api_key_middleware,
            rate_limits.rate_limit_middleware,
        ],
        client_max_size=settings.max_json_kb * 1024,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[STARTED_AT] = time.time()
    app[CIPHER] = Cipher(settings.secret_key)
    app[STORAGE] = storage_from_settings(settings, app[CLOCK])
    app.on_cleanup.append(_close_storage)
    app[PASSWORDS] = PasswordHashing()
    app.on_cleanup.append(_close_passwords)
    app.cleanup_ctx.append(_database(engine))
    app.cleanup_ctx.append(rate_limits.limiter_ctx)
    app.cleanup_ctx.append(usage.recorder_ctx)  # API usage counted in memory, written every 2 s and at cleanup
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_embedded_worker)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    app.add_routes(platforms_api.routes)
    app.add_routes(workspaces_api.routes)
    app.add_routes(schedules_api.routes)
    app.add_routes(accounts_api.routes)
    app.add_routes(post_import_api.routes)  # before posts_api: /api/posts/export is no post id
    app.add_routes(posts_api.routes)
    app.add_routes(media_api.routes)
    app.add_routes(analytics_api.routes)
    storage = app[STORAGE]
    if isinstance(storage, LocalStorage):
        app.router.add_get(FILE_ROUTE, make_file_handler(storage))
    app.add_routes(admin_api.routes)
    setup_docs(app)
    app.on_response_prepare.append(rate_limits.add_rate_limit_headers)
    app.on_response_prepare.append(add_security_headers)
    setup_ui(app, settings)

    if settings.sandbox:
        from ouipost.sandbox import create_sandbox_app, set_mount_prefix

        # The control routes (request log, faults) are off on the API port unless asked for, and
        # then for admin tokens only (the standalone sandbox of tests and benchmarks keeps them open).
        sandbox_app = create_sandbox_app(control=settings.sandbox_control, control_guard=_sandbox_control_guard)
        set_mount_prefix(sandbox_app, "/sandbox")
        app.add_subapp("/sandbox", sandbox_app)
    return app


async def _sandbox_control_guard(request: web.Request) -> None:
    """Only a valid admin token of the admin role may read the sandbox's log or inject faults."""
    user = await authenticate(request)
    if user.role != "admin":
        raise errors.Forbidden("Only the admin role may use the sandbox controls", details={"required_role": "admin"})


async def _close_storage(app: web.Application) -> None:
    await app[STORAGE].close()


async def _close_passwords(app: web.Application) -> None:
    app[PASSWORDS].close()


def _database(given: AsyncEngine | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engine = given or create_engine(app[SETTINGS].database_url)
        app[DB] = engine
        yield
        if given is None:
            await engine.dispose()

    return ctx


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    # One client session per app, for every outgoing call to the networks (guarded unless they are
    # the sandbox or a configured base URL).
    settings = app[SETTINGS]
    session = webhooks.network_session(guarded=settings.effective_platform_base_url is None,
                                       allow_private=settings.webhook_allow_private)
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
    # Its resources are the app's own HTTP session, storage and cipher, plus what only jobs use.
    engine = create_engine(settings.database_url)
    try:
        async with worker_resources(settings, engine, app[CLOCK], http=app[HTTP_CLIENT], storage=app[STORAGE],
                                    cipher=app[CIPHER]) as resources:
            worker = Worker(engine, load_handlers(), concurrency=settings.workers, clock=app[CLOCK],
                            resources=resources)
            app[WORKER] = worker
            task = asyncio.create_task(worker.run(), name="embedded-worker")
            try:
                yield
            finally:
                worker.stop()
                await task
    finally:
        await engine.dispose()


@describe("Health probe for load balancers", data=views.Healthz)
async def healthz(request: web.Request) -> web.Response:
    """For load balancers: 200 when the database answers, 503 otherwise. No auth, no details."""
    try:
        async with request.app[DB].connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:
        return error_response(503, "SERVICE_UNAVAILABLE", "The database is unavailable")
    return ok({"status": "ok"})


async def gunicorn_app() -> web.Application:
    """The app under gunicorn, built in each worker after the fork (docs/deployment.md):
    `gunicorn 'ouipost.app:gunicorn_app' --worker-class aiohttp.GunicornWebWorker --bind ...`.
    Settings come from gunicorn's environment; it neither migrates nor creates the first admin
    (ouipost.cli.prepare_gunicorn_worker says what it checks and sets up)."""
    from ouipost.cli import prepare_gunicorn_worker

    return create_app(await prepare_gunicorn_worker())
