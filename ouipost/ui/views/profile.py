"""/ui/profile: who you are signed in as, your role and permissions, and your workspaces."""

from __future__ import annotations

from aiohttp import web

from ouipost.identity.users import ADMIN_PERMISSIONS
from ouipost.ui.common import UI_USER, UI_WORKSPACES, render, ui_view

routes = web.RouteTableDef()


@routes.get("/ui/profile")
@ui_view()
async def profile(request: web.Request) -> web.Response:
    user = request[UI_USER]
    return await render(request, "ui/profile.html", {
        "permissions": [(p, user.can(p)) for p in ADMIN_PERMISSIONS],
        "member_of": request[UI_WORKSPACES],
    })
