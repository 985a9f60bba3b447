"""/ui/admin/keys (permission api_keys.manage): API keys with their usage; create with a tier,
permissions and workspaces (the key shown once, on the answer to the form); edit; rotate (the new
key shown once, the old one valid 24 hours more); revoke after a confirmation.

Forms run the admin API's KeyBody/KeyUpdateBody schemas and call the same key_admin functions,
audit entries included, as /admin/keys.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.admin.keys import KeyBody, KeyUpdateBody
from ouipost.api.common import DEFAULT_PAGE_SIZE
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.db.rows import ApiKeyRow
from ouipost.http import usage
from ouipost.http.context import CLOCK, DB, SETTINGS
from ouipost.http.web import run_schema
from ouipost.identity import api_keys, key_admin, workspaces
from ouipost.identity.user_admin import require_workspaces
from ouipost.ui.admin_forms import at_list_fields, checkbox, page_arg, workspace_options
from ouipost.ui.common import (
    field_errors,
    form_dict,
    page_numbers,
    redirect,
    render,
    ui_actor,
    ui_view,
)

routes = web.RouteTableDef()

MANAGE = "api_keys.manage"
_LISTS = ("permissions", "workspaces")


async def _key_or_404(conn: AsyncConnection, key_id: str) -> ApiKeyRow:
    key = await key_admin.get_key(conn, key_id)
    if key is None:
        raise errors.NotFound("API key not found")
    return key


@routes.get("/ui/admin/keys")
@ui_view(MANAGE)
async def list_keys(request: web.Request) -> web.Response:
    page, limit = page_arg(request), DEFAULT_PAGE_SIZE
    today = request.app[CLOCK].now().date()
    await request.app[usage.USAGE].flush()  # this process's latest counts first, as /admin/keys does
    async with request.app[DB].connect() as conn:
        rows, total = await key_admin.list_keys(conn, page=page, limit=limit)
        ids = [r["id"] for r in rows]
        grants = await key_admin.workspaces_by_key(conn, ids)
        counts = await usage.usage_by_key(conn, ids, today)
        names = await workspaces.names_by_id(conn, [w for ws in grants.values() for w in ws])
    keys = [key_admin.key_view(r, grants[r["id"]], counts[r["id"]]) for r in rows]
    return await render(request, "ui/admin/keys/list.html", {
        "keys": keys, "names": names, "pages": page_numbers(page, limit, total),
        "all_permissions": len(api_keys.PERMISSIONS),
    })


async def _form(
    request: web.Request, values: dict[str, Any], errors_: dict[str, list[str]], *,
    key: ApiKeyRow | None = None, status: int = 200,
) -> web.Response:
    async with request.app[DB].connect() as conn:
        options = await workspace_options(conn, request, values.get("workspaces", []))
    return await render(request, "ui/admin/keys/form.html", {
        "key": key, "values": values, "errors": errors_,
        "tiers": [(t, f"{t} ({n} requests/min)") for t, n in request.app[SETTINGS].rate_limits.items()],
        "permission_options": [(p, p) for p in api_keys.PERMISSIONS],
        "workspace_options": options,
    }, status=status)


def _body(values: dict[str, Any], *, editing: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": values.get("name", ""),
        "tier": values.get("tier", ""),
        "permissions": values.get("permissions", []),
        "workspaces": values.get("workspaces", []),
    }
    if editing:
        body["is_active"] = checkbox(values, "is_active")
    return body


@routes.get("/ui/admin/keys/new")
@ui_view(MANAGE)
async def new_key(request: web.Request) -> web.Response:
    values = {"name": "", "tier": next(iter(request.app[SETTINGS].rate_limits), ""),
              "permissions": list(api_keys.PERMISSIONS), "workspaces": []}
    return await _form(request, values, {})


@routes.post("/ui/admin/keys/new")
@ui_view(MANAGE)
async def create_key(request: web.Request) -> web.Response:
    values = form_dict(await request.post(), lists=_LISTS)
    now = request.app[CLOCK].now()
    actor = ui_actor(request)
    try:
        body = run_schema(KeyBody(), _body(values, editing=False))
        key_admin.check_tier(body, request.app[SETTINGS].rate_limits)
        async with request.app[DB].begin() as conn:
            await require_workspaces(conn, body.get("workspaces", []))
            new = await api_keys.create_key(
                conn, name=body["name"], tier=body["tier"], permissions=body.get("permissions"),
                workspace_ids=body.get("workspaces", []), created_by=actor.user_id, now=now,
            )
            grants = await key_admin.workspaces_by_key(conn, [new.record["id"]])
            view = key_admin.key_view(new.record, grants[new.record["id"]],
                                         {"requests_today": 0, "requests_this_month": 0})
            await key_admin.audit_key_created(conn, actor, view, now)
    except errors.ValidationError as exc:
        return await _form(request, values, at_list_fields(field_errors(exc), _LISTS), status=422)
    # The secret is in this answer only (no-store): never in a redirect or a flash that could replay it.
    return await render(request, "ui/admin/keys/secret.html", {
        "key": view, "secret": new.secret, "rotated": False, "old_key_expires_at": None,
    }, status=201)


@routes.get("/ui/admin/keys/{id}/edit")
@ui_view(MANAGE)
async def edit_key(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        key = await _key_or_404(conn, request.match_info["id"])
        grants = await key_admin.workspaces_by_key(conn, [key["id"]])
    values = {"name": key["name"], "tier": key["tier"], "permissions": list(key["permissions"]),
              "workspaces": grants[key["id"]], "is_active": "on" if key["is_active"] else ""}
    return await _form(request, values, {}, key=key)


@routes.post("/ui/admin/keys/{id}/edit")
@ui_view(MANAGE)
async def update_key(request: web.Request) -> web.Response:
    values = form_dict(await request.post(), lists=_LISTS)
    now = request.app[CLOCK].now()
    async with request.app[DB].connect() as conn:
        key = await _key_or_404(conn, request.match_info["id"])
    try:
        body = run_schema(KeyUpdateBody(), _body(values, editing=True), partial=True)
        key_admin.check_tier(body, request.app[SETTINGS].rate_limits)
        async with request.app[DB].begin() as conn:
            key = await _key_or_404(conn, key["id"])
            await require_workspaces(conn, body["workspaces"])
            row, changed = await key_admin.update_key(conn, key, body, now)
            await key_admin.audit_key_updated(conn, ui_actor(request), row, changed, now)
    except errors.ValidationError as exc:
        return await _form(request, values, at_list_fields(field_errors(exc), _LISTS), key=key, status=422)
    message = f"Key “{row['name']}” saved." if changed else "Nothing changed."
    return await redirect(request, "/ui/admin/keys", message, "success" if changed else "info")


@routes.get("/ui/admin/keys/{id}/rotate")
@ui_view(MANAGE)
async def confirm_rotate_key(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        key = await _key_or_404(conn, request.match_info["id"])
    until = request.app[CLOCK].now() + key_admin.ROTATION_GRACE
    return await render(request, "ui/admin/keys/confirm.html", {"key": key, "action": "rotate", "until": until})


@routes.post("/ui/admin/keys/{id}/rotate")
@ui_view(MANAGE)
async def rotate_key(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        key = await _key_or_404(conn, request.match_info["id"])
        secret, old_expires_at = await key_admin.rotate_key(conn, key["id"], now)
        await key_admin.audit_key_rotated(conn, ui_actor(request), key, old_expires_at, now)
    view = {"id": key["id"], "name": key["name"], "prefix": secret[: api_keys.VISIBLE_PREFIX_LENGTH]}
    return await render(request, "ui/admin/keys/secret.html", {
        "key": view, "secret": secret, "rotated": True, "old_key_expires_at": isoformat(old_expires_at),
    })


@routes.get("/ui/admin/keys/{id}/revoke")
@ui_view(MANAGE)
async def confirm_revoke_key(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        key = await _key_or_404(conn, request.match_info["id"])
    return await render(request, "ui/admin/keys/confirm.html", {"key": key, "action": "revoke", "until": None})


@routes.post("/ui/admin/keys/{id}/revoke")
@ui_view(MANAGE)
async def revoke_key(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        key = await _key_or_404(conn, request.match_info["id"])
        if not await key_admin.delete_key(conn, key["id"]):
            raise errors.NotFound("API key not found")
        await key_admin.audit_key_deleted(conn, ui_actor(request), key, now)
    return await redirect(request, "/ui/admin/keys", f"Key “{key['name']}” revoked: it no longer works.")
