"""/ui/admin/webhooks (permission webhooks.manage): endpoints with their delivery counts; create
with a URL and events (the signing secret shown once, on the answer to the form); edit; delete after
a confirmation; send a test ping; and each endpoint's deliveries log (status, answer, latency,
attempts, next attempt).

Forms run the admin API's WebhookBody/WebhookUpdateBody schemas and call the same ouipost.webhooks.service
functions (URL check, test ping, audit entries) as /admin/webhooks.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.admin.webhooks import WebhookBody, WebhookUpdateBody
from ouipost.api.common import DEFAULT_PAGE_SIZE
from ouipost.core import errors
from ouipost.db.rows import WebhookRow
from ouipost.http.context import CLOCK, DB, SETTINGS
from ouipost.http.web import run_schema
from ouipost.ui.admin_forms import at_list_fields, checkbox, page_arg
from ouipost.ui.common import field_errors, form_dict, page_numbers, redirect, render, ui_actor, ui_view
from ouipost.webhooks import service as webhooks

routes = web.RouteTableDef()

MANAGE = "webhooks.manage"
_LISTS = ("events",)
_NO_STATS = {"total_deliveries": 0, "successful_deliveries": 0, "failed_deliveries": 0}


async def _webhook_or_404(conn: AsyncConnection, webhook_id: str) -> WebhookRow:
    row = await webhooks.get_webhook(conn, webhook_id)
    if row is None:
        raise errors.NotFound("Webhook not found")
    return row


@routes.get("/ui/admin/webhooks")
@ui_view(MANAGE)
async def list_webhooks(request: web.Request) -> web.Response:
    page, limit = page_arg(request), DEFAULT_PAGE_SIZE
    async with request.app[DB].connect() as conn:
        rows, total = await webhooks.list_webhooks(conn, page=page, limit=limit)
        stats = await webhooks.stats_by_webhook(conn, [r["id"] for r in rows])
    return await render(request, "ui/admin/webhooks/list.html", {
        "webhooks": [webhooks.webhook_view(r, stats[r["id"]]) for r in rows],
        "pages": page_numbers(page, limit, total),
    })


async def _form(
    request: web.Request, values: dict[str, Any], errors_: dict[str, list[str]], *,
    webhook: WebhookRow | None = None, status: int = 200,
) -> web.Response:
    return await render(request, "ui/admin/webhooks/form.html", {
        "webhook": webhook, "values": values, "errors": errors_,
        "event_options": [(e, e) for e in webhooks.EVENTS],
    }, status=status)


def _body(values: dict[str, Any], *, editing: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": values.get("url", ""),
        "events": values.get("events", []),
        "description": values.get("description") or None,
    }
    if editing:
        body["is_active"] = checkbox(values, "is_active")
    return body


@routes.get("/ui/admin/webhooks/new")
@ui_view(MANAGE)
async def new_webhook(request: web.Request) -> web.Response:
    return await _form(request, {"url": "", "description": "", "events": []}, {})


@routes.post("/ui/admin/webhooks/new")
@ui_view(MANAGE)
async def create_webhook(request: web.Request) -> web.Response:
    values = form_dict(await request.post(), lists=_LISTS)
    settings = request.app[SETTINGS]
    now = request.app[CLOCK].now()
    actor = ui_actor(request)
    try:
        body = run_schema(WebhookBody(), _body(values, editing=False))
        url = await webhooks.checked_url(body["url"], allow_private=settings.webhook_allow_private)
    except errors.ValidationError as exc:
        return await _form(request, values, at_list_fields(field_errors(exc), _LISTS), status=422)
    async with request.app[DB].begin() as conn:
        row, secret = await webhooks.create_webhook(
            conn, url=url, events=body["events"], secret=None, description=body.get("description"),
            created_by=actor.user_id, secret_key=settings.secret_key, now=now,
        )
        await webhooks.audit_webhook_created(conn, actor, row, now)
    # The secret is in this answer only (no-store): never in a redirect or a flash that could replay it.
    return await render(request, "ui/admin/webhooks/secret.html", {
        "webhook": webhooks.webhook_view(row, _NO_STATS), "secret": secret,
    }, status=201)


@routes.get("/ui/admin/webhooks/{id}/edit")
@ui_view(MANAGE)
async def edit_webhook(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        row = await _webhook_or_404(conn, request.match_info["id"])
    values = {"url": row["url"], "description": row["description"] or "", "events": list(row["events"]),
              "is_active": "on" if row["is_active"] else ""}
    return await _form(request, values, {}, webhook=row)


@routes.post("/ui/admin/webhooks/{id}/edit")
@ui_view(MANAGE)
async def update_webhook(request: web.Request) -> web.Response:
    values = form_dict(await request.post(), lists=_LISTS)
    settings = request.app[SETTINGS]
    now = request.app[CLOCK].now()
    async with request.app[DB].connect() as conn:
        current = await _webhook_or_404(conn, request.match_info["id"])
    try:
        body = run_schema(WebhookUpdateBody(), _body(values, editing=True), partial=True)
        body["url"] = await webhooks.checked_url(body["url"], allow_private=settings.webhook_allow_private)
    except errors.ValidationError as exc:
        return await _form(request, values, at_list_fields(field_errors(exc), _LISTS), webhook=current,
                           status=422)
    async with request.app[DB].begin() as conn:
        current = await _webhook_or_404(conn, current["id"])
        row, changed = await webhooks.update_webhook(conn, current, body, secret_key=settings.secret_key, now=now)
        await webhooks.audit_webhook_updated(conn, ui_actor(request), row, changed, now)
    message = "Webhook saved." if changed else "Nothing changed."
    return await redirect(request, "/ui/admin/webhooks", message, "success" if changed else "info")


@routes.get("/ui/admin/webhooks/{id}/delete")
@ui_view(MANAGE)
async def confirm_delete_webhook(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        row = await _webhook_or_404(conn, request.match_info["id"])
        stats = await webhooks.stats_by_webhook(conn, [row["id"]])
    return await render(request, "ui/admin/webhooks/delete.html", {"webhook": webhooks.webhook_view(
        row, stats[row["id"]])})


@routes.post("/ui/admin/webhooks/{id}/delete")
@ui_view(MANAGE)
async def delete_webhook(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        row = await _webhook_or_404(conn, request.match_info["id"])
        await webhooks.delete_webhook(conn, row["id"])
        await webhooks.audit_webhook_deleted(conn, ui_actor(request), row, now)
    return await redirect(request, "/ui/admin/webhooks", "Webhook deleted with its deliveries.")


@routes.post("/ui/admin/webhooks/{id}/test")
@ui_view(MANAGE)
async def send_test_ping(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    delivery = await webhooks.send_test_ping(
        request.app[DB], request.match_info["id"], secret_key=settings.secret_key,
        allow_private=settings.webhook_allow_private, clock=request.app[CLOCK],
    )
    if delivery is None:
        raise errors.NotFound("Webhook not found")
    target = f"/ui/admin/webhooks/{delivery['webhook_id']}/deliveries"
    if delivery["status"] == "succeeded":
        return await redirect(request, target, f"Test ping delivered: answered {delivery['response_status']} "
                                               f"in {delivery['latency_ms']} ms.")
    return await redirect(request, target, f"Test ping failed: {delivery['error'] or 'no answer'}.", "error")


@routes.get("/ui/admin/webhooks/{id}/deliveries")
@ui_view(MANAGE)
async def list_deliveries(request: web.Request) -> web.Response:
    page, limit = page_arg(request), DEFAULT_PAGE_SIZE
    status = request.query.get("status", "")
    if status not in webhooks.STATUSES:
        status = ""
    async with request.app[DB].connect() as conn:
        row = await _webhook_or_404(conn, request.match_info["id"])
        rows, total = await webhooks.list_deliveries(conn, row["id"], page=page, limit=limit, status=status or None)
    return await render(request, "ui/admin/webhooks/deliveries.html", {
        "webhook": row, "deliveries": [webhooks.delivery_view(d) for d in rows],
        "pages": page_numbers(page, limit, total), "status": status,
        "status_options": [("", "Any status")] + [(s, s) for s in webhooks.STATUSES],
    })
