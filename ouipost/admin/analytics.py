"""GET /admin/analytics?period=7d|30d|90d|1y (analytics.view): the workspace analytics summed over
every workspace, in UTC (by day; by month for a year)."""

from __future__ import annotations

from aiohttp import web
from marshmallow import Schema, fields, validate

from ouipost.admin.common import admin_route
from ouipost.analytics import service as analytics
from ouipost.core.clock import isoformat
from ouipost.http.context import CLOCK, DB
from ouipost.http.web import load_query, ok
from ouipost.openapi import describe, views

routes = web.RouteTableDef()


class AdminAnalyticsQuery(Schema):
    period = fields.String(load_default="30d", validate=validate.OneOf(tuple(analytics.ADMIN_PERIODS)))


@routes.get("/admin/analytics")
@describe("Analytics of every workspace over a period", query=AdminAnalyticsQuery, data=views.WorkspaceAnalytics)
@admin_route("analytics.view")
async def admin_analytics(request: web.Request) -> web.Response:
    query = load_query(request, AdminAnalyticsQuery())
    now = request.app[CLOCK].now()
    granularity = "month" if query["period"] == "1y" else "day"
    period = analytics.resolve_period(now - analytics.ADMIN_PERIODS[query["period"]], now, granularity, "UTC", now)
    async with request.app[DB].connect() as conn:
        data = await analytics.workspace_analytics(conn, None, period)
    return ok({
        "period": {"name": query["period"], "from": isoformat(period.start), "to": isoformat(period.end),
                   "timezone": "UTC", "granularity": granularity},
        **data,
    })
