"""Social accounts of a workspace (/ui/w/{ws}/accounts): the list, connecting through the network's
real OAuth consent (the network sends the browser back to .../accounts/callback), Bluesky by handle
and app password, reconnecting an expired account, and disconnecting after a confirmation page that
lists the scheduled posts that will return to draft.

Every step calls the functions of ouipost.accounts.connections that POST /api/accounts, POST
/api/accounts/callback and DELETE /api/accounts/{id} call, after the API's own ConnectBody and
CallbackBody schemas. The OAuth state is bound to the workspace and to the signed-in user.
Mutations need posts.manage, as the API's accounts.manage maps to it for admin users.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from marshmallow import ValidationError as SchemaError

from ouipost.accounts import connections, instance_apps
from ouipost.accounts import service as accounts
from ouipost.admin.common import request_actor
from ouipost.api.accounts import CallbackBody, ConnectBody
from ouipost.core import errors
from ouipost.db.rows import AccountRow
from ouipost.http.context import CIPHER, CLOCK, DB, PLATFORM_HTTP, SETTINGS
from ouipost.platforms.base import PlatformAdapter
from ouipost.platforms.registry import NETWORKS, get_platform
from ouipost.ui.common import (
    UI_USER,
    UI_WORKSPACE,
    can_mutate,
    field_errors,
    form_dict,
    page_numbers,
    redirect,
    render,
    ui_view,
)

routes = web.RouteTableDef()

MANAGE = "posts.manage"
PAGE_SIZE = 50
OAUTH_NETWORKS = tuple(n for n in NETWORKS if get_platform(n).oauth_supported and not get_platform(n).instance_based)
INSTANCE_NETWORKS = tuple(n for n in NETWORKS if get_platform(n).instance_based)  # Mastodon: a server, then OAuth
PASSWORD_NETWORKS = tuple(n for n in NETWORKS if not get_platform(n).oauth_supported)
INVALID_STATE = (
    "This connection link is unknown, expired, already used or belongs to another workspace. "
    "Start again from the accounts page."
)


def _base(request: web.Request) -> str:
    return f"/ui/w/{request[UI_WORKSPACE]['id']}/accounts"


def _callback_url(request: web.Request) -> str:
    return f"{request.app[SETTINGS].public_url.rstrip('/')}{_base(request)}/callback"


def _adapter(request: web.Request, network: str) -> PlatformAdapter:
    return connections.adapter_for(request.app[PLATFORM_HTTP], request.app[SETTINGS], network)


def _owner(request: web.Request) -> connections.StateOwner:
    return connections.StateOwner(user_id=request[UI_USER].id)


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return max(1, min(int(raw), 10_000)) if raw.isdigit() else 1


async def _list_page(
    request: web.Request, *, values: dict[str, Any] | None = None, errors_: dict[str, list[str]] | None = None,
    status: int = 200,
) -> web.Response:
    workspace = request[UI_WORKSPACE]
    page = _page_number(request)
    async with request.app[DB].connect() as conn:
        rows, total = await accounts.list_accounts(conn, workspace["id"], platform=None, status=None,
                                                   page=page, limit=PAGE_SIZE)
    return await render(request, "ui/accounts/list.html", {
        "accounts": rows,
        "pages": page_numbers(page, PAGE_SIZE, total),
        "oauth_networks": [(n, get_platform(n).name) for n in OAUTH_NETWORKS],
        "password_networks": [(n, get_platform(n).name) for n in PASSWORD_NETWORKS],
        "instance_networks": [(n, get_platform(n).name) for n in INSTANCE_NETWORKS],
        "network_names": {n: get_platform(n).name for n in NETWORKS},
        "can_manage": can_mutate(request[UI_USER], MANAGE),
        "values": values or {"identifier": ""},
        "errors": errors_ or {},
        "now": request.app[CLOCK].now(),
        "timezone": (workspace.get("settings") or {}).get("timezone") or "UTC",
    }, status=status)


@routes.get("/ui/w/{ws}/accounts")
@ui_view(workspace=True)
async def accounts_page(request: web.Request) -> web.Response:
    # `identifier` prefills the Bluesky form (reconnecting a Bluesky account lands here).
    return await _list_page(request, values={"identifier": request.query.get("identifier", "")[:253]})


async def _start_oauth(request: web.Request, network: str) -> web.Response:
    """Keep a state for this user and workspace, then send the browser to the network's consent."""
    try:
        body = ConnectBody().load({"platform": network, "callback_url": _callback_url(request)})
    except SchemaError as exc:
        raise errors.ValidationError("Invalid network", details=exc.normalized_messages()) from exc
    started = await connections.start_oauth(
        request.app[DB], _adapter(request, body["platform"]), workspace_id=request[UI_WORKSPACE]["id"],
        network=body["platform"], callback_url=body["callback_url"], scopes=None, owner=_owner(request),
        cipher=request.app[CIPHER], now=request.app[CLOCK].now(),
    )
    raise web.HTTPSeeOther(started.auth_url)


