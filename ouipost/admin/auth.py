"""POST /admin/login, POST /admin/logout, GET /admin/profile."""

from __future__ import annotations

import math

from aiohttp import web
from marshmallow import Schema, fields, validate

from ouipost.admin.common import ADMIN_USER, admin_route, request_actor
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.http.context import CLOCK, DB, PASSWORDS, SETTINGS
from ouipost.http.web import load_body, ok
from ouipost.identity import admin_auth
from ouipost.identity.audit import record_audit
from ouipost.identity.user_admin import get_user, user_view, workspaces_by_user
from ouipost.openapi import describe, views

routes = web.RouteTableDef()


class LoginBody(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    # Bounded so that a huge "password" cannot make argon2 work on megabytes.
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


@routes.post("/admin/login")
@describe("Sign in: a bearer token for /admin", body=LoginBody, data=views.Login, errors=(401, 429))
async def login(request: web.Request) -> web.Response:
    body = await load_body(request, LoginBody())
    now = request.app[CLOCK].now()
    email = body["email"].strip().lower()
    outcome = await admin_auth.attempt_sign_in(
        request.app[DB], email, body["password"], passwords=request.app[PASSWORDS], ip_address=request.remote,
        user_agent=request.headers.get("User-Agent"), secret_key=request.app[SETTINGS].secret_key, now=now,
    )
    user = outcome.user
    # attempt_sign_in committed the failure and its audit entry; only now is the answer decided.
    if outcome.token is None:
        if outcome.failure == "locked" and outcome.locked_until is not None:
            retry_after = max(1, math.ceil((outcome.locked_until - now).total_seconds()))
            raise errors.RateLimited(
                "Too many failed logins for this e-mail; try again later",
                details={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)},
            )
        raise errors.Unauthorized(admin_auth.INVALID_CREDENTIALS)
    assert user is not None
    return ok({
        "token": outcome.token.token,
        "expires_at": isoformat(outcome.token.expires_at),
        "user": {"id": user["id"], "email": user["email"], "name": user["name"], "role": user["role"]},
    })


@routes.post("/admin/logout")
@describe("Sign out (the token is revoked)", data=views.Message)
@admin_route(None)
async def logout(request: web.Request) -> web.Response:
    user = request[ADMIN_USER]
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        await admin_auth.revoke_session(conn, user.jti, now)
        await record_audit(
            conn, action="auth.logout", actor=request_actor(request), now=now, resource_type="user",
            resource_id=user.id,
        )
    return ok({"message": "Logged out successfully"})


@routes.get("/admin/profile")
@describe("The signed-in user", data={"user": views.User})
@admin_route(None)
async def profile(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        row = await get_user(conn, request[ADMIN_USER].id)
        if row is None:  # deleted between the token check and here
            raise errors.Unauthorized("Invalid, expired or revoked token")
        grants = await workspaces_by_user(conn, [row["id"]])
    return ok({"user": user_view(row, grants[row["id"]])})
