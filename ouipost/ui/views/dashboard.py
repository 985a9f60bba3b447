"""/ui: the dashboard. Per-workspace figures (counts, success rate, failures, accounts to reconnect)
cover only the workspaces the user may see; the queue, workers and platform health are global.
Each problem links to the page where it is fixed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp import web

from ouipost.admin import monitoring, overview
from ouipost.http.context import CLOCK, DB
from ouipost.jobs.queue import last_worker_heartbeat
from ouipost.publishing import platform_calls
from ouipost.ui.common import UI_USER, member_scope, render, ui_view

routes = web.RouteTableDef()

SUCCESS_WINDOW = timedelta(days=7)
SCHEDULED_WINDOW = timedelta(hours=24)
FAILURES_SHOWN = 10


@routes.get("/ui")
@ui_view()
async def dashboard(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    scope = member_scope(request[UI_USER])
    engine = request.app[DB]

    # Three connections side by side (and the queue check on its own): the page waits for the
    # slowest group rather than for the sum of a dozen queries.
    async def counts() -> dict[str, Any]:
        async with engine.connect() as conn:
            return {
                "workspaces_count": await overview.count_workspaces(conn, scope),
                "accounts": await overview.accounts_by_status(conn, scope),
                "posts": await overview.posts_by_status(conn, scope),
                "scheduled_next_24h": await overview.count_scheduled_between(conn, scope, now, now + SCHEDULED_WINDOW),
            }

    async def outcomes() -> dict[str, Any]:
        async with engine.connect() as conn:
            return {
                "outcomes": await overview.publishing_outcomes(conn, scope, now - SUCCESS_WINDOW),
                "failures": await overview.recent_failures(conn, scope, limit=FAILURES_SHOWN),
            }

    async def health() -> dict[str, Any]:
        async with engine.connect() as conn:
            return {
                "attention": await overview.accounts_needing_attention(conn, scope, limit=FAILURES_SHOWN),
                "last_heartbeat": await last_worker_heartbeat(conn),
                "platforms": await platform_calls.platform_health(conn, now),
            }

    first, second, third, queue = await asyncio.gather(
        counts(), outcomes(), health(), monitoring.check_queue(engine, now),
    )
    figures = {**first, **second, **third}
    return await render(request, "ui/dashboard.html", {
        **figures,
        "queue": queue,
        "accounts_total": sum(figures["accounts"].values()),
        "posts_total": sum(figures["posts"].values()),
        "duration": duration,
    })


def duration(seconds: float) -> str:
    """A lateness for people: "45 s", "12 min", "3 h 20 min", "2 d 4 h"."""
    total = int(seconds)
    if total < 60:
        return f"{total} s"
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"