async def _start_instance_oauth(request: web.Request, network: str, instance: str) -> web.Response:
    """The server form (Mastodon): register or reuse the app on that server, then its consent page;
    a bad or refused server re-renders the list with the reason next to the field."""
    shown = {"identifier": "", "instance": instance}
    try:
        body = ConnectBody().load({"platform": network, "callback_url": _callback_url(request),
                                   **({"instance": instance} if instance else {})})
    except SchemaError as exc:
        return await _list_page(request, values=shown, errors_=field_errors(
            errors.ValidationError("Invalid body", details=exc.normalized_messages())), status=422)
    now = request.app[CLOCK].now()
    try:
        adapter = await instance_apps.bind_to_instance(
            request.app[DB], _adapter(request, network), instance=body["instance"],
            redirect_uri=body["callback_url"], scopes=None,
            allow_private=request.app[SETTINGS].webhook_allow_private, cipher=request.app[CIPHER], now=now,
        )
    except errors.ValidationError as exc:
        return await _list_page(request, values=shown, errors_=field_errors(exc), status=422)
    started = await connections.start_oauth(
        request.app[DB], adapter, workspace_id=request[UI_WORKSPACE]["id"], network=network,
        callback_url=body["callback_url"], scopes=None, owner=_owner(request), cipher=request.app[CIPHER], now=now,
    )
    raise web.HTTPSeeOther(started.auth_url)


@routes.post("/ui/w/{ws}/accounts/connect")
@ui_view(MANAGE, workspace=True)
async def connect(request: web.Request) -> web.Response:
    """An OAuth network's button (`platform`), or the Bluesky form (`platform`, `identifier`,
    `app_password`): errors of the latter re-render the list with them next to the fields."""
    values = form_dict(await request.post())
    network = str(values.get("platform", ""))
    if network in OAUTH_NETWORKS:
        try:
            return await _start_oauth(request, network)
        except errors.ValidationError as exc:  # the network has no app credentials here
            return await _list_page(request, errors_={"_form": [exc.message]}, status=422)
    if network in INSTANCE_NETWORKS:
        return await _start_instance_oauth(request, network, str(values.get("instance", "")).strip())
    shown = {"identifier": str(values.get("identifier", ""))}
    payload = {
        "platform": network,
        # Empty fields are missing ones, so the API's "required" message is shown.
        **{name: values[name] for name in ("identifier", "app_password") if str(values.get(name, "")).strip()},
    }
    try:
        body = ConnectBody().load(payload)
    except SchemaError as exc:
        return await _list_page(request, values=shown, errors_=field_errors(
            errors.ValidationError("Invalid body", details=exc.normalized_messages())), status=422)
    now = request.app[CLOCK].now()
    try:
        account = await connections.connect_with_password(
            request.app[DB], _adapter(request, network), workspace_id=request[UI_WORKSPACE]["id"], network=network,
            identifier=body["identifier"], app_password=body["app_password"], cipher=request.app[CIPHER], now=now,
        )
    except errors.ValidationError as exc:
        return await _list_page(request, values=shown, errors_=field_errors(exc), status=422)
    return await redirect(request, _base(request), f"Connected {_label(account)}.")


