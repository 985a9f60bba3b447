"""GET /admin/audit (permission audit.view): filters user_id, action, resource_type, from, to."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from marshmallow import ValidationError, fields, validate, validates_schema

from ouipost.admin.common import admin_route
from ouipost.api.common import PageQuery, pagination
from ouipost.http.context import DB
from ouipost.http.web import load_query, ok
from ouipost.identity import audit
from ouipost.openapi import describe, views

routes = web.RouteTableDef()


class AuditQuery(PageQuery):
    user_id = fields.String(validate=validate.Length(min=1, max=64))
    action = fields.String(validate=validate.OneOf(sorted(audit.ACTIONS)))
    resource_type = fields.String(validate=validate.Length(min=1, max=32))
    # Both bounds inclusive, ISO 8601 with an offset or Z.
    from_ = fields.AwareDateTime(data_key="from")
    to = fields.AwareDateTime()

    @validates_schema
    def ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "from_" in data and "to" in data and data["from_"] > data["to"]:
            raise ValidationError("`from` must not be after `to`", "from")


@routes.get("/admin/audit")
@describe("List the audit log", query=AuditQuery, data={"logs": [views.AuditLog], "pagination": views.Pagination})
@admin_route("audit.view")
async def list_audit(request: web.Request) -> web.Response:
    query = load_query(request, AuditQuery())
    async with request.app[DB].connect() as conn:
        rows, total = await audit.list_audit(
            conn, page=query["page"], limit=query["limit"], user_id=query.get("user_id"),
            action=query.get("action"), resource_type=query.get("resource_type"),
            since=query.get("from_"), until=query.get("to"),
        )
    return ok({
        "logs": [audit.audit_view(r) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })
