"""Analytics pages: a workspace's (/ui/w/{ws}/analytics) and one post's (/ui/w/{ws}/posts/{id}/analytics),
with server-drawn SVG charts (ouipost.ui.charts) and a CSV download of what each chart shows
(`analytics.csv?chart=...` with the same filters).

Filters become the query of GET /api/analytics and go through the API's AnalyticsQuery schema and
`analytics.resolve_period`, so errors are the API's; the figures come from the functions the API
calls (`analytics.workspace_analytics`, `analytics.post_analytics`). Everything needs analytics.view.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from marshmallow import ValidationError as SchemaError

from ouipost.analytics import service as analytics
from ouipost.api.analytics import AnalyticsQuery
from ouipost.core import errors
from ouipost.db.rows import PostRow
from ouipost.http.context import CLOCK, DB
from ouipost.platforms.registry import NETWORKS, get_platform
from ouipost.posts import service as posts_service
from ouipost.posts.csv_io import csv_cell
from ouipost.ui.charts import Series, bar_chart, line_chart
from ouipost.ui.common import UI_WORKSPACE, field_errors, render, ui_view

routes = web.RouteTableDef()

VIEW = "analytics.view"
# The admin API's period names (GET /admin/analytics?period=30d); here the last N days, today included.
PRESETS = {"7d": 7, "30d": 30, "90d": 90}
PERIOD_CHOICES = [("7d", "Last 7 days"), ("30d", "Last 30 days"), ("90d", "Last 90 days"), ("custom", "From … to …")]
GRANULARITY_CHOICES = [("day", "Day"), ("week", "Week"), ("month", "Month")]
WORKSPACE_CHARTS = ("timeline", "networks", "top_posts")
POST_CHARTS = ("timeline", "networks")


def _zone(request: web.Request) -> str:
    return (request[UI_WORKSPACE].get("settings") or {}).get("timezone") or "UTC"


def _network_name(network: str) -> str:
    return get_platform(network).name if network in NETWORKS else network


# ------------------------------------------------------------------------------------------------
# Filters -> the API's query


def filter_values(query: Mapping[str, str]) -> dict[str, str]:
    """The filter form's values as shown again (defaults: the last 30 days by day, every network)."""
    period = query.get("period", "") or ("custom" if query.get("from") or query.get("to") else "30d")
    return {
        "period": period if period in PRESETS or period == "custom" else "30d",
        "from": query.get("from", "").strip()[:40],
        "to": query.get("to", "").strip()[:40],
        "granularity": query.get("granularity", "").strip() or "day",
        "platform": query.get("platform", "").strip(),
    }


def api_query(values: Mapping[str, str], zone: str, now: datetime) -> dict[str, str]:
    """The filters as GET /api/analytics parameters: a preset period is its last N days (today
    included, in the workspace's zone); a custom one passes from/to as typed."""
    query: dict[str, str] = {"granularity": values["granularity"]}
    if values["period"] in PRESETS:
        today = now.astimezone(ZoneInfo(zone)).date()
        query["from"] = (today - timedelta(days=PRESETS[values["period"]] - 1)).isoformat()
        query["to"] = today.isoformat()
    else:
        query.update({k: values[k] for k in ("from", "to") if values[k]})
    if values["platform"]:
        query["platform"] = values["platform"]
    return query


async def _workspace_figures(request: web.Request, values: Mapping[str, str]) -> tuple[Any, dict[str, Any]]:
    """(period, figures) as GET /api/analytics computes them; VALIDATION_ERROR in the API's words."""
    zone, now = _zone(request), request.app[CLOCK].now()
    try:
        query = AnalyticsQuery().load(api_query(values, zone, now))
    except SchemaError as exc:
        raise errors.ValidationError("Invalid query", details=exc.normalized_messages()) from exc
    async with request.app[DB].connect() as conn:
        period = analytics.resolve_period(query.get("from_"), query.get("to"), query["granularity"], zone, now)
        data = await analytics.workspace_analytics(conn, request[UI_WORKSPACE]["id"], period, query.get("platform"))
    return period, data


