"""API-key authentication for /api: the middleware that finds the key, and the route decorator
that checks permissions and resolves the workspace, in the order clients rely on:

1. no or bad key: 401 UNAUTHORIZED (middleware, before any route logic)
2. workspace-scoped route without X-Workspace-ID: 400 WORKSPACE_REQUIRED
3. missing permission: 403 FORBIDDEN
4. a workspace the key may not reach (or that does not exist): 404 NOT_FOUND, never revealing which
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

from aiohttp import web

from ouipost import api_keys, errors
from ouipost.context import API_KEY, CLOCK, DB, WORKSPACE_ID
from ouipost.web import Handler

WorkspaceSource = Literal["header", "path"] | None


@web.middleware
async def api_key_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") and request.path != "/api":
        return await handler(request)
    secret = request.headers.get("X-API-Key", "").strip()
    if not secret:
        raise errors.Unauthorized("Missing X-API-Key header")
    # A read: usage and last use are counted in memory (ouipost.usage). The workspace a
    # header-scoped route will check is asked in the same query.
    workspace_id = request.headers.get("X-Workspace-ID", "").strip() or None
    async with request.app[DB].connect() as conn:
        key = await api_keys.authenticate(conn, secret, request.app[CLOCK].now(), workspace_id=workspace_id)
    if key is None:
        raise errors.Unauthorized("Invalid, revoked or expired API key")
    request[API_KEY] = key
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

        guarded.required_permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate
