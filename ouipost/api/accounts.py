"""Social accounts: connect (OAuth or Bluesky app password), list, read, update, disconnect."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ouipost.accounts import connections, instance_apps
from ouipost.accounts import service as accounts
from ouipost.accounts.statuses import ACCOUNT_STATUSES, AccountStatus
from ouipost.api.auth import api_route
from ouipost.api.common import HashtagList, PageQuery, StrictBoolean, TrimmedString, api_actor, pagination
from ouipost.core import errors
from ouipost.db.rows import AccountRow
from ouipost.http.context import API_KEY, CIPHER, CLOCK, DB, PLATFORM_HTTP, SETTINGS, WORKSPACE_ID
from ouipost.http.web import load_body, load_query, ok
from ouipost.openapi import describe, views
from ouipost.platforms.base import PlatformAdapter, PlatformError
from ouipost.platforms.registry import NETWORKS, get_platform

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
STATS_MAX_AGE = timedelta(minutes=15)


class ConnectBody(Schema):
    platform = fields.String(required=True, validate=validate.OneOf(NETWORKS))
    callback_url = fields.Url(schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2048))
    scopes = fields.List(fields.String(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=50))
    identifier = TrimmedString(validate=validate.Length(min=1, max=253))
    app_password = fields.String(validate=validate.Length(min=1, max=200))
    instance = TrimmedString(validate=validate.Length(min=1, max=253))  # the server of instance-based networks

    @validates_schema
    def _per_platform(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        platform = data.get("platform")
        if platform is None:
            return
        if get_platform(platform).instance_based != ("instance" in data):
            message = ("required: the server the account lives on, e.g. mastodon.social"
                       if get_platform(platform).instance_based else f"{platform} does not use instance")
            raise ValidationError(message, field_name="instance")
        if get_platform(platform).oauth_supported:
            if "callback_url" not in data:
                raise ValidationError("callback_url is required for OAuth networks", field_name="callback_url")
            for name in ("identifier", "app_password"):
                if name in data:
                    raise ValidationError(f"{name} is only for Bluesky", field_name=name)
        else:
            problems = {name: ["required to connect Bluesky"] for name in ("identifier", "app_password")
                        if name not in data}
            if problems:
                raise ValidationError(problems)
            for name in ("callback_url", "scopes"):
                if name in data:
                    raise ValidationError(f"Bluesky does not use {name}", field_name=name)


class CallbackBody(Schema):
    state = fields.String(required=True, validate=validate.Length(min=1, max=256))
    code = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class AccountQuery(PageQuery):
    platform = fields.String(validate=validate.OneOf(NETWORKS))
    status = fields.String(validate=validate.OneOf(ACCOUNT_STATUSES))


class AccountSettings(Schema):
    auto_hashtags = StrictBoolean()
    default_hashtags = HashtagList(validate=validate.Length(max=30))


class AccountUpdate(Schema):
    name = TrimmedString(validate=validate.Length(min=1, max=200))
    is_default = StrictBoolean()
    settings = fields.Nested(AccountSettings)


def _adapter(request: web.Request, network: str) -> PlatformAdapter:
    return connections.adapter_for(request.app[PLATFORM_HTTP], request.app[SETTINGS], network)


@routes.get("/api/accounts")
@describe("List social accounts",
          query=AccountQuery, data={"accounts": [views.Account], "pagination": views.Pagination})
@api_route("accounts.read")
async def list_accounts(request: web.Request) -> web.Response:
    query = load_query(request, AccountQuery())
    now = request.app[CLOCK].now()
    async with request.app[DB].connect() as conn:
        rows, total = await accounts.list_accounts(
            conn, request[WORKSPACE_ID], platform=query.get("platform"), status=query.get("status"),
            page=query["page"], limit=query["limit"],
        )
        counts = await accounts.posts_this_month(conn, [r["id"] for r in rows], now)
    return ok({
        "accounts": [accounts.account_view(r, now=now, posts_month=counts.get(r["id"], 0)) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/api/accounts")
@describe("Connect an account: an OAuth URL to send the user to, or Bluesky at once",
          body=ConnectBody, data=views.OAuthStart,
          also={201: ("Bluesky connected with an app password", {"account": views.AccountDetail})}, errors=(400,))
@api_route("accounts.manage")
async def connect_account(request: web.Request) -> web.Response:
    body = await load_body(request, ConnectBody())
    network = body["platform"]
    adapter = _adapter(request, network)
    engine, cipher, now = request.app[DB], request.app[CIPHER], request.app[CLOCK].now()
    if get_platform(network).instance_based:
        adapter = await instance_apps.bind_to_instance(
            engine, adapter, instance=body["instance"], redirect_uri=body["callback_url"], scopes=body.get("scopes"),
            allow_private=request.app[SETTINGS].webhook_allow_private, cipher=cipher, now=now,
        )
    if not get_platform(network).oauth_supported:
        account = await connections.connect_with_password(
            engine, adapter, workspace_id=request[WORKSPACE_ID], network=network, identifier=body["identifier"],
            app_password=body["app_password"], cipher=cipher, now=now,
        )
        return ok({"account": accounts.account_view(account, now=now, detail=True)}, status=201)
    started = await connections.start_oauth(
        engine, adapter, workspace_id=request[WORKSPACE_ID], network=network, callback_url=body["callback_url"],
        scopes=body.get("scopes"), owner=connections.StateOwner(api_key_id=request[API_KEY].id), cipher=cipher,
        now=now,
    )
    return ok({"auth_url": started.auth_url, "state": started.state, "expires_in": started.expires_in})


@routes.post("/api/accounts/callback")
@describe("Finish an OAuth connection", body=CallbackBody, data={"accounts": [views.AccountDetail]}, status=201)
@api_route("accounts.manage")
async def oauth_callback(request: web.Request) -> web.Response:
    body = await load_body(request, CallbackBody())
    now = request.app[CLOCK].now()
    connected = await connections.finish_oauth(
        request.app[DB], lambda network: _adapter(request, network), workspace_id=request[WORKSPACE_ID],
        state=body["state"], code=body["code"], owner=connections.StateOwner(api_key_id=request[API_KEY].id),
        cipher=request.app[CIPHER], now=now,
    )
    return ok({"accounts": [accounts.account_view(a, now=now, detail=True) for a in connected]}, status=201)


@routes.get("/api/accounts/{id}")
@describe("Get an account (stats refreshed when stale)", data={"account": views.AccountDetail})
@api_route("accounts.read")
async def get_account(request: web.Request) -> web.Response:
    engine, now = request.app[DB], request.app[CLOCK].now()
    async with engine.connect() as conn:
        account = await accounts.get_account(conn, request[WORKSPACE_ID], request.match_info["id"])
    stale = account["last_sync_at"] is None or now - account["last_sync_at"] > STATS_MAX_AGE
    if account["status"] == AccountStatus.ACTIVE and stale:
        account = await _refresh_stats(request, account)
    async with engine.connect() as conn:
        counts = await accounts.posts_this_month(conn, [account["id"]], now)
    return ok({"account": accounts.account_view(account, now=now, posts_month=counts.get(account["id"], 0),
                                                detail=True)})


async def _refresh_stats(request: web.Request, account: AccountRow) -> AccountRow:
    """Followers and counts from the network; on failure the cached ones stay and health says why."""
    engine, now = request.app[DB], request.app[CLOCK].now()
    adapter = _adapter(request, account["platform"])
    try:
        stats = await accounts.call_with_refresh(
            engine, adapter, account, request.app[CIPHER], now, adapter.account_stats
        )
    except PlatformError as exc:
        log.info("stats of %s not refreshed: %s", account["id"], exc.message)
        async with engine.connect() as conn:
            return await accounts.get_account(conn, account["workspace_id"], account["id"])
    values = {k: v for k, v in vars(stats).items() if v is not None}
    async with engine.begin() as conn:
        await accounts.store_stats(conn, account["id"], values, now)
        return await accounts.get_account(conn, account["workspace_id"], account["id"])


@routes.put("/api/accounts/{id}")
@describe("Update an account", body=AccountUpdate, data={"account": views.AccountDetail})
@api_route("accounts.manage")
async def update_account(request: web.Request) -> web.Response:
    changes = await load_body(request, AccountUpdate())
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        account = await accounts.get_account(conn, request[WORKSPACE_ID], request.match_info["id"])
        account = await accounts.update_account(conn, account, changes, now)
    return ok({"account": accounts.account_view(account, now=now, detail=True)})


@routes.delete("/api/accounts/{id}")
@describe("Disconnect an account (its pending targets are cancelled)", data=views.Disconnected)
@api_route("accounts.manage")
async def disconnect_account(request: web.Request) -> web.Response:
    engine = request.app[DB]
    async with engine.connect() as conn:
        account = await accounts.get_account(conn, request[WORKSPACE_ID], request.match_info["id"])
    cancelled = await connections.disconnect_account(
        engine, _revoking_adapter(request, account["platform"]), account, cipher=request.app[CIPHER],
        now=request.app[CLOCK].now(),
        actor=api_actor(request),
    )
    return ok({"message": "Account disconnected successfully", "cancelled_posts": cancelled})


def _revoking_adapter(request: web.Request, network: str) -> PlatformAdapter | None:
    # Disconnecting works even when the network lost its app credentials: only revocation is skipped.
    try:
        return _adapter(request, network)
    except errors.ApiError:
        return None
