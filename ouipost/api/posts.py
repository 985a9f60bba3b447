"""Posts: list, create, read, update, delete, and validate a body without saving it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost import errors
from ouipost.api.auth import api_route
from ouipost.api.common import HashtagList, PageQuery, pagination
from ouipost.context import CLOCK, DB, WORKSPACE_ID
from ouipost.idempotency import idempotent
from ouipost.platforms.registry import NETWORKS
from ouipost.posts import rules, service
from ouipost.web import load_body, load_query, ok

routes = web.RouteTableDef()
MAX_CONTENT = 100_000


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Content cannot be empty or only whitespace")


class PlatformOverride(Schema):
    content = fields.String(validate=[validate.Length(max=MAX_CONTENT), _not_blank])
    title = fields.String(allow_none=True, validate=validate.Length(max=300))
    link = fields.Url(schemes={"http", "https"}, allow_none=True, validate=validate.Length(max=2048))
    hashtags = HashtagList(validate=validate.Length(max=100))
    media_ids = fields.List(fields.String(), validate=validate.Length(max=50))


class PostBody(Schema):
    content = fields.String(required=True, validate=[validate.Length(max=MAX_CONTENT), _not_blank])
    platforms = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=50))
    title = fields.String(allow_none=True, validate=validate.Length(max=300))
    link = fields.Url(schemes={"http", "https"}, allow_none=True, validate=validate.Length(max=2048))
    hashtags = HashtagList(validate=validate.Length(max=100))
    platform_content = fields.Dict(keys=fields.String(), values=fields.Nested(PlatformOverride))


class PostQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(service.STATUSES))
    platform = fields.String(validate=validate.OneOf(NETWORKS))
    from_ = fields.AwareDateTime(data_key="from", format="iso")
    to = fields.AwareDateTime(format="iso")

    @validates_schema
    def _ordered(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("from must not be after to", field_name="from")


@routes.get("/api/posts")
@api_route("posts.read")
async def list_posts(request: web.Request) -> web.Response:
    query = load_query(request, PostQuery())
    clauses = service.list_filter(
        request[WORKSPACE_ID], status=query.get("status"), platform=query.get("platform"),
        start=query.get("from_"), end=query.get("to"),
    )
    async with request.app[DB].connect() as conn:
        rows, total = await service.list_posts(conn, clauses, page=query["page"], limit=query["limit"])
        ids = [r["id"] for r in rows]
        media = await service.media_of(conn, ids)
    urls = rules.media_urls(request.app, [m for items in media.values() for m in items])
    return ok({
        "posts": [service.post_view(r, media=media[r["id"]], media_urls=urls) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/api/posts")
@api_route("posts.write")
@idempotent
async def create_post(request: web.Request) -> web.Response:
    body = await load_body(request, PostBody())
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].begin() as conn:
        targets = await service.resolve_targets(conn, workspace_id, body["platforms"])
        await _check_rules(conn, workspace_id, body, targets, media=[])
        post = await service.insert_post(
            conn, workspace_id=workspace_id, fields=body, targets=targets, now=request.app[CLOCK].now()
        )
    return ok({"post": service.post_view(post)}, status=201)


@routes.post("/api/posts/validate")
@api_route("posts.read")
async def validate_post(request: web.Request) -> web.Response:
    """The checks of create, and those of scheduling, on a body that is not saved."""
    body = await load_body(request, PostBody())
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].connect() as conn:
        targets = await service.resolve_targets(conn, workspace_id, body["platforms"])
        report = await rules.check(conn, workspace_id, body, targets, media=[])
    return ok(report.as_dict())


@routes.get("/api/posts/{id}")
@api_route("posts.read")
async def get_post(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"])
        targets = (await service.targets_of(conn, [post["id"]]))[post["id"]]
        media = (await service.media_of(conn, [post["id"]]))[post["id"]]
    urls = rules.media_urls(request.app, media)
    return ok({"post": service.post_view(post, targets=targets, media=media, media_urls=urls, detail=True)})


@routes.put("/api/posts/{id}")
@api_route("posts.write")
async def update_post(request: web.Request) -> web.Response:
    changes = await load_body(request, PostBody(), partial=True)
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, workspace_id, request.match_info["id"], for_update=True)
        service.ensure_editable(post)
        merged = {**post, **changes}
        targets = await service.resolve_targets(conn, workspace_id, merged["platforms"])
        media = (await service.media_of(conn, [post["id"]]))[post["id"]]
        await _check_rules(conn, workspace_id, merged, targets, media=media)
        post = await service.update_post(
            conn, post, changes, targets if "platforms" in changes else None, request.app[CLOCK].now()
        )
    return ok({"post": service.post_view(post, media=media, media_urls=rules.media_urls(request.app, media))})


@routes.delete("/api/posts/{id}")
@api_route("posts.write")
async def delete_post(request: web.Request) -> web.Response:
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"], for_update=True)
        media = (await service.media_of(conn, [post["id"]]))[post["id"]]
        await service.delete_post(conn, post["id"])
    await rules.forget_media_files(request.app, media)
    if post["status"] in ("published", "partially_published"):
        message = ("Post deleted from Oui Post; it remains on the social networks, where it must be removed "
                   "separately")
    else:
        message = "Post deleted successfully"
    return ok({"message": message})


async def _check_rules(
    conn: AsyncConnection, workspace_id: str, body: Mapping[str, Any], targets: Sequence[service.Target],
    media: Sequence[Mapping[str, Any]],
) -> None:
    report = await rules.check(conn, workspace_id, body, targets, media=media)
    if report.errors:
        raise errors.ValidationError("The post breaks the rules of some networks", details=report.errors)