# ------------------------------------------------------------------------------------------------
# Charts of the figures


def timeline_chart(chart_id: str, points: Sequence[Mapping[str, Any]], label_key: str, title: str) -> Any:
    labels = [str(p[label_key]) for p in points]
    return line_chart(chart_id, title, labels, [
        Series("Impressions", [p["impressions"] for p in points]),
        Series("Engagement", [p["engagement"] for p in points]),
    ], x_title="Time", y_title="Count")


def networks_chart(chart_id: str, by_platform: Mapping[str, Mapping[str, Any]]) -> Any:
    networks = sorted(by_platform)
    return bar_chart(chart_id, "Impressions and engagement by network", [_network_name(n) for n in networks], [
        Series("Impressions", [by_platform[n]["impressions"] for n in networks]),
        Series("Engagement", [by_platform[n]["engagement"] for n in networks]),
    ], value_title="Count", label_width=140)


def top_posts_chart(chart_id: str, top: Sequence[Mapping[str, Any]]) -> Any:
    labels = [f"{_short(p['content'])} ({_network_name(p['platform'])})" for p in top]
    return bar_chart(chart_id, "Top posts by impressions", labels, [
        Series("Impressions", [p["impressions"] for p in top]),
        Series("Engagement", [p["engagement"] for p in top]),
    ], value_title="Count", label_width=260)


def _short(text: str, length: int = 28) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


# ------------------------------------------------------------------------------------------------
# Workspace analytics


@routes.get("/ui/w/{ws}/analytics")
@ui_view(VIEW, workspace=True)
async def workspace_page(request: web.Request) -> web.Response:
    values = filter_values(request.query)
    context: dict[str, Any] = {
        "values": values, "errors": {}, "period_choices": PERIOD_CHOICES,
        "granularity_choices": GRANULARITY_CHOICES,
        "platform_choices": [("", "Every network"), *((n, get_platform(n).name) for n in NETWORKS)],
        "zone": _zone(request), "data": None, "network_names": {n: get_platform(n).name for n in NETWORKS},
    }
    try:
        period, data = await _workspace_figures(request, values)
    except errors.ValidationError as exc:
        context["errors"] = field_errors(exc)
        return await render(request, "ui/analytics/workspace.html", context, status=422)
    query = api_query(values, _zone(request), request.app[CLOCK].now())
    # The date fields show the range a preset stands for, a starting point for a custom period.
    values.update({k: query.get(k, values[k]) for k in ("from", "to")})
    context.update({
        "data": data,
        "period": {"from": period.start, "to": period.end, "granularity": period.granularity},
        "charts": {
            "timeline": timeline_chart("chart-timeline", data["timeline"], "date",
                                       "Impressions and engagement over time"),
            "networks": networks_chart("chart-networks", data["by_platform"]),
            "top_posts": top_posts_chart("chart-top-posts", data["top_posts"]),
        },
        "csv_query": query,
    })
    return await render(request, "ui/analytics/workspace.html", context)


