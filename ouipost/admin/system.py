"""GET /admin/dashboard, /admin/stats, /admin/platform-health (analytics.view), /admin/health and
/admin/system (the admin role)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from marshmallow import Schema

from ouipost import __version__
from ouipost.admin import monitoring
from ouipost.admin.common import admin_route
from ouipost.core.clock import isoformat
from ouipost.http.context import CLOCK, DB, SETTINGS, STARTED_AT
from ouipost.http.rate_limits import LIMITER
from ouipost.http.usage import USAGE
from ouipost.http.web import error_response, load_query, ok
from ouipost.openapi import describe, views
from ouipost.platforms.registry import NETWORKS
from ouipost.publishing import platform_calls

routes = web.RouteTableDef()


class NoQuery(Schema):
    """These views take no parameters: any query field is refused (422)."""


def _no_query(request: web.Request) -> None:
    load_query(request, NoQuery())


@routes.get("/admin/dashboard")
@describe("Dashboard counts", query=NoQuery, data=views.Dashboard)
@admin_route("analytics.view")
async def dashboard(request: web.Request) -> web.Response:
    _no_query(request)
    await request.app[USAGE].flush()  # this process's latest API usage first
    async with request.app[DB].connect() as conn:
        data = await monitoring.dashboard(conn, request.app[CLOCK].now())
    return ok(data)


@routes.get("/admin/stats")
@describe("Posts, accounts and usage figures", query=NoQuery, data=views.Stats)
@admin_route("analytics.view")
async def stats(request: web.Request) -> web.Response:
    _no_query(request)
    await request.app[USAGE].flush()  # this process's latest API usage first
    async with request.app[DB].connect() as conn:
        data = await monitoring.stats(conn, request.app[SETTINGS].data_dir, request.app[CLOCK].now())
    return ok(data)


@routes.get("/admin/health")
@describe("Every component checked (503 with the report in details when unhealthy)", query=NoQuery, data=views.Health)
@admin_route(None, role="admin")
async def health(request: web.Request) -> web.Response:
    """Every component checked for real, at once. 503 SERVICE_UNAVAILABLE when the database (or
    anything else) is unhealthy, with the components in the error details. The queue component
    lists the workers alive and the oldest due job; it is `degraded` when due jobs wait with no
    worker alive (GET /healthz stays a plain 200/503 for load balancers). The rate_limits component
    says whether limits are shared through Redis or kept by each process, and is `degraded` while
    Redis does not answer (requests are then served without limits)."""
    _no_query(request)
    body = await health_report(request.app)
    if body["status"] == "unhealthy":
        failing = [name for name, c in body["components"].items() if c["status"] == "unhealthy"]
        return error_response(503, "SERVICE_UNAVAILABLE", f"Unhealthy: {', '.join(failing)}", body)
    return ok(body)


@routes.get("/admin/platform-health")
@describe("Each network's API health over 24 h", query=NoQuery, data=views.PlatformHealth)
@admin_route("analytics.view")
async def platform_health(request: web.Request) -> web.Response:
    _no_query(request)
    async with request.app[DB].connect() as conn:
        data = await platform_calls.platform_health(conn, request.app[CLOCK].now())
    return ok(data)


def _features(app: web.Application) -> dict[str, bool]:
    """What this build serves, read from its routes (so a feature shows once it exists)."""
    paths = {getattr(r.resource, "canonical", "") for r in app.router.routes() if r.resource is not None}
    return {
        "multi_platform": len(NETWORKS) > 1,
        "scheduling": any(p.startswith("/api/schedules") or p.endswith("/schedule") for p in paths),
        "analytics": any(p.startswith("/api/analytics") or p.endswith("/analytics") for p in paths),
        "webhooks": "/admin/webhooks" in paths,
        "media_upload": any(p.startswith("/api/media") for p in paths),
        "sandbox": bool(app[SETTINGS].sandbox),
    }


@routes.get("/admin/system")
@describe("Version, environment, uptime, memory and features", query=NoQuery, data=views.System)
@admin_route(None, role="admin")
async def system(request: web.Request) -> web.Response:
    _no_query(request)
    return ok(await system_report(request.app))


# ------------------------------------------------------------------------------------------------
# The reports themselves, shared by these endpoints and the admin UI's system page


async def health_report(app: web.Application) -> dict[str, Any]:
    """Every component checked for real, at once, and the overall status (never raises: a failing
    component is reported `unhealthy`)."""
    database, storage, queue, limits = await asyncio.gather(
        monitoring.check_database(app[DB]),
        asyncio.to_thread(monitoring.check_storage, app[SETTINGS].data_dir),
        monitoring.check_queue(app[DB], app[CLOCK].now()),
        app[LIMITER].health(),
    )
    components = {"database": database, "storage": storage, "queue": queue, "rate_limits": limits}
    status = monitoring.overall(components.values())
    return {"status": status, "timestamp": isoformat(app[CLOCK].now()), "components": components}


async def system_report(app: web.Application) -> dict[str, Any]:
    """Version, environment, Python and database versions, uptime, memory and features."""

    settings = app[SETTINGS]
    async with app[DB].connect() as conn:
        database_version = await monitoring.database_version(conn)
    return {
        "version": __version__,
        "environment": "sandbox" if settings.sandbox else "production",
        "python_version": monitoring.python_version(),
        "database_version": database_version,
        "uptime_seconds": int(time.time() - app[STARTED_AT]),
        "memory": monitoring.memory_mb(),
        "features": _features(app),
    }
