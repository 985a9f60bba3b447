"""API-key authentication for /api: the middleware that finds the key, and the route decorator
that checks permissions and resolves the workspace, in the order clients rely on:

1. no or bad key: 401 UNAUTHORIZED (middleware, before any route logic)
2. workspace-scoped route without X-Workspace-ID: 400 WORKSPACE_REQUIRED
3. missing permission: 403 FORBIDDEN
4. a workspace the key may not reach (or that does not exist): 404 NOT_FOUND, never revealing which

A route marked `@shares_key_connection` does its database work on the connection the key was looked
up on (`key_connection` / `key_transaction`): one pool checkout, ping and reset per request instead
of two, which on MySQL is two round trips of the few such a request makes.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core import errors
from ouipost.http import idempotency
from ouipost.http.context import API_KEY, CLOCK, DB, WORKSPACE_ID
from ouipost.http.web import Handler
from ouipost.identity import api_keys

WorkspaceSource = Literal["header", "path"] | None
KEY_CONNECTION = web.RequestKey("key_connection", AsyncConnection)


def shares_key_connection(handler: Handler) -> Handler:
    """Mark a route (outermost, under the route decorator) whose handler takes its connection from
    `key_connection` or `key_transaction`. Only for handlers that open no other connection while
    they run: a request holding two could wait for a pool that requests holding one have emptied.
    An Idempotency-Key request is therefore not shared (its claim commits on a connection of its own).
    """
    handler.shares_key_connection = True  # type: ignore[attr-defined]  # a mark read with getattr
    return handler


def _shares_connection(request: web.Request) -> bool:
    return (getattr(request.match_info.handler, "shares_key_connection", False)
            and idempotency.HEADER not in request.headers)


@asynccontextmanager
async def key_connection(request: web.Request) -> AsyncIterator[AsyncConnection]:
    """For reads: the connection the key was looked up on when the route shares it, else a new one.
    Either goes back to the pool when the block ends (the rest of the answer needs none)."""
    shared = request.pop(KEY_CONNECTION, None)
    if shared is None:
        async with request.app[DB].connect() as conn:
            yield conn
        return
    try:
        yield shared
    finally:
        await shared.close()


@asynccontextmanager
async def key_transaction(request: web.Request) -> AsyncIterator[AsyncConnection]:
    """Like engine.begin(): committed when the block ends, rolled back when it raises; on the key's
    connection when the route shares it (the key lookup was a read in the same READ COMMITTED
    transaction, so nothing of it is held). The connection goes back to the pool at the end."""
    shared = request.pop(KEY_CONNECTION, None)
    if shared is None:
        async with request.app[DB].begin() as conn:
            yield conn
        return
    try:
        yield shared
    except BaseException:
        await shared.rollback()
        raise
    else:
        await shared.commit()
    finally:
        await shared.close()


@web.middleware
async def api_key_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") and request.path != "/api":
        return await handler(request)
    secret = request.headers.get("X-API-Key", "").strip()
    if not secret:
        raise errors.Unauthorized("Missing X-API-Key header")
    # A read: usage and last use are counted in memory (ouipost.http.usage). The workspace a
    # header-scoped route will check is asked in the same query.
    workspace_id = request.headers.get("X-Workspace-ID", "").strip() or None
    share = _shares_connection(request)
    if share and request.body_exists:
        # The body is read before the checkout (a slow client must not hold a pooled connection),
        # when its declared length fits the cap; any other body takes the unshared path, which
        # answers 401 or 413 in the usual order.
        length = request.content_length
        share = length is not None and length <= request.client_max_size
        if share:
            await request.read()
    async with request.app[DB].connect() as conn:
        key = await api_keys.authenticate(conn, secret, request.app[CLOCK].now(), workspace_id=workspace_id)
        if key is None:
            raise errors.Unauthorized("Invalid, revoked or expired API key")
        request[API_KEY] = key
        if share:
            # The handler's key_connection/key_transaction block returns it to the pool; leaving
            # this block closes it otherwise (an error before the handler reached it).
            request[KEY_CONNECTION] = conn
            return await handler(request)
    return await handler(request)


def api_route(permission: str | None, *, workspace: WorkspaceSource = "header") -> Callable[[Handler], Handler]:
    """Guard a handler: the key must hold `permission` (None: any valid key); with `workspace`,
    resolve the workspace and check that the key reaches it.

    `workspace="header"` reads X-Workspace-ID; `workspace="path"` reads `{id}` from the route
    (the /api/workspaces/{id} routes). The resolved id is at `request[WORKSPACE_ID]`.
    """
    if permission is not None and permission not in api_keys.PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            key = request[API_KEY]
            workspace_id: str | None = None
            if workspace == "header":
                workspace_id = request.headers.get("X-Workspace-ID", "").strip()
                if not workspace_id:
                    raise errors.WorkspaceRequired()
            elif workspace == "path":
                workspace_id = request.match_info["id"]
            if permission is not None and permission not in key.permissions:
                raise errors.Forbidden(
                    f"This API key lacks the {permission} permission", details={"required": permission}
                )
            if workspace_id is not None:
                # X-Workspace-ID was asked with the key lookup; a workspace from the path is asked here.
                reachable = key.reaches == workspace_id
                if not reachable and workspace == "path":
                    async with request.app[DB].connect() as conn:
                        reachable = await api_keys.can_reach(conn, key.id, workspace_id)
                if not reachable:
                    raise errors.NotFound("Workspace not found")
                request[WORKSPACE_ID] = workspace_id
            return await handler(request)

        guarded.required_permission = permission  # type: ignore[attr-defined]  # a mark read with getattr
        guarded.workspace_source = workspace  # type: ignore[attr-defined]  # a mark read with getattr
        return guarded

    return decorate
