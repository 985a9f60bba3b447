"""Analytics of the workspace (GET /api/analytics) and of one post (GET /api/posts/{id}/analytics,
POST /api/posts/{id}/analytics/refresh). The figures and their rules are in ouipost/analytics/service.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate

from ouipost.analytics import service as analytics
from ouipost.api.auth import api_route
from ouipost.core.clock import isoformat
from ouipost.http.context import CLOCK, DB, WORKER, WORKSPACE_ID
from ouipost.http.web import load_query, ok
from ouipost.identity import workspaces
from ouipost.jobs.queue import notify_enqueued
from ouipost.openapi import describe, views
from ouipost.platforms.registry import NETWORKS
from ouipost.posts import service

routes = web.RouteTableDef()


class IsoDateOrDateTime(fields.Field):
    """An ISO 8601 date (`2025-03-01`, the whole day) or date and time (with an offset or `Z`; without
    one it is read in the workspace's time zone)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date | datetime:
        if not isinstance(value, str) or not 10 <= len(value) <= 40:
            raise ValidationError("Not an ISO 8601 date or date and time, e.g. 2025-03-01 or 2025-03-01T09:00:00Z")
        try:
            return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(
                "Not an ISO 8601 date or date and time, e.g. 2025-03-01 or 2025-03-01T09:00:00Z"
            ) from exc


class AnalyticsQuery(Schema):
    from_ = IsoDateOrDateTime(data_key="from")
    to = IsoDateOrDateTime()
    platform = fields.String(validate=validate.OneOf(NETWORKS))
    granularity = fields.String(load_default="day", validate=validate.OneOf(analytics.GRANULARITIES))


class NoQuery(Schema):
    """No parameters: any query field is refused (422)."""


@routes.get("/api/analytics")
@describe("Analytics of the workspace over a period", query=AnalyticsQuery, data=views.WorkspaceAnalytics)
@api_route("analytics.read")
async def workspace_analytics(request: web.Request) -> web.Response:
    query = load_query(request, AnalyticsQuery())
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].connect() as conn:
        workspace = await workspaces.get_workspace(conn, workspace_id)
        settings = (workspace["settings"] if workspace else None) or {}
        zone = str(settings.get("timezone") or "UTC")
        period = analytics.resolve_period(query.get("from_"), query.get("to"), query["granularity"], zone,
                                          request.app[CLOCK].now())
        data = await analytics.workspace_analytics(conn, workspace_id, period, query.get("platform"))
    return ok({
        "period": {"from": isoformat(period.start), "to": isoformat(period.end), "timezone": zone,
                   "granularity": period.granularity},
        **data,
    })


@routes.get("/api/posts/{id}/analytics")
@describe("Analytics of one post", query=NoQuery, data=views.PostAnalytics)
@api_route("analytics.read")
async def post_analytics(request: web.Request) -> web.Response:
    load_query(request, NoQuery())
    async with request.app[DB].connect() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"])
        data = await analytics.post_analytics(conn, post["id"])
    return ok({"post_id": post["id"], "analytics": data})


@routes.post("/api/posts/{id}/analytics/refresh")
@describe("Sync a post's analytics now", query=NoQuery, data=views.RefreshQueued, status=202, errors=(409,))
@api_route("analytics.read")
async def refresh_post_analytics(request: web.Request) -> web.Response:
    """202: every published target of the post is synced at once, in the background. 409 when nothing
    of the post is published yet."""
    load_query(request, NoQuery())
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, workspace_id, request.match_info["id"])
        targets = await analytics.request_refresh(conn, workspace_id, post["id"], request.app[CLOCK].now())
    notify_enqueued(request.app.get(WORKER))
    return ok({"post_id": post["id"], "status": "queued", "targets": len(targets)}, status=202)
