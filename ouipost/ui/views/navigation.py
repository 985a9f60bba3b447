"""The workspace switcher's target: /ui/switch?ws=... opens that workspace's posts."""

from __future__ import annotations

from aiohttp import web

from ouipost.core import errors
from ouipost.http.context import DB
from ouipost.ui.common import UI_USER, ui_view, visible_workspace

routes = web.RouteTableDef()


@routes.get("/ui/switch")
@ui_view()
async def switch_workspace(request: web.Request) -> web.Response:
    workspace_id = request.query.get("ws", "").strip()
    if not workspace_id:
        raise web.HTTPSeeOther("/ui/workspaces")
    async with request.app[DB].connect() as conn:
        row = await visible_workspace(conn, request[UI_USER], workspace_id)
    if row is None:
        raise errors.NotFound("Workspace not found")
    raise web.HTTPSeeOther(f"/ui/w/{row['id']}/posts")
