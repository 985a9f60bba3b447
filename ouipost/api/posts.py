"""Posts: list, create, read, update, delete, and validate a body without saving it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ouipost.analytics import service as analytics
from ouipost.api.auth import api_route, key_connection, key_transaction, shares_key_connection
from ouipost.api.common import HashtagList, PageQuery, StrictBoolean, api_actor, pagination, validate_timezone
from ouipost.core.clock import isoformat
from ouipost.http.context import API_KEY, CLOCK, DB, STORAGE, WORKER, WORKSPACE_ID
from ouipost.http.idempotency import idempotent
from ouipost.http.web import load_body, load_query, ok
from ouipost.jobs.queue import notify_enqueued
from ouipost.openapi import describe, views
from ouipost.platforms.registry import NETWORKS
from ouipost.posts import actions, approval, followups, rules, service, statuses
from ouipost.publishing import service as publishing

routes = web.RouteTableDef()
MAX_CONTENT = 100_000
MAX_FIRST_COMMENT = 10_000
MAX_PART_MEDIA = 10


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Content cannot be empty or only whitespace")


class PlatformOverride(Schema):
    content = fields.String(validate=[validate.Length(max=MAX_CONTENT), _not_blank])
    title = fields.String(allow_none=True, validate=validate.Length(max=300))
    link = fields.Url(schemes={"http", "https"}, allow_none=True, validate=validate.Length(max=2048))
    hashtags = HashtagList(validate=validate.Length(max=100))
    media_ids = fields.List(fields.String(), validate=validate.Length(max=50))
    # What only this network knows (Mastodon: visibility, spoiler_text; Pinterest: board_id...),
    # handed to its adapter as PublishRequest.options.
    options = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=50)), values=fields.Raw(),
                          validate=validate.Length(max=20))


def _not_blank_text(value: str) -> None:
    if not value.strip():
        raise ValidationError("Cannot be empty or only whitespace")


class ThreadPart(Schema):
    """One part of a post's thread (ouipost/posts/followups.py), published after the post."""

    content = fields.String(required=True, validate=[validate.Length(max=MAX_CONTENT), _not_blank])
    media_ids = fields.List(fields.String(), validate=validate.Length(max=MAX_PART_MEDIA))

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None, unknown: Any = None) -> Any:
        # An update loads its body partial, and marshmallow hands that down to nested schemas: a
        # part given is a whole part all the same (its content required).
        return super().load(data, many=many, partial=False, unknown=unknown)


class PostBody(Schema):
    content = fields.String(required=True, validate=[validate.Length(max=MAX_CONTENT), _not_blank])
    platforms = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=50))
    title = fields.String(allow_none=True, validate=validate.Length(max=300))
    link = fields.Url(schemes={"http", "https"}, allow_none=True, validate=validate.Length(max=2048))
    hashtags = HashtagList(validate=validate.Length(max=100))
    platform_content = fields.Dict(keys=fields.String(), values=fields.Nested(PlatformOverride))
    # Follow-ups: null or [] for no thread; thread_mode null is "thread"; first_comment null for none.
    thread = fields.List(fields.Nested(ThreadPart), allow_none=True, validate=validate.Length(
        max=followups.MAX_THREAD_PARTS, error="A thread has at most {max} parts"))
    thread_mode = fields.String(allow_none=True, validate=validate.OneOf(tuple(followups.ThreadMode)))
    first_comment = fields.String(allow_none=True,
                                  validate=[validate.Length(max=MAX_FIRST_COMMENT), _not_blank_text])


class PostQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(statuses.POST_STATUSES))
    platform = fields.String(validate=validate.OneOf(NETWORKS))
    from_ = fields.AwareDateTime(data_key="from", format="iso")
    to = fields.AwareDateTime(format="iso")

    @validates_schema
    def _ordered(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("from must not be after to", field_name="from")


# One instance each, shared by every request: building a marshmallow Schema copies its declared
# fields (about 0.1 ms, a few percent of a list request); loading with one keeps no state.
POST_QUERY = PostQuery()
POST_BODY = PostBody()


@routes.get("/api/posts")
@describe("List posts", query=POST_QUERY, data={"posts": [views.Post], "pagination": views.Pagination})
@shares_key_connection
@api_route("posts.read")
async def list_posts(request: web.Request) -> web.Response:
    query = load_query(request, POST_QUERY)
    async with key_connection(request) as conn:
        rows, total, media = await service.list_page(
            conn, request[WORKSPACE_ID], status=query.get("status"), platform=query.get("platform"),
            start=query.get("from_"), end=query.get("to"), page=query["page"], limit=query["limit"],
        )
        totals = await analytics.post_totals(conn, [r["id"] for r in rows if service.may_have_insights(r)])
    urls = rules.media_urls(request.app[STORAGE], [m for items in media.values() for m in items])
    return ok({
        "posts": [service.post_view(r, media=media[r["id"]], media_urls=urls, analytics=totals.get(r["id"]))
                  for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/api/posts")
@describe("Create a draft post", body=POST_BODY, data={"post": views.Post}, status=201, example=views.POST_EXAMPLE)
@shares_key_connection
@api_route("posts.write")
@idempotent
async def create_post(request: web.Request) -> web.Response:
    body = await load_body(request, POST_BODY)
    async with key_transaction(request) as conn:
        post = await actions.create_draft(conn, request[WORKSPACE_ID], body, request.app[CLOCK].now())
    return ok({"post": service.post_view(post)}, status=201)


@routes.post("/api/posts/validate")
@describe("Check a post body against every network's rules without saving it",
          body=POST_BODY, data=views.ValidationReport)
@api_route("posts.read")
async def validate_post(request: web.Request) -> web.Response:
    """The checks of create, and those of scheduling, on a body that is not saved."""
    body = await load_body(request, POST_BODY)
    async with request.app[DB].connect() as conn:
        report = await actions.validate_body(conn, request[WORKSPACE_ID], body)
    return ok(report.as_dict())


@routes.get("/api/posts/{id}")
@describe("Get a post with its per-network results and analytics", data={"post": views.PostDetail})
@api_route("posts.read")
async def get_post(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"])
        targets = (await service.targets_of(conn, [post["id"]]))[post["id"]]
        parts = await followups.parts_of(conn, [post["id"]]) if targets else {}
        media = (await service.media_of(conn, [post["id"]]))[post["id"]]
        totals = (await analytics.post_totals(conn, [post["id"]])).get(post["id"])
    urls = rules.media_urls(request.app[STORAGE], media)
    return ok({"post": service.post_view(post, targets=targets, media=media, media_urls=urls, detail=True,
                                         analytics=totals, parts=parts)})


@routes.put("/api/posts/{id}")
@describe("Update a draft or scheduled post", body=PostBody(partial=True), data={"post": views.Post}, errors=(409,))
@api_route("posts.write")
async def update_post(request: web.Request) -> web.Response:
    changes = await load_body(request, POST_BODY, partial=True)
    async with request.app[DB].begin() as conn:
        post, media = await actions.update_draft(
            conn, request[WORKSPACE_ID], request.match_info["id"], changes, request.app[CLOCK].now()
        )
    return ok({"post": service.post_view(post, media=media, media_urls=rules.media_urls(request.app[STORAGE], media))})


@routes.delete("/api/posts/{id}")
@describe("Delete a post", data=views.Message, errors=(409,))
@api_route("posts.write")
async def delete_post(request: web.Request) -> web.Response:
    async with request.app[DB].begin() as conn:
        post, media = await actions.delete(conn, request[WORKSPACE_ID], request.match_info["id"])
    await rules.forget_media_files(request.app[STORAGE], media)
    return ok({"message": actions.deletion_message(post)})


# --- scheduling and publishing ----------------------------------------------------------------------

PUBLISH_WAIT_SECONDS = actions.PUBLISH_WAIT_SECONDS  # how long POST /publish waits before answering 202


class ScheduleBody(Schema):
    scheduled_at = fields.String(validate=validate.Length(min=10, max=40))
    timezone = fields.String(validate=validate_timezone)
    schedule_id = fields.String(validate=validate.Length(min=1, max=64))

    @validates_schema
    def _one_way(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if ("scheduled_at" in data) == ("schedule_id" in data):
            raise ValidationError("Give either scheduled_at or schedule_id", field_name="scheduled_at")
        if "schedule_id" in data and "timezone" in data:
            raise ValidationError("A schedule has its own time zone", field_name="timezone")


@routes.post("/api/posts/{id}/schedule")
@describe("Schedule a post at a time or in a schedule's next free slot",
          body=ScheduleBody, data={"post": views.ScheduledPost}, errors=(409,), example=views.POST_SCHEDULE_EXAMPLE)
@api_route("posts.write")
async def schedule_post(request: web.Request) -> web.Response:
    body = await load_body(request, ScheduleBody())
    workspace_id, now = request[WORKSPACE_ID], request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, workspace_id, request.match_info["id"], for_update=True)
        await approval.ensure_may_publish(conn, workspace_id, may_approve=_may_approve(request))
        post = await actions.schedule(conn, post, body, now)
    notify_enqueued(request.app.get(WORKER))
    return ok({"post": {
        "id": post["id"], "status": post["status"], "scheduled_at": isoformat(post["scheduled_at"]),
        "scheduled_timezone": post["scheduled_timezone"],
    }})


@routes.post("/api/posts/{id}/unschedule")
@describe("Return a scheduled post to draft", data={"post": views.Post}, errors=(409,))
@api_route("posts.write")
async def unschedule_post(request: web.Request) -> web.Response:
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"], for_update=True)
        post = await publishing.unschedule_post(conn, post, request.app[CLOCK].now())
    return ok({"post": service.post_view(post)})


@routes.post("/api/posts/{id}/publish")
@describe("Publish a post now",
          data={"post": views.PublishOutcome},
          also={202: ("Still publishing: poll the post", {"post": views.PublishOutcome})}, errors=(409, 422))
@api_route("posts.write")
async def publish_post(request: web.Request) -> web.Response:
    """Enqueue at once and wait a few seconds: 200 with platform_results when done, else 202."""
    engine, workspace_id = request.app[DB], request[WORKSPACE_ID]
    async with engine.begin() as conn:
        post = await service.get_post(conn, workspace_id, request.match_info["id"], for_update=True)
        await approval.ensure_may_publish(conn, workspace_id, may_approve=_may_approve(request))
        await publishing.request_publish(conn, post, request.app[CLOCK].now())
    notify_enqueued(request.app.get(WORKER))
    post, targets, done = await actions.wait_for_outcome(
        engine, workspace_id, request.match_info["id"], PUBLISH_WAIT_SECONDS
    )
    async with engine.connect() as conn:
        parts = await followups.parts_of(conn, [post["id"]]) if followups.has_followups(post) else {}
    view = {
        "id": post["id"], "status": post["status"], "published_at": isoformat(post["published_at"]),
        "platform_results": publishing.platform_results([t for t in targets if t["status"] != "cancelled"], parts),
    }
    return ok({"post": view}, status=200 if done else 202)


# --- approval (ouipost/posts/approval.py) ------------------------------------------------------------


def _may_approve(request: web.Request) -> bool:
    return approval.PERMISSION in request[API_KEY].permissions


class SubmitBody(Schema):
    scheduled_at = fields.String(validate=validate.Length(min=10, max=40))
    timezone = fields.String(validate=validate_timezone)

    @validates_schema
    def _time_for_zone(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if "timezone" in data and "scheduled_at" not in data:
            raise ValidationError("timezone needs scheduled_at", field_name="timezone")


class ApproveBody(SubmitBody):
    publish_now = StrictBoolean(load_default=False)

    @validates_schema
    def _one_time(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("publish_now") and "scheduled_at" in data:
            raise ValidationError("Give scheduled_at or publish_now, not both", field_name="publish_now")


class RejectBody(Schema):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=approval.MAX_REASON), _not_blank])


@routes.post("/api/posts/{id}/submit")
@describe("Submit a draft for approval, with the time it should go out (none: when approved)",
          body=SubmitBody, data={"post": views.Post}, errors=(409, 422))
@api_route("posts.write")
async def submit_post(request: web.Request) -> web.Response:
    body = await load_body(request, SubmitBody())
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"], for_update=True)
        requested_at, zone = await actions.requested_time(conn, post["workspace_id"], body)
        post = await approval.submit(conn, post, requested_at=requested_at, timezone=zone,
                                     actor=api_actor(request), now=now)
    return ok({"post": service.post_view(post)})


@routes.post("/api/posts/{id}/approve")
@describe("Approve a post pending approval: scheduled at the time it asked for (or a new one), or published now",
          body=ApproveBody, data={"post": views.Post}, errors=(409, 422))
@api_route(approval.PERMISSION)
async def approve_post(request: web.Request) -> web.Response:
    body = await load_body(request, ApproveBody())
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"], for_update=True)
        scheduled_at, zone = await actions.requested_time(conn, post["workspace_id"], body)
        post = await approval.approve(conn, post, scheduled_at=scheduled_at, timezone=zone,
                                      publish_now=body["publish_now"], actor=api_actor(request), now=now)
    notify_enqueued(request.app.get(WORKER))
    return ok({"post": service.post_view(post)})


@routes.post("/api/posts/{id}/reject")
@describe("Reject a post pending approval: it returns to draft with the reason", body=RejectBody,
          data={"post": views.Post}, errors=(409,))
@api_route(approval.PERMISSION)
async def reject_post(request: web.Request) -> web.Response:
    body = await load_body(request, RejectBody())
    async with request.app[DB].begin() as conn:
        post = await service.get_post(conn, request[WORKSPACE_ID], request.match_info["id"], for_update=True)
        post = await approval.reject(conn, post, reason=body["reason"].strip(), actor=api_actor(request),
                                     now=request.app[CLOCK].now())
    return ok({"post": service.post_view(post)})
