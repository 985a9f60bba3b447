"""The five workspace endpoints of the reference: list, create, get, update, delete."""

from __future__ import annotations

from aiohttp import web
from marshmallow import Schema, fields, validate

from ouipost.api.auth import api_route
from ouipost.api.common import (
    HashtagList,
    PageQuery,
    StrictBoolean,
    TrimmedString,
    api_actor,
    pagination,
    validate_timezone,
)
from ouipost.core.errors import NotFound
from ouipost.http.context import API_KEY, CLOCK, DB, STORAGE, WORKSPACE_ID
from ouipost.http.web import load_body, load_query, ok
from ouipost.identity import api_keys, workspaces
from ouipost.openapi import describe, views

routes = web.RouteTableDef()


class WorkspaceSettings(Schema):
    timezone = fields.String(validate=validate_timezone)
    default_hashtags = HashtagList(validate=validate.Length(max=30))
    # Posts need a posts.approve key or user to be scheduled or published (ouipost/posts/approval.py).
    approval_required = StrictBoolean()


class WorkspaceBody(Schema):
    name = TrimmedString(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    settings = fields.Nested(WorkspaceSettings)


@routes.get("/api/workspaces")
@describe("List the workspaces this key reaches",
          query=PageQuery, data={"workspaces": [views.Workspace], "pagination": views.Pagination})
@api_route("workspaces.read", workspace=None)
async def list_workspaces(request: web.Request) -> web.Response:
    query = load_query(request, PageQuery())
    key = request[API_KEY]
    async with request.app[DB].connect() as conn:
        rows, total = await workspaces.list_for_key(conn, key.id, page=query["page"], limit=query["limit"])
        counts = await workspaces.counts_by_workspace(conn, [r["id"] for r in rows])
    return ok({
        "workspaces": [workspaces.workspace_view(r, counts[r["id"]]) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/api/workspaces")
@describe("Create a workspace (the key reaches it)",
          body=WorkspaceBody, data={"workspace": views.Workspace}, status=201)
@api_route("workspaces.manage", workspace=None)
async def create_workspace(request: web.Request) -> web.Response:
    body = await load_body(request, WorkspaceBody())
    async with request.app[DB].begin() as conn:
        row = await workspaces.create_workspace(
            conn, name=body["name"], description=body.get("description"), settings=body.get("settings"),
            now=request.app[CLOCK].now(),
        )
        # The key that creates a workspace may reach it.
        await api_keys.grant_workspace(conn, request[API_KEY].id, row["id"])
    view = workspaces.workspace_view(row, {"accounts_count": 0, "posts_count": 0, "members_count": 0})
    return ok({"workspace": view}, status=201)


@routes.get("/api/workspaces/{id}")
@describe("Get a workspace with its accounts and post counts", data={"workspace": views.WorkspaceDetail})
@api_route("workspaces.read", workspace="path")
async def get_workspace(request: web.Request) -> web.Response:
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].connect() as conn:
        row = await workspaces.get_workspace(conn, workspace_id)
        if row is None:
            raise NotFound("Workspace not found")
        counts = await workspaces.counts_by_workspace(conn, [workspace_id])
        view = workspaces.workspace_view(row, counts[workspace_id])
        view["accounts"] = await workspaces.connected_accounts(conn, workspace_id)
        view["stats"] = await workspaces.post_stats(conn, workspace_id)
    return ok({"workspace": view})


@routes.put("/api/workspaces/{id}")
@describe("Update a workspace", body=WorkspaceBody(partial=True), data={"workspace": views.Workspace})
@api_route("workspaces.manage", workspace="path")
async def update_workspace(request: web.Request) -> web.Response:
    body = await load_body(request, WorkspaceBody(), partial=True)
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].begin() as conn:
        row = await workspaces.get_workspace(conn, workspace_id)
        if row is None:
            raise NotFound("Workspace not found")
        row = await workspaces.update_workspace(conn, row, body, request.app[CLOCK].now())
        counts = await workspaces.counts_by_workspace(conn, [workspace_id])
    return ok({"workspace": workspaces.workspace_view(row, counts[workspace_id])})


@routes.delete("/api/workspaces/{id}")
@describe("Delete a workspace and everything in it", data=views.Message)
@api_route("workspaces.manage", workspace="path")
async def delete_workspace(request: web.Request) -> web.Response:
    # The audit entry names the API key that acted (no admin user acts on /api) and where from.
    if not await workspaces.delete_workspace_and_media(
        request.app[DB], request.app[STORAGE], request[WORKSPACE_ID], actor=api_actor(request),
        now=request.app[CLOCK].now(),
    ):
        raise NotFound("Workspace not found")
    return ok({"message": "Workspace deleted successfully"})
