"""/ui/admin/audit (permission audit.view): the audit log, newest first, filtered by action, user,
resource type and date range (UTC days, both inclusive), paginated.

The filters go through the admin API's AuditQuery schema (so a bad date gets its message) and the
same `audit.list_audit` query as GET /admin/audit.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ouipost.admin.audit import AuditQuery
from ouipost.core import errors
from ouipost.http.context import DB
from ouipost.http.web import run_schema
from ouipost.identity import audit, user_admin
from ouipost.ui.common import field_errors, page_numbers, render, ui_view

routes = web.RouteTableDef()

PAGE_SIZE = 50
USERS_LISTED = 200  # the user filter's choices; the log keeps e-mails of users deleted since
RESOURCE_TYPES = ("api_key", "social_account", "user", "webhook", "workspace")
_FILTERS = ("action", "user_id", "resource_type", "from", "to")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _query(values: dict[str, str]) -> dict[str, Any]:
    """The filter form (dates as YYYY-MM-DD, whole UTC days) in the shape of AuditQuery's query
    string; anything else is passed on as typed so that the schema's message names it."""
    data: dict[str, Any] = {k: v for k, v in values.items() if v and k not in ("from", "to")}
    if values.get("from"):
        day = values["from"]
        data["from"] = f"{day}T00:00:00Z" if _DAY.fullmatch(day) else day
    if values.get("to"):
        day = values["to"]
        data["to"] = f"{day}T23:59:59.999999Z" if _DAY.fullmatch(day) else day
    data["limit"] = str(PAGE_SIZE)
    return data


@routes.get("/ui/admin/audit")
@ui_view("audit.view")
async def audit_log(request: web.Request) -> web.Response:
    values = {name: request.query.get(name, "").strip()[:100] for name in (*_FILTERS, "page")}
    problems: dict[str, list[str]] = {}
    rows: list[dict[str, Any]] = []
    total, page = 0, 1
    async with request.app[DB].connect() as conn:
        people, _ = await user_admin.list_users(conn, page=1, limit=USERS_LISTED)
        try:
            query = run_schema(AuditQuery(), _query(values))
        except errors.ValidationError as exc:
            problems = field_errors(exc)
        else:
            page = query["page"]
            rows, total = await audit.list_audit(
                conn, page=page, limit=PAGE_SIZE, user_id=query.get("user_id"), action=query.get("action"),
                resource_type=query.get("resource_type"), since=query.get("from_"), until=query.get("to"),
            )
    filters = {k: values[k] for k in _FILTERS}
    return await render(request, "ui/admin/audit.html", {
        "entries": [audit.audit_view(r) for r in rows],
        "pages": page_numbers(page, PAGE_SIZE, total),
        "values": filters,
        "errors": problems,
        "filter_query": urlencode({k: v for k, v in filters.items() if v}),
        "action_options": [("", "Any action")] + [(a, a) for a in sorted(audit.ACTIONS)],
        "user_options": [("", "Anyone")] + [(p["id"], p["email"]) for p in people],
        "resource_options": [("", "Any resource")] + [(r, r) for r in RESOURCE_TYPES],
    }, status=422 if problems else 200)
