"""GET/POST /admin/webhooks, PUT/DELETE /admin/webhooks/{id}, GET /admin/webhooks/{id}/deliveries,
POST /admin/webhooks/{id}/test (permission webhooks.manage)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ouipost.admin.common import Choice, UniqueList, admin_route, request_actor
from ouipost.api.common import PageQuery, StrictBoolean, TrimmedString, pagination
from ouipost.core import errors
from ouipost.db.rows import WebhookRow
from ouipost.http.context import CLOCK, DB, SETTINGS
from ouipost.http.web import load_body, load_query, ok
from ouipost.openapi import describe, views
from ouipost.webhooks import service as webhooks

routes = web.RouteTableDef()


def _valid_secret(value: str) -> None:
    try:
        webhooks.check_secret(value)
    except webhooks.InvalidWebhook as exc:
        raise ValidationError(str(exc)) from exc


class WebhookBody(Schema):
    url = TrimmedString(required=True, validate=validate.Length(min=1, max=webhooks.MAX_URL_LENGTH))
    events = UniqueList(Choice(webhooks.EVENTS), required=True, validate=validate.Length(min=1))
    secret = fields.String(load_only=True, validate=_valid_secret)
    description = fields.String(allow_none=True, validate=validate.Length(max=500))


class WebhookUpdateBody(WebhookBody):
    is_active = StrictBoolean()

    @validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Send at least one field to change", "_body")


class DeliveryQuery(PageQuery):
    status = Choice(webhooks.STATUSES)


async def _checked_url(request: web.Request, url: str) -> str:
    return await webhooks.checked_url(url, allow_private=request.app[SETTINGS].webhook_allow_private)


async def _found(conn: Any, webhook_id: str) -> WebhookRow:
    row = await webhooks.get_webhook(conn, webhook_id)
    if row is None:
        raise errors.NotFound("Webhook not found")
    return row


@routes.get("/admin/webhooks")
@describe("List webhooks", query=PageQuery, data={"webhooks": [views.Webhook], "pagination": views.Pagination})
@admin_route("webhooks.manage")
async def list_webhooks(request: web.Request) -> web.Response:
    query = load_query(request, PageQuery())
    async with request.app[DB].connect() as conn:
        rows, total = await webhooks.list_webhooks(conn, page=query["page"], limit=query["limit"])
        stats = await webhooks.stats_by_webhook(conn, [r["id"] for r in rows])
    return ok({
        "webhooks": [webhooks.webhook_view(r, stats[r["id"]]) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/admin/webhooks")
@describe("Create a webhook (a generated secret is shown once)",
          body=WebhookBody, data={"webhook": views.Webhook}, status=201, example=views.WEBHOOK_EXAMPLE)
@admin_route("webhooks.manage")
async def create_webhook(request: web.Request) -> web.Response:
    body = await load_body(request, WebhookBody())
    url = await _checked_url(request, body["url"])
    now = request.app[CLOCK].now()
    actor = request_actor(request)
    async with request.app[DB].begin() as conn:
        row, secret = await webhooks.create_webhook(
            conn, url=url, events=body["events"], secret=body.get("secret"), description=body.get("description"),
            created_by=actor.user_id, secret_key=request.app[SETTINGS].secret_key, now=now,
        )
        await webhooks.audit_webhook_created(conn, actor, row, now)
    stats = {"total_deliveries": 0, "successful_deliveries": 0, "failed_deliveries": 0}
    # A generated secret is shown here, once; a secret the client chose is not echoed back.
    shown = secret if "secret" not in body else None
    return ok({"webhook": webhooks.webhook_view(row, stats, secret=shown)}, status=201)


@routes.put("/admin/webhooks/{id}")
@describe("Update a webhook", body=WebhookUpdateBody(partial=True), data={"webhook": views.Webhook})
@admin_route("webhooks.manage")
async def update_webhook(request: web.Request) -> web.Response:
    body = await load_body(request, WebhookUpdateBody(), partial=True)
    if "url" in body:
        body["url"] = await _checked_url(request, body["url"])
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        webhook = await _found(conn, request.match_info["id"])
        row, changed = await webhooks.update_webhook(
            conn, webhook, body, secret_key=request.app[SETTINGS].secret_key, now=now
        )
        await webhooks.audit_webhook_updated(conn, request_actor(request), row, changed, now)
        stats = await webhooks.stats_by_webhook(conn, [row["id"]])
    return ok({"webhook": webhooks.webhook_view(row, stats[row["id"]])})


@routes.delete("/admin/webhooks/{id}")
@describe("Delete a webhook", data=views.Message)
@admin_route("webhooks.manage")
async def delete_webhook(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        webhook = await _found(conn, request.match_info["id"])
        await webhooks.delete_webhook(conn, webhook["id"])
        await webhooks.audit_webhook_deleted(conn, request_actor(request), webhook, now)
    return ok({"message": "Webhook deleted successfully"})


@routes.get("/admin/webhooks/{id}/deliveries")
@describe("List a webhook's deliveries",
          query=DeliveryQuery, data={"deliveries": [views.Delivery], "pagination": views.Pagination})
@admin_route("webhooks.manage")
async def list_deliveries(request: web.Request) -> web.Response:
    query = load_query(request, DeliveryQuery())
    async with request.app[DB].connect() as conn:
        webhook = await _found(conn, request.match_info["id"])
        rows, total = await webhooks.list_deliveries(
            conn, webhook["id"], page=query["page"], limit=query["limit"], status=query.get("status")
        )
    return ok({
        "deliveries": [webhooks.delivery_view(r) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/admin/webhooks/{id}/test")
@describe("Send a webhook.test event now", data={"delivery": views.Delivery})
@admin_route("webhooks.manage")
async def test_webhook(request: web.Request) -> web.Response:
    """Send a webhook.test event now (one attempt, 15 s timeout, no retries) and answer its outcome."""
    settings = request.app[SETTINGS]
    result = await webhooks.send_test_ping(
        request.app[DB], request.match_info["id"], secret_key=settings.secret_key,
        allow_private=settings.webhook_allow_private, clock=request.app[CLOCK],
    )
    if result is None:  # no such webhook, or it (and its deliveries) was deleted meanwhile
        raise errors.NotFound("Webhook not found")
    return ok({"delivery": webhooks.delivery_view(result)})
