"""The admin API (/admin): JWT-authenticated management of users, API keys, webhooks, the audit log,
and the dashboard/health/system views. `routes` gathers every module's routes for the app."""

from __future__ import annotations

from aiohttp import web

from ouipost.admin import analytics, audit, auth, keys, system, users, webhooks

routes: list[web.AbstractRouteDef] = [
    *auth.routes,
    *users.routes,
    *keys.routes,
    *webhooks.routes,
    *audit.routes,
    *system.routes,
    *analytics.routes,
]
