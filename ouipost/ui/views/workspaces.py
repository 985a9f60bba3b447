"""/ui/workspaces: the workspaces a user may see (with their accounts, posts and members counts),
and, with the workspaces.manage permission, create, edit (time zone, default hashtags) and delete
(after a page that says what goes with it).

Forms go through the API's own WorkspaceBody schema and the same domain functions as
/api/workspaces, so the rules and the error messages are the API's.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from aiohttp import web

from ouipost.api.common import DEFAULT_PAGE_SIZE
from ouipost.api.workspaces import WorkspaceBody
from ouipost.core import errors
from ouipost.db.rows import WorkspaceRow
from ouipost.http.context import CLOCK, DB, STORAGE
from ouipost.http.web import run_schema
from ouipost.identity import workspaces
from ouipost.ui.admin_forms import page_arg
from ouipost.ui.common import (
    UI_USER,
    UI_WORKSPACE,
    can_mutate,
    field_errors,
    form_dict,
    page_numbers,
    redirect,
    render,
    split_list,
    ui_actor,
    ui_view,
    visible_workspaces_page,
)

routes = web.RouteTableDef()

MANAGE = "workspaces.manage"
TIMEZONES: tuple[str, ...] = tuple(sorted(zoneinfo.available_timezones()))
_FIELDS = ("name", "description", "settings.timezone", "settings.default_hashtags", "settings.approval_required")


@routes.get("/ui/workspaces")
@ui_view()
async def list_workspaces(request: web.Request) -> web.Response:
    user = request[UI_USER]
    page, limit = page_arg(request), DEFAULT_PAGE_SIZE
    async with request.app[DB].connect() as conn:
        rows, total = await visible_workspaces_page(conn, user, page=page, limit=limit)
        counts = await workspaces.counts_by_workspace(conn, [r["id"] for r in rows])
    return await render(request, "ui/workspaces/list.html", {
        "rows": [{**r, **counts[r["id"]]} for r in rows],
        "pages": page_numbers(page, limit, total),
        "can_manage": can_mutate(user, MANAGE),
    })


def _form_values(row: WorkspaceRow | None = None) -> dict[str, str]:
    if row is None:
        return {"name": "", "description": "", "settings.timezone": "UTC", "settings.default_hashtags": "",
                "settings.approval_required": ""}
    settings = {**workspaces.DEFAULT_SETTINGS, **row["settings"]}
    return {
        "name": row["name"],
        "description": row["description"] or "",
        "settings.timezone": settings["timezone"],
        "settings.default_hashtags": ", ".join(settings["default_hashtags"]),
        "settings.approval_required": "on" if settings["approval_required"] else "",
    }


def _body(values: dict[str, Any]) -> dict[str, Any]:
    """The form's strings in the JSON shape WorkspaceBody expects (the API's own messages follow)."""
    return {
        "name": values.get("name", ""),
        "description": values.get("description") or None,
        "settings": {
            "timezone": values.get("settings.timezone", ""),
            "default_hashtags": split_list(values.get("settings.default_hashtags", "")),
            "approval_required": values.get("settings.approval_required") == "on",  # an unticked box is absent
        },
    }


async def _form(
    request: web.Request, values: dict[str, Any], errors_: dict[str, list[str]], *, status: int = 200,
) -> web.Response:
    return await render(request, "ui/workspaces/form.html", {
        "values": values, "errors": errors_, "timezones": [(tz, tz) for tz in TIMEZONES],
    }, status=status)


@routes.get("/ui/workspaces/new")
@ui_view(MANAGE)
async def new_workspace(request: web.Request) -> web.Response:
    return await _form(request, _form_values(), {})


@routes.post("/ui/workspaces/new")
@ui_view(MANAGE)
async def create_workspace(request: web.Request) -> web.Response:
    values = {k: v for k, v in form_dict(await request.post()).items() if k in _FIELDS}
    user = request[UI_USER]
    try:
        body = run_schema(WorkspaceBody(), _body(values))
    except errors.ValidationError as exc:
        return await _form(request, {**_form_values(), **values}, field_errors(exc), status=422)
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        row = await workspaces.create_workspace(
            conn, name=body["name"], description=body.get("description"), settings=body.get("settings"), now=now,
        )
        if user.role != "admin":
            # Other roles see only their workspaces: the creator becomes a member of this one.
            await workspaces.add_member(conn, row["id"], user.id, now)
    return await redirect(request, "/ui/workspaces", f"Workspace “{row['name']}” created.")


@routes.get("/ui/workspaces/{ws}/edit")
@ui_view(MANAGE, workspace=True)
async def edit_workspace(request: web.Request) -> web.Response:
    return await _form(request, _form_values(request[UI_WORKSPACE]), {})


@routes.post("/ui/workspaces/{ws}/edit")
@ui_view(MANAGE, workspace=True)
async def update_workspace(request: web.Request) -> web.Response:
    values = {k: v for k, v in form_dict(await request.post()).items() if k in _FIELDS}
    current = request[UI_WORKSPACE]
    try:
        body = run_schema(WorkspaceBody(), _body(values))
    except errors.ValidationError as exc:
        return await _form(request, {**_form_values(current), **values}, field_errors(exc), status=422)
    async with request.app[DB].begin() as conn:
        row = await workspaces.get_workspace(conn, current["id"])
        if row is None:
            raise errors.NotFound("Workspace not found")
        row = await workspaces.update_workspace(conn, row, body, request.app[CLOCK].now())
    return await redirect(request, "/ui/workspaces", f"Workspace “{row['name']}” saved.")


@routes.get("/ui/workspaces/{ws}/delete")
@ui_view(MANAGE, workspace=True)
async def confirm_delete_workspace(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        counts = await workspaces.owned_counts(conn, request[UI_WORKSPACE]["id"])
    return await render(request, "ui/workspaces/delete.html", {"target": request[UI_WORKSPACE], "counts": counts})


@routes.post("/ui/workspaces/{ws}/delete")
@ui_view(MANAGE, workspace=True)
async def delete_workspace(request: web.Request) -> web.Response:
    target = request[UI_WORKSPACE]
    # The API's own deletion: rows and audit entry in one transaction, then the media files.
    if not await workspaces.delete_workspace_and_media(
        request.app[DB], request.app[STORAGE], target["id"], actor=ui_actor(request), now=request.app[CLOCK].now(),
    ):
        raise errors.NotFound("Workspace not found")
    return await redirect(request, "/ui/workspaces", f"Workspace “{target['name']}” deleted.")
