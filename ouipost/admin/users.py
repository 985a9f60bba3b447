"""GET/POST /admin/users, PUT/DELETE /admin/users/{id} (permission users.manage)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ouipost.admin.common import ADMIN_USER, Choice, UniqueList, admin_route, request_actor
from ouipost.api.common import PageQuery, StrictBoolean, TrimmedString, pagination
from ouipost.core import errors
from ouipost.http.context import CLOCK, DB
from ouipost.http.web import load_body, load_query, ok
from ouipost.identity import user_admin, users
from ouipost.openapi import describe, views

routes = web.RouteTableDef()


def _validate_email(value: str) -> None:
    if not users.is_valid_email(value):
        raise ValidationError("Not a valid e-mail address")


class UserBody(Schema):
    email = TrimmedString(required=True, validate=_validate_email)
    name = TrimmedString(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(
        required=True, load_only=True,
        validate=validate.Length(
            min=users.MIN_PASSWORD_LENGTH, max=1024,
            error=f"Use between {users.MIN_PASSWORD_LENGTH} and 1024 characters",
        ),
    )
    role = Choice(users.ROLES, load_default="viewer")
    permissions = UniqueList(Choice(users.ADMIN_PERMISSIONS))
    workspaces = UniqueList(fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=1000))


class UserUpdateBody(UserBody):
    is_active = StrictBoolean()

    @validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Send at least one field to change", "_body")


class UserQuery(PageQuery):
    role = Choice(users.ROLES)
    is_active = fields.Boolean()


@routes.get("/admin/users")
@describe("List admin users", query=UserQuery, data={"users": [views.User], "pagination": views.Pagination})
@admin_route("users.manage")
async def list_users(request: web.Request) -> web.Response:
    query = load_query(request, UserQuery())
    async with request.app[DB].connect() as conn:
        rows, total = await user_admin.list_users(
            conn, page=query["page"], limit=query["limit"], role=query.get("role"), is_active=query.get("is_active")
        )
        grants = await user_admin.workspaces_by_user(conn, [r["id"] for r in rows])
    return ok({
        "users": [user_admin.user_view(r, grants[r["id"]]) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/admin/users")
@describe("Create an admin user", body=UserBody, data={"user": views.User}, status=201, errors=(409,),
          example=views.USER_EXAMPLE)
@admin_route("users.manage")
async def create_user(request: web.Request) -> web.Response:
    body = await load_body(request, UserBody())
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        row = await user_admin.create_user(conn, body, now)
        grants = await user_admin.workspaces_by_user(conn, [row["id"]])
        await user_admin.audit_user_created(conn, request_actor(request), row, grants[row["id"]], now)
    return ok({"user": user_admin.user_view(row, grants[row["id"]])}, status=201)


@routes.put("/admin/users/{id}")
@describe("Update an admin user", body=UserUpdateBody(partial=True), data={"user": views.User}, errors=(409,))
@admin_route("users.manage")
async def update_user(request: web.Request) -> web.Response:
    body = await load_body(request, UserUpdateBody(), partial=True)
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        user = await user_admin.get_user(conn, request.match_info["id"])
        if user is None:
            raise errors.NotFound("User not found")
        row, changed = await user_admin.update_user(conn, user, body, now)
        grants = await user_admin.workspaces_by_user(conn, [row["id"]])
        await user_admin.audit_user_updated(conn, request_actor(request), user, row, changed, now)
    return ok({"user": user_admin.user_view(row, grants[row["id"]])})


@routes.delete("/admin/users/{id}")
@describe("Delete an admin user", data=views.Message, errors=(409,))
@admin_route("users.manage")
async def delete_user(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        user = await user_admin.get_user(conn, request.match_info["id"])
        if user is None:
            raise errors.NotFound("User not found")
        await user_admin.delete_user(conn, user)
        await user_admin.audit_user_deleted(conn, request_actor(request, request[ADMIN_USER]), user, now)
    return ok({"message": "User deleted successfully"})
