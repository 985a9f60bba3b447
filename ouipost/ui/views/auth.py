"""Sign in and sign out (/ui/login, /ui/logout), with the admin API's users, lockout and audit."""

from __future__ import annotations

import math

from aiohttp import web

from ouipost.http.context import CLOCK
from ouipost.identity import admin_auth
from ouipost.ui.common import form_dict, redirect, render, safe_next
from ouipost.ui.session import current_user, sign_in, sign_out

routes = web.RouteTableDef()

MAX_EMAIL = 254
MAX_PASSWORD = 1024  # as the API's LoginBody: argon2 never works on megabytes


@routes.get("/ui/login")
async def login_page(request: web.Request) -> web.Response:
    target = safe_next(request.query.get("next"))
    if await current_user(request) is not None:
        raise web.HTTPSeeOther(target)
    return await render(request, "ui/login.html", {"values": {"email": ""}, "errors": {}, "next": target})


@routes.post("/ui/login")
async def login(request: web.Request) -> web.Response:
    values = form_dict(await request.post())
    email = str(values.get("email", "")).strip()
    password = str(values.get("password", ""))
    target = safe_next(values.get("next"))
    field_errors: dict[str, list[str]] = {}
    if not email:
        field_errors["email"] = ["Enter your e-mail address."]
    elif len(email) > MAX_EMAIL:
        field_errors["email"] = [f"Longer than maximum length {MAX_EMAIL}."]
    if not password:
        field_errors["password"] = ["Enter your password."]
    elif len(password) > MAX_PASSWORD:
        field_errors["password"] = [f"Longer than maximum length {MAX_PASSWORD}."]
    status = 422
    if not field_errors:
        outcome = await sign_in(request, email, password)
        if outcome.token is not None:
            raise web.HTTPSeeOther(target)
        if outcome.failure == "locked" and outcome.locked_until is not None:
            minutes = max(1, math.ceil((outcome.locked_until - request.app[CLOCK].now()).total_seconds() / 60))
            field_errors["_form"] = [
                f"Too many failed sign-ins for this e-mail; try again in {minutes} minute{'s' if minutes > 1 else ''}."
            ]
            status = 429
        else:
            field_errors["_form"] = [admin_auth.INVALID_CREDENTIALS]
            status = 401
    return await render(
        request, "ui/login.html", {"values": {"email": email}, "errors": field_errors, "next": target}, status=status,
    )


@routes.post("/ui/logout")
async def logout(request: web.Request) -> web.Response:
    await sign_out(request)
    return await redirect(request, "/ui/login", "You are signed out.", "info")