@routes.get("/ui/w/{ws}/analytics.csv")
@ui_view(VIEW, workspace=True)
async def workspace_csv(request: web.Request) -> web.Response:
    chart = request.query.get("chart", "")
    if chart not in WORKSPACE_CHARTS:
        raise _unknown_chart(WORKSPACE_CHARTS)
    values = filter_values(request.query)
    period, data = await _workspace_figures(request, values)
    zone = period.zone
    if chart == "timeline":
        header = ["period", "impressions", "engagement", "posts", "reach", "clicks"]
        rows: list[list[Any]] = [[p["date"], p["impressions"], p["engagement"], p["posts"], p["reach"], p["clicks"]]
                                 for p in data["timeline"]]
    elif chart == "networks":
        header = ["network", "impressions", "engagement", "posts", "reach", "clicks", "engagement_rate"]
        rows = [[n, f["impressions"], f["engagement"], f["posts"], f["reach"], f["clicks"], f["engagement_rate"]]
                for n, f in sorted(data["by_platform"].items())]
    else:
        header = ["rank", "post_id", "network", "content", "impressions", "engagement", "reach", "clicks",
                  "engagement_rate", "published_at"]
        rows = [[rank, p["id"], p["platform"], p["content"], p["impressions"], p["engagement"], p["reach"], p["clicks"],
                 p["engagement_rate"], p["published_at"]] for rank, p in enumerate(data["top_posts"], start=1)]
    start, end = period.start.astimezone(zone).date(), period.end.astimezone(zone).date()
    return csv_response(f"analytics-{chart}-{start}-{end}.csv", header, rows)


# ------------------------------------------------------------------------------------------------
# One post's analytics


async def _post_figures(request: web.Request) -> tuple[PostRow, dict[str, Any]]:
    async with request.app[DB].connect() as conn:
        post = await posts_service.get_post(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
        data = await analytics.post_analytics(conn, post["id"])
    return post, data


def _post_timeline_points(data: Mapping[str, Any], zone: str) -> list[dict[str, Any]]:
    """The post's timeline with each snapshot's time in the workspace's zone (chart labels)."""
    tz = ZoneInfo(zone)
    points = []
    for point in data["timeline"]:
        taken = datetime.fromisoformat(point["timestamp"].replace("Z", "+00:00")).astimezone(tz)
        points.append({**point, "label": taken.strftime("%m-%d %H:%M")})
    return points


@routes.get("/ui/w/{ws}/posts/{id}/analytics")
@ui_view(VIEW, workspace=True)
async def post_page(request: web.Request) -> web.Response:
    post, data = await _post_figures(request)
    zone = _zone(request)
    points = _post_timeline_points(data, zone)
    return await render(request, "ui/analytics/post.html", {
        "post": post, "data": data, "zone": zone, "network_names": {n: get_platform(n).name for n in NETWORKS},
        "charts": {
            "timeline": timeline_chart("chart-post-timeline", points, "label",
                                       f"Impressions and engagement of this post over time ({zone})"),
            "networks": networks_chart("chart-post-networks", data["by_platform"]),
        },
    })


@routes.get("/ui/w/{ws}/posts/{id}/analytics.csv")
@ui_view(VIEW, workspace=True)
async def post_csv(request: web.Request) -> web.Response:
    chart = request.query.get("chart", "")
    if chart not in POST_CHARTS:
        raise _unknown_chart(POST_CHARTS)
    post, data = await _post_figures(request)
    if chart == "timeline":
        header = ["timestamp", "impressions", "engagement", "reach", "clicks"]
        rows: list[list[Any]] = [[p["timestamp"], p["impressions"], p["engagement"], p["reach"], p["clicks"]]
                                 for p in data["timeline"]]
    else:
        header = ["network", "impressions", "engagement", "reach", "clicks", "engagement_rate", "last_synced_at"]
        rows = [[n, f["impressions"], f["engagement"], f["reach"], f["clicks"], f["engagement_rate"],
                 f["last_synced_at"]] for n, f in data["by_platform"].items()]
    return csv_response(f"post-{post['id']}-{chart}.csv", header, rows)


# ------------------------------------------------------------------------------------------------
# CSV


def _unknown_chart(charts: Sequence[str]) -> errors.ApiError:
    return errors.ValidationError(f"Unknown chart; use one of {', '.join(charts)}",
                                  details={"chart": [f"Must be one of: {', '.join(charts)}."]})


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> web.Response:
    safe_name = "".join(c if c.isalnum() or c in "-_." else "-" for c in filename)
    return web.Response(
        text=csv_text(header, rows), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{safe_name}"'},
    )
