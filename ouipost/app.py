"""The aiohttp application: middlewares, routes, and what lives for the app's lifetime."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost import __version__
from ouipost.api import accounts as accounts_api
from ouipost.api import media as media_api
from ouipost.api import platforms as platforms_api
from ouipost.api import posts as posts_api
from ouipost.api import workspaces as workspaces_api
from ouipost.api.auth import api_key_middleware
from ouipost.clock import Clock
from ouipost.config import Settings
from ouipost.context import CIPHER, CLOCK, DB, HTTP_CLIENT, PLATFORM_HTTP, SETTINGS, STORAGE
from ouipost.crypto import Cipher, derive_key
from ouipost.db.engine import create_engine
from ouipost.platforms.http import PlatformHttp
from ouipost.storage import Storage, create_storage
from ouipost.storage.local import FILE_ROUTE, LocalStorage, make_file_handler
from ouipost.web import error_middleware, error_response, ok, request_id_middleware

STARTED_AT = web.AppKey("started_at", float)


def create_app(settings: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None) -> web.Application:
    """Build the app. The engine is created on startup unless one is given (tests share one)."""
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, api_key_middleware],
        client_max_size=settings.max_json_kb * 1024,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[STARTED_AT] = time.time()
    app[CIPHER] = Cipher(settings.secret_key)
    app[STORAGE] = create_media_storage(settings)
    app.on_cleanup.append(_close_storage)
    app.cleanup_ctx.append(_database(engine))
    app.cleanup_ctx.append(_http_client)

    app.router.add_get("/healthz", healthz)
    app.add_routes(platforms_api.routes)
    app.add_routes(workspaces_api.routes)
    app.add_routes(accounts_api.routes)
    app.add_routes(posts_api.routes)
    app.add_routes(media_api.routes)
    if isinstance(app[STORAGE], LocalStorage):
        app.router.add_get(FILE_ROUTE, make_file_handler(app[STORAGE]))

    if settings.sandbox:
        from ouipost.sandbox import create_sandbox_app, set_mount_prefix

        sandbox_app = create_sandbox_app()
        set_mount_prefix(sandbox_app, "/sandbox")
        app.add_subapp("/sandbox", sandbox_app)
    return app


def create_media_storage(settings: Settings) -> Storage:
    """Local disk under the data dir (URLs signed with a key derived from the secret), or S3."""
    if settings.storage == "s3":
        return create_storage(
            "s3", bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )
    return LocalStorage(
        Path(settings.data_dir) / "media", public_url=settings.public_url,
        secret=derive_key(settings.secret_key, "ouipost/media-urls/v1"),
    )


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


async def healthz(request: web.Request) -> web.Response:
    """For load balancers: 200 when the database answers, 503 otherwise. No auth, no details."""
    try:
        async with request.app[DB].connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:
        return error_response(503, "SERVICE_UNAVAILABLE", "The database is unavailable")
    return ok({"status": "ok"})
