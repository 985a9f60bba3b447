"""GET/POST /admin/keys, PUT/DELETE /admin/keys/{id}, POST /admin/keys/{id}/rotate
(permission api_keys.manage). A key's secret is shown once: at creation and at rotation."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ouipost.admin.common import Choice, UniqueList, admin_route, request_actor
from ouipost.api.common import PageQuery, StrictBoolean, TrimmedString, pagination
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.db.rows import ApiKeyRow
from ouipost.http import usage
from ouipost.http.context import CLOCK, DB, SETTINGS
from ouipost.http.web import load_body, load_query, ok
from ouipost.identity import api_keys, key_admin
from ouipost.identity.user_admin import require_workspaces
from ouipost.openapi import describe, views

routes = web.RouteTableDef()


class KeyBody(Schema):
    name = TrimmedString(required=True, validate=validate.Length(min=1, max=100))
    tier = TrimmedString(load_default="starter", validate=validate.Length(min=1, max=32))
    permissions = UniqueList(Choice(api_keys.PERMISSIONS))
    workspaces = UniqueList(fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=1000))


class KeyUpdateBody(KeyBody):
    is_active = StrictBoolean()

    @validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Send at least one field to change", "_body")


class KeyQuery(PageQuery):
    is_active = fields.Boolean()


def _check_tier(request: web.Request, body: dict[str, Any]) -> None:
    key_admin.check_tier(body, request.app[SETTINGS].rate_limits)


async def _view(conn: Any, row: ApiKeyRow, now: Any) -> dict[str, Any]:
    grants = await key_admin.workspaces_by_key(conn, [row["id"]])
    counts = await usage.usage_by_key(conn, [row["id"]], now.date())
    return key_admin.key_view(row, grants[row["id"]], counts[row["id"]])


@routes.get("/admin/keys")
@describe("List API keys", query=KeyQuery, data={"keys": [views.Key], "pagination": views.Pagination})
@admin_route("api_keys.manage")
async def list_keys(request: web.Request) -> web.Response:
    query = load_query(request, KeyQuery())
    today = request.app[CLOCK].now().date()
    await request.app[usage.USAGE].flush()  # this process's latest counts first; others' follow within 2 s
    async with request.app[DB].connect() as conn:
        rows, total = await key_admin.list_keys(
            conn, page=query["page"], limit=query["limit"], is_active=query.get("is_active")
        )
        ids = [r["id"] for r in rows]
        grants = await key_admin.workspaces_by_key(conn, ids)
        counts = await usage.usage_by_key(conn, ids, today)
    return ok({
        "keys": [key_admin.key_view(r, grants[r["id"]], counts[r["id"]]) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/admin/keys")
@describe("Create an API key (its secret is shown once)", body=KeyBody, data={"key": views.NewKey}, status=201)
@admin_route("api_keys.manage")
async def create_key(request: web.Request) -> web.Response:
    body = await load_body(request, KeyBody())
    _check_tier(request, body)
    now = request.app[CLOCK].now()
    actor = request_actor(request)
    async with request.app[DB].begin() as conn:
        await require_workspaces(conn, body.get("workspaces", []))
        new = await api_keys.create_key(
            conn, name=body["name"], tier=body["tier"], permissions=body.get("permissions"),
            workspace_ids=body.get("workspaces", []), created_by=actor.user_id, now=now,
        )
        view = await _view(conn, new.record, now)
        await key_admin.audit_key_created(conn, actor, view, now)
    return ok({"key": {**view, "api_key": new.secret}}, status=201)


@routes.put("/admin/keys/{id}")
@describe("Update an API key", body=KeyUpdateBody(partial=True), data={"key": views.Key})
@admin_route("api_keys.manage")
async def update_key(request: web.Request) -> web.Response:
    body = await load_body(request, KeyUpdateBody(), partial=True)
    _check_tier(request, body)
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        key = await key_admin.get_key(conn, request.match_info["id"])
        if key is None:
            raise errors.NotFound("API key not found")
        if "workspaces" in body:
            await require_workspaces(conn, body["workspaces"])
        row, changed = await key_admin.update_key(conn, key, body, now)
        await key_admin.audit_key_updated(conn, request_actor(request), row, changed, now)
        view = await _view(conn, row, now)
    return ok({"key": view})


@routes.delete("/admin/keys/{id}")
@describe("Revoke an API key at once", data=views.Message)
@admin_route("api_keys.manage")
async def delete_key(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        key = await key_admin.get_key(conn, request.match_info["id"])
        if key is None or not await key_admin.delete_key(conn, key["id"]):
            raise errors.NotFound("API key not found")
        await key_admin.audit_key_deleted(conn, request_actor(request), key, now)
    return ok({"message": "API key deleted successfully"})


@routes.post("/admin/keys/{id}/rotate")
@describe("Rotate an API key (the old one stays valid 24 h)", data={"key": views.RotatedKey})
@admin_route("api_keys.manage")
async def rotate_key(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        key = await key_admin.get_key(conn, request.match_info["id"])
        if key is None:
            raise errors.NotFound("API key not found")
        secret, old_expires_at = await key_admin.rotate_key(conn, key["id"], now)
        await key_admin.audit_key_rotated(conn, request_actor(request), key, old_expires_at, now)
    return ok({
        "key": {
            "id": key["id"],
            "prefix": secret[: api_keys.VISIBLE_PREFIX_LENGTH],
            "new_api_key": secret,
            "old_key_expires_at": isoformat(old_expires_at),
        }
    })