def _label(account: AccountRow) -> str:
    handle = f" (@{account['username']})" if account.get("username") else ""
    return f"{get_platform(account['platform']).name} account {account['name']}{handle}"


@routes.get("/ui/w/{ws}/accounts/callback")
@ui_view(MANAGE, workspace=True)
async def oauth_callback(request: web.Request) -> web.Response:
    """Where the network sends the browser back: finish the connection, or say why it cannot be."""
    query = request.query
    if query.get("error"):
        reason = query.get("error_description") or query.get("error")
        return await _callback_error(request, f"The network did not grant access: {reason}.")
    try:
        body = CallbackBody().load({k: query[k] for k in ("state", "code") if k in query})
    except SchemaError:
        return await _callback_error(request, INVALID_STATE)
    now = request.app[CLOCK].now()
    try:
        connected = await connections.finish_oauth(
            request.app[DB], lambda network: _adapter(request, network), workspace_id=request[UI_WORKSPACE]["id"],
            state=body["state"], code=body["code"], owner=_owner(request), cipher=request.app[CIPHER], now=now,
        )
    except errors.ApiError as exc:
        if exc.code == "INVALID_OAUTH_STATE":
            return await _callback_error(request, INVALID_STATE)
        if exc.status == 400:
            return await _callback_error(request, exc.message)
        raise
    names = ", ".join(_label(a) for a in connected)
    return await redirect(request, _base(request), f"Connected {names}.")


async def _callback_error(request: web.Request, message: str) -> web.Response:
    return await render(request, "ui/accounts/callback_error.html", {"message": message}, status=400)


@routes.post("/ui/w/{ws}/accounts/{id}/reconnect")
@ui_view(MANAGE, workspace=True)
async def reconnect(request: web.Request) -> web.Response:
    """The OAuth flow again for this account's network; the same identity coming back updates the
    account in place (tokens, status active). Bluesky accounts go to the password form instead."""
    async with request.app[DB].connect() as conn:
        account = await accounts.get_account(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
    if account["platform"] in PASSWORD_NETWORKS:
        target = f"{_base(request)}?{urlencode({'identifier': account['username'] or ''})}#connect-password"
        raise web.HTTPSeeOther(target)
    if account["platform"] in INSTANCE_NETWORKS:  # the same server again
        return await _start_instance_oauth(request, account["platform"],
                                           str((account["metadata"] or {}).get("instance") or ""))
    return await _start_oauth(request, account["platform"])


@routes.get("/ui/w/{ws}/accounts/{id}/disconnect")
@ui_view(MANAGE, workspace=True)
async def disconnect_page(request: web.Request) -> web.Response:
    workspace = request[UI_WORKSPACE]
    async with request.app[DB].connect() as conn:
        account = await accounts.get_account(conn, workspace["id"], request.match_info["id"])
        drafts = await connections.posts_returning_to_draft(conn, account["id"])
    return await render(request, "ui/accounts/disconnect.html", {
        "account": account, "drafts": drafts, "network_name": get_platform(account["platform"]).name,
        "timezone": (workspace.get("settings") or {}).get("timezone") or "UTC",
    })


@routes.post("/ui/w/{ws}/accounts/{id}/disconnect")
@ui_view(MANAGE, workspace=True)
async def disconnect(request: web.Request) -> web.Response:
    engine = request.app[DB]
    async with engine.connect() as conn:
        account = await accounts.get_account(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
    try:
        adapter = _adapter(request, account["platform"])
    except errors.ApiError:
        adapter = None  # the network lost its app credentials: disconnect without revoking
    cancelled = await connections.disconnect_account(
        engine, adapter, account, cipher=request.app[CIPHER], now=request.app[CLOCK].now(),
        actor=request_actor(request, request[UI_USER]),
    )
    detail = f"; {cancelled} post{'s' if cancelled != 1 else ''} lost this account as a target" if cancelled else ""
    return await redirect(request, _base(request), f"Disconnected {_label(account)}{detail}.")
