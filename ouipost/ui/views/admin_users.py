"""/ui/admin/users (permission users.manage): admin users with their role, state and workspaces;
create with a role, permissions and workspaces; edit; deactivate or reactivate; delete after a
confirmation. The last active admin can be neither demoted, deactivated nor deleted: the admin
API's 409 message is shown and nothing changes.

Forms run the admin API's UserBody/UserUpdateBody schemas and call the same user_admin
functions, audit entries included, as /admin/users.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.admin.users import UserBody, UserUpdateBody
from ouipost.api.common import DEFAULT_PAGE_SIZE
from ouipost.core import errors
from ouipost.db.rows import UserRow
from ouipost.http.context import CLOCK, DB
from ouipost.http.web import run_schema
from ouipost.identity import user_admin, users, workspaces
from ouipost.ui.admin_forms import at_list_fields, checkbox, page_arg, workspace_options
from ouipost.ui.common import UI_USER, field_errors, form_dict, page_numbers, redirect, render, ui_actor, ui_view

routes = web.RouteTableDef()

MANAGE = "users.manage"
_LISTS = ("permissions", "workspaces")


async def _user_or_404(conn: AsyncConnection, user_id: str) -> UserRow:
    user = await user_admin.get_user(conn, user_id)
    if user is None:
        raise errors.NotFound("User not found")
    return user


def _errors(exc: errors.ApiError) -> dict[str, list[str]]:
    """A 422's messages per field; a 409 (e-mail taken, last active admin) as the API's message
    above the form, plus its field when it names one."""
    if isinstance(exc, errors.Conflict):
        found = {"_form": [exc.message]}
        if isinstance((exc.details or {}).get("email"), list):
            found["email"] = list(exc.details["email"])
        return found
    return at_list_fields(field_errors(exc), _LISTS)


@routes.get("/ui/admin/users")
@ui_view(MANAGE)
async def list_users(request: web.Request) -> web.Response:
    page, limit = page_arg(request), DEFAULT_PAGE_SIZE
    role = request.query.get("role", "")
    role = role if role in users.ROLES else ""
    async with request.app[DB].connect() as conn:
        rows, total = await user_admin.list_users(conn, page=page, limit=limit, role=role or None)
        grants = await user_admin.workspaces_by_user(conn, [r["id"] for r in rows])
        names = await workspaces.names_by_id(conn, [w for ws in grants.values() for w in ws])
    return await render(request, "ui/admin/users/list.html", {
        "rows": [user_admin.user_view(r, grants[r["id"]]) for r in rows],
        "names": names, "pages": page_numbers(page, limit, total), "role": role,
        "role_options": [("", "Any role")] + [(r, r) for r in users.ROLES],
    })


async def _form(
    request: web.Request, values: dict[str, Any], errors_: dict[str, list[str]], *,
    target: dict[str, Any] | None = None, status: int = 200,
) -> web.Response:
    async with request.app[DB].connect() as conn:
        options = await workspace_options(conn, request, values.get("workspaces", []))
    return await render(request, "ui/admin/users/form.html", {
        "target": target, "values": values, "errors": errors_,
        "role_options": [(r, r) for r in users.ROLES],
        "permission_options": [(p, p) for p in users.ADMIN_PERMISSIONS],
        "role_defaults": {r: ", ".join(p) for r, p in users.ROLE_PERMISSIONS.items()},
        "workspace_options": options, "min_password": users.MIN_PASSWORD_LENGTH,
    }, status=status)


def _body(values: dict[str, Any], *, editing: bool) -> dict[str, Any]:
    """The form in the JSON shape of UserBody: permissions only when chosen (otherwise the role's
    defaults apply, as when the API's body omits them); on edits, a blank password changes nothing."""
    body: dict[str, Any] = {
        "email": values.get("email", ""),
        "name": values.get("name", ""),
        "role": values.get("role", ""),
        "workspaces": values.get("workspaces", []),
    }
    if checkbox(values, "custom_permissions"):
        body["permissions"] = values.get("permissions", [])
    elif editing and body["role"] in users.ROLE_PERMISSIONS:
        # Back to the role's defaults (an edit that omits permissions keeps the stored ones).
        body["permissions"] = list(users.ROLE_PERMISSIONS[body["role"]])
    if not editing or values.get("password"):
        body["password"] = values.get("password", "")
    if editing:
        body["is_active"] = checkbox(values, "is_active")
    return body


@routes.get("/ui/admin/users/new")
@ui_view(MANAGE)
async def new_user(request: web.Request) -> web.Response:
    values = {"email": "", "name": "", "role": "viewer", "permissions": [], "workspaces": []}
    return await _form(request, values, {})


@routes.post("/ui/admin/users/new")
@ui_view(MANAGE)
async def create_user(request: web.Request) -> web.Response:
    values = form_dict(await request.post(), lists=_LISTS)
    now = request.app[CLOCK].now()
    try:
        body = run_schema(UserBody(), _body(values, editing=False))
        async with request.app[DB].begin() as conn:
            row = await user_admin.create_user(conn, body, now)
            grants = await user_admin.workspaces_by_user(conn, [row["id"]])
            await user_admin.audit_user_created(conn, ui_actor(request), row, grants[row["id"]], now)
    except (errors.ValidationError, errors.Conflict) as exc:
        return await _form(request, values, _errors(exc), status=exc.status)
    return await redirect(request, "/ui/admin/users", f"User {row['email']} created.")


@routes.get("/ui/admin/users/{id}/edit")
@ui_view(MANAGE)
async def edit_user(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        target = await _user_or_404(conn, request.match_info["id"])
        grants = await user_admin.workspaces_by_user(conn, [target["id"]])
    view = user_admin.user_view(target, grants[target["id"]])
    custom = list(target["permissions"]) != list(users.ROLE_PERMISSIONS.get(target["role"], ()))
    values = {"email": view["email"], "name": view["name"], "role": view["role"], "permissions": view["permissions"],
              "workspaces": view["workspaces"], "is_active": "on" if view["is_active"] else "",
              "custom_permissions": "on" if custom else ""}
    return await _form(request, values, {}, target=view)


@routes.post("/ui/admin/users/{id}/edit")
@ui_view(MANAGE)
async def update_user(request: web.Request) -> web.Response:
    values = form_dict(await request.post(), lists=_LISTS)
    now = request.app[CLOCK].now()
    async with request.app[DB].connect() as conn:
        target = await _user_or_404(conn, request.match_info["id"])
    try:
        body = run_schema(UserUpdateBody(), _body(values, editing=True), partial=True)
        async with request.app[DB].begin() as conn:
            target = await _user_or_404(conn, target["id"])
            row, changed = await user_admin.update_user(conn, target, body, now)
            await user_admin.audit_user_updated(conn, ui_actor(request), target, row, changed, now)
    except (errors.ValidationError, errors.Conflict) as exc:
        return await _form(request, values, _errors(exc), target=user_admin.user_view(target, []),
                           status=exc.status)
    message = f"User {row['email']} saved." if changed else "Nothing changed."
    return await redirect(request, "/ui/admin/users", message, "success" if changed else "info")


@routes.post("/ui/admin/users/{id}/active")
@ui_view(MANAGE)
async def set_user_active(request: web.Request) -> web.Response:
    """Deactivate (every session of theirs ends at once) or reactivate a user."""
    values = form_dict(await request.post())
    now = request.app[CLOCK].now()
    active = values.get("is_active") == "1"
    try:
        async with request.app[DB].begin() as conn:
            target = await _user_or_404(conn, request.match_info["id"])
            row, changed = await user_admin.update_user(conn, target, {"is_active": active}, now)
            await user_admin.audit_user_updated(conn, ui_actor(request), target, row, changed, now)
    except errors.Conflict as exc:
        return await redirect(request, "/ui/admin/users", exc.message, "error")
    if target["id"] == request[UI_USER].id and not active:
        return await redirect(request, "/ui/login", "Your account is deactivated; you are signed out.", "info")
    verb = "reactivated" if active else "deactivated: their sessions have ended"
    return await redirect(request, "/ui/admin/users", f"User {row['email']} {verb}.")


@routes.get("/ui/admin/users/{id}/delete")
@ui_view(MANAGE)
async def confirm_delete_user(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        target = await _user_or_404(conn, request.match_info["id"])
    return await render(request, "ui/admin/users/delete.html", {"target": target, "errors": {}})


@routes.post("/ui/admin/users/{id}/delete")
@ui_view(MANAGE)
async def delete_user(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].connect() as conn:
        target = await _user_or_404(conn, request.match_info["id"])
    try:
        async with request.app[DB].begin() as conn:
            target = await _user_or_404(conn, target["id"])
            await user_admin.delete_user(conn, target)
            await user_admin.audit_user_deleted(conn, ui_actor(request), target, now)
    except errors.Conflict as exc:
        return await render(request, "ui/admin/users/delete.html",
                            {"target": target, "errors": {"_form": [exc.message]}}, status=409)
    return await redirect(request, "/ui/admin/users", f"User {target['email']} deleted.")
