"""What every admin UI view shares: the sign-in guard with its permission and workspace checks,
rendering with the layout's context, forms (values kept, errors per field in the API's own words),
redirects with a message, and the multipart CSRF check.

A view is a small coroutine:

    @routes.get("/ui/workspaces/{ws}/posts")
    @ui_view(workspace=True)
    async def posts_page(request):
        ...call the domain functions the API handlers call...
        return await render(request, "ui/posts/list.html", {...})

Order of checks: not signed in -> redirect to the sign-in page (GET) or 401 (other methods);
missing permission or role -> 403 page; a workspace the user may not see (or that does not exist)
-> 404 page, never saying which.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import BodyPartReader, MultipartReader, web
from multidict import MultiDictProxy
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core import errors
from ouipost.db.pages import fetch_page
from ouipost.db.rows import WorkspaceRow, record, records
from ouipost.db.tables import workspace_members, workspaces
from ouipost.http.context import DB
from ouipost.http.web import Handler
from ouipost.identity.admin_auth import AdminUser
from ouipost.identity.audit import Actor
from ouipost.identity.users import ADMIN_PERMISSIONS
from ouipost.ui.session import csrf_ok, csrf_token, current_user, flash, take_flashes

UI_USER = web.RequestKey("ui_user", AdminUser)
# The signed-in user's current workspace row, and the rows the switcher lists.
UI_WORKSPACE: web.RequestKey[WorkspaceRow] = web.RequestKey("ui_workspace", WorkspaceRow)
UI_WORKSPACES: web.RequestKey[list[WorkspaceRow]] = web.RequestKey("ui_workspaces", list)
STATIC_ROUTE = "ui_static"
# How many workspaces the switcher lists; more are reached from the workspaces page.
SWITCHER_LIMIT = 200


def ui_view(
    permission: str | None = None, *, role: str | None = None, workspace: bool = False,
) -> Callable[[Handler], Handler]:
    """Guard a view: a signed-in user, plus `permission` (None: any signed-in user) and/or `role`;
    with `workspace`, the route's `{ws}` must be a workspace the user may see.

    Sets request[UI_USER], request[UI_WORKSPACES] (the switcher's list) and, with `workspace`,
    request[UI_WORKSPACE] (the workspace row).
    """
    if permission is not None and permission not in ADMIN_PERMISSIONS:
        raise ValueError(f"unknown admin permission {permission!r}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = await current_user(request)
            if user is None:
                if request.method in ("GET", "HEAD"):
                    raise web.HTTPSeeOther(f"/ui/login?next={quote(request.path_qs, safe='')}")
                raise errors.Unauthorized("Your session has ended; sign in again")
            request[UI_USER] = user  # set first: a refusal page still shows who is signed in
            if permission is not None and not user.can(permission):
                raise errors.Forbidden(f"Your account lacks the {permission} permission")
            if role is not None and user.role != role:
                raise errors.Forbidden(f"Only the {role} role may do this")
            async with request.app[DB].connect() as conn:
                request[UI_WORKSPACES] = await visible_workspaces(conn, user, limit=SWITCHER_LIMIT)
                if workspace:
                    row = await visible_workspace(conn, user, request.match_info["ws"])
                    if row is None:
                        raise errors.NotFound("Workspace not found")
                    request[UI_WORKSPACE] = row
            return await handler(request)

        guarded.required_permission = permission  # type: ignore[attr-defined]  # a mark read with getattr
        guarded.required_role = role  # type: ignore[attr-defined]  # a mark read with getattr
        return guarded

    return decorate


def can_mutate(user: AdminUser, permission: str) -> bool:
    """Whether to show a mutating control: the same rule the POST handler enforces."""
    return user.can(permission)


# ------------------------------------------------------------------------------------------------
# Workspaces a user may see: every one for the admin role, the ones they are a member of otherwise


def _visible_filter(user: AdminUser) -> Any:
    if user.role == "admin":
        return sa.true()
    return workspaces.c.id.in_(
        sa.select(workspace_members.c.workspace_id).where(workspace_members.c.user_id == user.id)
    )


async def visible_workspaces(conn: AsyncConnection, user: AdminUser, *, limit: int) -> list[WorkspaceRow]:
    """The first `limit` workspaces `user` may see, by name (the switcher's)."""
    stmt = sa.select(workspaces).where(_visible_filter(user)).order_by(workspaces.c.name, workspaces.c.id)
    return records(WorkspaceRow, await conn.execute(stmt.limit(limit)))


async def visible_workspaces_page(
    conn: AsyncConnection, user: AdminUser, *, page: int, limit: int,
) -> tuple[list[WorkspaceRow], int]:
    """A page of the workspaces `user` may see, by name, and how many they are."""
    rows, total = await fetch_page(conn, workspaces, where=[_visible_filter(user)],
                                   order_by=[workspaces.c.name, workspaces.c.id], page=page, limit=limit)
    return records(WorkspaceRow, rows), total


async def visible_workspace(conn: AsyncConnection, user: AdminUser, workspace_id: str) -> WorkspaceRow | None:
    row = (
        await conn.execute(sa.select(workspaces).where(workspaces.c.id == workspace_id, _visible_filter(user)))
    ).mappings().first()
    return record(WorkspaceRow, row) if row else None


# ------------------------------------------------------------------------------------------------
# Rendering and redirects


async def render(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200,
) -> web.Response:
    """Render `template` inside the layout, with the layout's own context (user, workspace,
    switcher, CSRF token, messages, `asset(name)` for static URLs) beside the view's."""
    router = request.app.router

    def asset(filename: str) -> str:
        return str(router[STATIC_ROUTE].url_for(filename=filename))

    layout = {
        "request": request,
        "user": request.get(UI_USER),
        "workspace": request.get(UI_WORKSPACE),
        "workspaces": request.get(UI_WORKSPACES, []),
        "csrf_token": await csrf_token(request),
        "flashes": await take_flashes(request),
        "asset": asset,
    }
    return aiohttp_jinja2.render_template(template, request, {**layout, **(context or {})}, status=status)


async def redirect(
    request: web.Request, location: str, message: str | None = None, kind: str = "success",
) -> NoReturn:
    """Raise 303 See Other to `location` (Post/Redirect/Get), with a message for the next page.
    Views write `return await redirect(...)` or `await redirect(...)`; it never returns."""
    if message:
        await flash(request, message, kind)
    raise web.HTTPSeeOther(location)


def safe_next(value: str | None, default: str = "/ui") -> str:
    """A redirect target from a query or form: only a path of this UI, never another site."""
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or value.startswith("//") or "\\" in value:
        return default
    return value


# ------------------------------------------------------------------------------------------------
# Forms


def form_dict(form: MultiDictProxy[Any], *, lists: Iterable[str] = ()) -> dict[str, Any]:
    """A submitted form as a plain dict without the CSRF token: fields named in `lists` keep every
    value (checkbox groups, multi-selects), the others their last value, stripped of nothing."""
    list_fields = set(lists)
    values: dict[str, Any] = {}
    for name in form:
        if name == "csrf_token":
            continue
        items = [v for v in form.getall(name) if isinstance(v, str)]
        values[name] = items if name in list_fields else (items[-1] if items else "")
    for name in list_fields:
        values.setdefault(name, [])
    return values


def field_errors(exc: errors.ApiError) -> dict[str, list[str]]:
    """The API's error details as `{field: [message, ...]}` with nested fields joined by dots
    (`settings.timezone`), so a template puts each message next to its field. Messages not tied to
    a field are under `_form`."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            texts = [v for v in value if isinstance(v, str)]
            if texts:
                flat.setdefault(prefix or "_form", []).extend(texts)
            for item in value:
                if not isinstance(item, str):
                    walk(prefix, item)
        elif value is not None:
            flat.setdefault(prefix or "_form", []).append(str(value))

    walk("", exc.details)
    if not flat:
        flat["_form"] = [exc.message]
    return flat


def split_list(text: str) -> list[str]:
    """A text field holding a list ("#a, #b" or one per line) as its non-empty items."""
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def page_numbers(page: int, limit: int, total: int) -> dict[str, Any]:
    """What the pagination macro needs."""
    pages = max(1, math.ceil(total / limit)) if limit else 1
    return {"page": page, "pages": pages, "total": total, "limit": limit,
            "has_prev": page > 1, "has_next": page < pages}


async def multipart_with_csrf(request: web.Request) -> MultipartReader:
    """For multipart forms (uploads): the form must send `csrf_token` as its first field, checked
    here before any file is read. Returns the reader positioned after it. Views that accept
    multipart set `multipart_csrf = True` on themselves (see `accepts_multipart`)."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as exc:
        raise errors.BadRequest("The form could not be read") from exc
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != "csrf_token":
        raise errors.Forbidden("This form is missing its security token; reload the page and try again")
    token = (await part.read(decode=True))[:512].decode("utf-8", "replace")
    if not await csrf_ok(request, token):
        raise errors.Forbidden("This form has expired or did not come from this site; reload the page and try again")
    return reader


def accepts_multipart(handler: Handler) -> Handler:
    """Mark a view that reads a multipart body itself through `multipart_with_csrf`."""
    handler.multipart_csrf = True  # type: ignore[attr-defined]  # a mark read with getattr
    return handler


# ------------------------------------------------------------------------------------------------
# Who acts, and what they may see, for the domain functions


def member_scope(user: AdminUser) -> str | None:
    """The `member_of` argument of scoped domain queries: None (every workspace) for the admin
    role, the user's id otherwise (the workspaces they are a member of) — the rule of
    `visible_workspaces`."""
    return None if user.role == "admin" else user.id


def ui_actor(request: web.Request) -> Actor:
    """The signed-in user as the audit log's actor, with the client's address and user agent: the
    same entry the admin API's `request_actor` writes for a bearer token."""
    user = request[UI_USER]
    return Actor(user_id=user.id, user_email=user.email, ip_address=request.remote,
                 user_agent=request.headers.get("User-Agent"))
