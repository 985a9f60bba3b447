"""What every admin handler shares: the bearer-token guard with its permission check, the acting
user as an audit Actor, and schema helpers.

Order of checks, as clients rely on it: no/invalid/expired/revoked token 401, missing permission
403, then body/query validation 422, then the resource (404/409).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from marshmallow import ValidationError, fields

from ouipost.core import errors
from ouipost.http.context import CLOCK, DB, SETTINGS
from ouipost.http.web import DATABASE_RETRY_AFTER, Handler
from ouipost.identity import admin_auth
from ouipost.identity.admin_auth import AdminUser
from ouipost.identity.audit import Actor
from ouipost.identity.users import ADMIN_PERMISSIONS

ADMIN_USER = web.RequestKey("admin_user", AdminUser)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ouipost-admin"'}


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 4096:
        return None
    return token


async def authenticate(request: web.Request) -> AdminUser:
    """The admin user of this request. 401 without a valid token; 503 when the database (which holds
    the revocations) cannot be asked."""
    token = bearer_token(request)
    if token is None:
        raise errors.Unauthorized("Missing Authorization: Bearer <token> header", headers=dict(_CHALLENGE))
    config = request.config_dict  # the app's keys, also from a sub-app (the sandbox's controls)
    try:
        async with config[DB].connect() as conn:
            user = await admin_auth.authenticate_token(
                conn, token, secret_key=config[SETTINGS].secret_key, now=config[CLOCK].now()
            )
    except (sa.exc.DBAPIError, OSError) as exc:
        raise errors.ServiceUnavailable(
            "The database is unavailable", headers={"Retry-After": str(DATABASE_RETRY_AFTER)}
        ) from exc
    if user is None:
        raise errors.Unauthorized("Invalid, expired or revoked token", headers=dict(_CHALLENGE))
    return user


def admin_route(permission: str | None, *, role: str | None = None) -> Callable[[Handler], Handler]:
    """Guard a handler: a valid admin token, plus `permission` (None: any signed-in user) and/or
    `role`. The user is at `request[ADMIN_USER]`."""
    if permission is not None and permission not in ADMIN_PERMISSIONS:
        raise ValueError(f"unknown admin permission {permission!r}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = await authenticate(request)
            if permission is not None and not user.can(permission):
                raise errors.Forbidden(
                    f"Your account lacks the {permission} permission", details={"required": permission}
                )
            if role is not None and user.role != role:
                raise errors.Forbidden(f"Only the {role} role may do this", details={"required_role": role})
            request[ADMIN_USER] = user
            return await handler(request)

        guarded.required_permission = permission  # type: ignore[attr-defined]  # a mark read with getattr
        guarded.required_role = role  # type: ignore[attr-defined]  # a mark read with getattr
        return guarded

    return decorate


def request_actor(request: web.Request, user: AdminUser | None = None) -> Actor:
    """The audit actor: the signed-in user (or `user`), with the client's address and user agent."""
    who = user or request.get(ADMIN_USER)
    return Actor(
        user_id=who.id if who else None,
        user_email=who.email if who else None,
        ip_address=request.remote,
        user_agent=request.headers.get("User-Agent"),
    )


class Choice(fields.String):
    """A string from a fixed set, with an error that lists the choices."""

    def __init__(self, choices: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = tuple(choices)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text not in self.choices:
            raise ValidationError(f"Unknown value {text!r}; choose from {', '.join(self.choices)}")
        return text


class UniqueList(fields.List):
    """A list whose duplicates are dropped (order kept)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        return list(dict.fromkeys(super()._deserialize(value, attr, data, **kwargs)))


