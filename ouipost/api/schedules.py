"""The five schedule endpoints of the reference: list, create, get, update, delete.

Bodies are checked by the schemas below (422 VALIDATION_ERROR with per-field details, unknown fields
refused, nothing written): a name of 1..100 characters, an IANA time zone, at least one slot, each
slot a day monday..sunday, a time HH:MM and one or more platforms (network names or account ids of
the workspace, checked by the service), no two slots on the same day and time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.api.auth import api_route
from ouipost.api.common import PageQuery, StrictBoolean, TrimmedString, pagination, validate_timezone
from ouipost.db.rows import ScheduleRow
from ouipost.http.context import CLOCK, DB, WORKSPACE_ID
from ouipost.http.idempotency import idempotent
from ouipost.http.web import load_body, load_query, ok
from ouipost.openapi import describe, views
from ouipost.publishing import service as publishing
from ouipost.schedules import service
from ouipost.schedules.slots import DAYS, Slot, parse_hhmm

routes = web.RouteTableDef()
MAX_SLOTS = 500


def _hhmm(value: str) -> None:
    try:
        parse_hhmm(value)
    except ValueError as exc:
        raise ValidationError(f"Use a 24-hour time as HH:MM, such as 09:00 (got {value!r})") from exc


def _day(value: str) -> None:
    if value not in DAYS:
        raise ValidationError(f"Unknown day {value!r}; use one of {', '.join(DAYS)}")


class SlotBody(Schema):
    day = fields.String(required=True, validate=_day)
    time = fields.String(required=True, validate=_hhmm)
    platforms = fields.List(
        TrimmedString(validate=validate.Length(min=1, max=64)), required=True, validate=validate.Length(min=1, max=50)
    )


class ScheduleBody(Schema):
    name = TrimmedString(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    timezone = fields.String(validate=validate_timezone)
    is_active = StrictBoolean()
    slots = fields.List(
        fields.Nested(SlotBody), required=True,
        validate=validate.Length(min=1, max=MAX_SLOTS, error="Give between {min} and {max} slots"),
    )

    @validates_schema
    def _distinct_slots(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        seen: dict[tuple[str, str], int] = {}
        problems: dict[int, dict[str, list[str]]] = {}
        for index, slot in enumerate(data.get("slots") or []):
            when = (slot["day"], slot["time"])
            if when in seen:
                problems[index] = {"time": [f"Slot {seen[when]} is already on {when[0]} at {when[1]}"]}
            else:
                seen[when] = index
        if problems:
            raise ValidationError(problems, field_name="slots")


class ScheduleUpdate(ScheduleBody):
    """PUT: every field optional, but a slot given is a whole slot (`partial` would reach into slots)."""

    name = TrimmedString(validate=validate.Length(min=1, max=100))
    slots = fields.List(
        fields.Nested(SlotBody),
        validate=validate.Length(min=1, max=MAX_SLOTS, error="Give between {min} and {max} slots"),
    )


@routes.get("/api/schedules")
@describe("List schedules", query=PageQuery, data={"schedules": [views.Schedule], "pagination": views.Pagination})
@api_route("schedules.read")
async def list_schedules(request: web.Request) -> web.Response:
    query = load_query(request, PageQuery())
    workspace_id = request[WORKSPACE_ID]
    async with request.app[DB].connect() as conn:
        rows, total = await service.list_schedules(conn, workspace_id, page=query["page"], limit=query["limit"])
        slots = await service.slots_of(conn, [r["id"] for r in rows])
    return ok({
        "schedules": [service.schedule_view(r, slots[r["id"]]) for r in rows],
        "pagination": pagination(query["page"], query["limit"], total),
    })


@routes.post("/api/schedules")
@describe("Create a schedule", body=ScheduleBody, data={"schedule": views.ScheduleDetail}, status=201,
          example=views.SCHEDULE_EXAMPLE)
@api_route("schedules.write")
@idempotent
async def create_schedule(request: web.Request) -> web.Response:
    body = await load_body(request, ScheduleBody())
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        row, slots = await service.create_schedule(conn, workspace_id=request[WORKSPACE_ID], fields=body, now=now)
        view = await _detail(conn, row, slots, now)
    return ok({"schedule": view}, status=201)


@routes.get("/api/schedules/{id}")
@describe("Get a schedule with its queue and stats", data={"schedule": views.ScheduleDetail})
@api_route("schedules.read")
async def get_schedule(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        row = await service.get_schedule(conn, request[WORKSPACE_ID], request.match_info["id"])
        slots = (await service.slots_of(conn, [row["id"]]))[row["id"]]
        view = await _detail(conn, row, slots, request.app[CLOCK].now())
    return ok({"schedule": view})


@routes.put("/api/schedules/{id}")
@describe("Update a schedule (re-plans its queue)",
          body=ScheduleUpdate,
          data={"schedule": views.ScheduleDetail, "unscheduled_posts": {"type": "array", "items": {"type": "string"}}})
@api_route("schedules.write")
async def update_schedule(request: web.Request) -> web.Response:
    """Partial update. New slots or a new zone re-plan the queue; is_active=false holds it; true
    again re-plans it from now. Queued posts that fit no slot any more go back to draft and are
    listed in `unscheduled_posts`."""
    changes = await load_body(request, ScheduleUpdate())
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        row = await service.get_schedule(conn, request[WORKSPACE_ID], request.match_info["id"], for_update=True)
        row, slots, moves = await publishing.change_schedule(conn, row, changes, now)
        view = await _detail(conn, row, slots, now)
    return ok({"schedule": view, "unscheduled_posts": [m.post_id for m in moves if m.slot_time is None]})


@routes.delete("/api/schedules/{id}")
@describe("Delete a schedule (its queued posts return to draft)", data=views.Message)
@api_route("schedules.write")
async def delete_schedule(request: web.Request) -> web.Response:
    """Deletes the schedule; its queued posts go back to draft."""
    async with request.app[DB].begin() as conn:
        row = await service.get_schedule(conn, request[WORKSPACE_ID], request.match_info["id"], for_update=True)
        await publishing.remove_schedule(conn, row, request.app[CLOCK].now())
    return ok({"message": "Schedule deleted successfully"})


async def _detail(
    conn: AsyncConnection, row: ScheduleRow, slots: list[Slot], now: datetime
) -> dict[str, Any]:
    return service.schedule_view(
        row, slots,
        upcoming=await service.upcoming_posts(conn, row),
        stats=await service.schedule_stats(conn, row, slots, now),
    )
