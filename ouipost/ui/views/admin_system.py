"""/ui/admin/system (the admin role): the health of each component (database, storage, queue and
workers, and whatever else /admin/health checks) and the system's versions, uptime, memory and
features, from the same reports as GET /admin/health and /admin/system."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ouipost.admin.system import health_report, system_report
from ouipost.ui.common import render, ui_view
from ouipost.ui.views.dashboard import duration

routes = web.RouteTableDef()


@routes.get("/ui/admin/system")
@ui_view(role="admin")
async def system_page(request: web.Request) -> web.Response:
    health, system = await asyncio.gather(health_report(request.app), system_report(request.app))
    return await render(request, "ui/admin/system.html", {"health": health, "system": system, "duration": duration})
