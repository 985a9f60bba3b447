"""GET /api/platforms: the ten networks and what each supports, from the registry."""

from __future__ import annotations

from aiohttp import web

from ouipost.api.auth import api_route
from ouipost.http.web import ok
from ouipost.openapi import describe, views
from ouipost.platforms.registry import PLATFORMS

routes = web.RouteTableDef()


@routes.get("/api/platforms")
@describe("List the networks and what each supports", data={"platforms": [views.Platform]})
@api_route(None, workspace=None)
async def list_platforms(request: web.Request) -> web.Response:
    return ok({"platforms": [spec.public() for spec in PLATFORMS.values()]})
