"""Recurring schedules of a workspace (/ui/w/{ws}/schedules): the list, create and edit with weekly
slots, pause/resume, delete after a confirmation, and a schedule's page with its upcoming queue.

The slot editor works without JavaScript: a fixed number of rows (day, time, networks and/or
accounts), empty rows ignored, and an "add more rows" button that re-renders the form with more.
The rows become the JSON shape of POST /api/schedules and go through the API's ScheduleBody /
ScheduleUpdate schemas and the same service functions, so errors are the API's own, each shown next
to its row's field. Mutations need posts.manage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import available_timezones

from aiohttp import web
from marshmallow import ValidationError as SchemaError
from multidict import MultiDictProxy

from ouipost.accounts import service as accounts
from ouipost.api.schedules import MAX_SLOTS, ScheduleBody, ScheduleUpdate
from ouipost.core import errors
from ouipost.db.rows import ScheduleRow
from ouipost.http.context import CLOCK, DB
from ouipost.platforms.registry import NETWORKS, get_platform
from ouipost.publishing import service as publishing
from ouipost.schedules import service
from ouipost.schedules.slots import DAYS, Slot, next_occurrence
from ouipost.ui.common import (
    UI_USER,
    UI_WORKSPACE,
    can_mutate,
    field_errors,
    page_numbers,
    redirect,
    render,
    ui_view,
)

routes = web.RouteTableDef()

MANAGE = "posts.manage"
PAGE_SIZE = 20
ROW_STEP = 7  # empty slot rows shown at first, and added by "add more rows"
QUEUE_SHOWN = 100
ACCOUNT_OPTIONS = 200  # accounts offered as slot targets (a workspace has about 100)
TIMEZONES = tuple(sorted(available_timezones() - {"localtime", "Factory"}))
DAY_LABELS = {day: day.title() for day in DAYS}


def _base(request: web.Request) -> str:
    return f"/ui/w/{request[UI_WORKSPACE]['id']}/schedules"


def _workspace_zone(request: web.Request) -> str:
    return (request[UI_WORKSPACE].get("settings") or {}).get("timezone") or "UTC"


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return max(1, min(int(raw), 10_000)) if raw.isdigit() else 1


def slots_summary(slots: Sequence[Slot], names: Mapping[str, str], shown: int = 4) -> str:
    """`Mon 09:00 (Bluesky, Twitter/X) · Wed 12:30 (...) · +3 more` in day order."""
    ordered = sorted(slots, key=lambda s: (DAYS.index(s.day), s.time))
    parts = [
        f"{s.day[:3].title()} {s.time} ({', '.join(names.get(p, p) for p in s.platforms)})" for s in ordered[:shown]
    ]
    if len(ordered) > shown:
        parts.append(f"+{len(ordered) - shown} more")
    return " · ".join(parts) if parts else "no slots"


async def _target_names(request: web.Request) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The workspace's accounts as slot targets, and a name for every network and account."""
    async with request.app[DB].connect() as conn:
        rows, _ = await accounts.list_accounts(conn, request[UI_WORKSPACE]["id"], platform=None, status=None,
                                               page=1, limit=ACCOUNT_OPTIONS)
    names = {n: get_platform(n).name for n in NETWORKS}
    options = []
    for row in rows:
        label = f"{get_platform(row['platform']).name}: {row['name']}"
        if row["username"]:
            label += f" (@{row['username']})"
        names[row["id"]] = label
        options.append((row["id"], label))
    return options, names


# ------------------------------------------------------------------------------------------------
# Reading


@routes.get("/ui/w/{ws}/schedules")
@ui_view(workspace=True)
async def schedules_page(request: web.Request) -> web.Response:
    workspace_id = request[UI_WORKSPACE]["id"]
    page = _page_number(request)
    now = request.app[CLOCK].now()
    async with request.app[DB].connect() as conn:
        rows, total = await service.list_schedules(conn, workspace_id, page=page, limit=PAGE_SIZE)
        slots = await service.slots_of(conn, [r["id"] for r in rows])
        queued = await service.queued_counts(conn, [r["id"] for r in rows])
    _, names = await _target_names(request)
    items = []
    for row in rows:
        following = next_occurrence(slots[row["id"]], row["timezone"], now) if row["is_active"] else None
        items.append({
            "row": row, "slot_count": len(slots[row["id"]]), "summary": slots_summary(slots[row["id"]], names),
            "next_slot": following.utc if following else None, "queued": queued.get(row["id"], 0),
        })
    return await render(request, "ui/schedules/list.html", {
        "items": items, "pages": page_numbers(page, PAGE_SIZE, total),
        "can_manage": can_mutate(request[UI_USER], MANAGE),
    })


# ------------------------------------------------------------------------------------------------
# The form: rows of slots <-> the API's JSON shape


def _row_count(form: MultiDictProxy[Any] | Mapping[str, Any], more: bool) -> int:
    raw = str(form.get("rows", ROW_STEP))
    count = int(raw) if raw.isdigit() else ROW_STEP
    count = max(ROW_STEP, min(count, MAX_SLOTS))
    return min(count + ROW_STEP, MAX_SLOTS + ROW_STEP) if more else count


def parse_schedule_form(form: MultiDictProxy[Any]) -> tuple[dict[str, Any], list[int], dict[str, Any]]:
    """The form as (payload for the API's schema, the form row of each payload slot, values to show
    again). Rows with no day, no time and no target are ignored; a partly filled row is sent as it
    is (missing parts left out), so the schema names what is missing."""
    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    rows = _row_count(form, more=False)
    shown_rows: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    row_of: list[int] = []
    for index in range(rows):
        day, time = text(f"slot-{index}-day"), text(f"slot-{index}-time")
        platforms = [p.strip() for p in form.getall(f"slot-{index}-platforms", []) if isinstance(p, str) and p.strip()]
        shown_rows.append({"day": day, "time": time, "platforms": platforms})
        if not day and not time and not platforms:
            continue
        slot: dict[str, Any] = {"platforms": platforms}
        if day:
            slot["day"] = day
        if time:
            slot["time"] = time
        slots.append(slot)
        row_of.append(index)
    payload: dict[str, Any] = {"slots": slots, "description": text("description") or None}
    for name in ("name", "timezone"):
        if text(name):
            payload[name] = text(name)
    values = {"name": text("name"), "description": text("description"), "timezone": text("timezone"),
              "rows": shown_rows}
    return payload, row_of, values


def _row_errors(problems: dict[str, list[str]], row_of: Sequence[int]) -> dict[str, list[str]]:
    """`slots.<payload index>.<field>` -> `slots.<form row>.<field>`, so errors land on their row."""
    mapped: dict[str, list[str]] = {}
    for key, messages in problems.items():
        parts = key.split(".")
        if len(parts) >= 2 and parts[0] == "slots" and parts[1].isdigit() and int(parts[1]) < len(row_of):
            parts[1] = str(row_of[int(parts[1])])
            key = ".".join(parts)
        mapped.setdefault(key, []).extend(messages)
    return mapped


def _values_of(row: ScheduleRow, slots: Sequence[Slot]) -> dict[str, Any]:
    return {
        "name": row["name"], "description": row["description"] or "", "timezone": row["timezone"],
        "rows": [{"day": s.day, "time": s.time, "platforms": list(s.platforms)} for s in slots],
    }


def _padded(values: dict[str, Any], rows: int) -> dict[str, Any]:
    shown = list(values["rows"])[:rows]
    shown += [{"day": "", "time": "", "platforms": []}] * (rows - len(shown))
    return {**values, "rows": shown}


async def _form_page(
    request: web.Request, *, values: dict[str, Any], errors_: dict[str, list[str]], rows: int,
    schedule: ScheduleRow | None, status: int = 200,
) -> web.Response:
    account_options, _ = await _target_names(request)
    return await render(request, "ui/schedules/form.html", {
        "values": _padded(values, rows), "row_count": rows, "errors": errors_, "schedule": schedule,
        "days": [(d, DAY_LABELS[d]) for d in DAYS], "timezones": [(z, z) for z in TIMEZONES],
        "networks": [(n, get_platform(n).name) for n in NETWORKS], "account_options": account_options,
    }, status=status)


# ------------------------------------------------------------------------------------------------
# Create and edit


@routes.get("/ui/w/{ws}/schedules/new")
@ui_view(MANAGE, workspace=True)
async def new_schedule_page(request: web.Request) -> web.Response:
    values = {"name": "", "description": "", "timezone": _workspace_zone(request), "rows": []}
    return await _form_page(request, values=values, errors_={}, rows=ROW_STEP, schedule=None)


@routes.post("/ui/w/{ws}/schedules/new")
@ui_view(MANAGE, workspace=True)
async def create_schedule(request: web.Request) -> web.Response:
    form = await request.post()
    payload, row_of, values = parse_schedule_form(form)
    if form.get("more_rows"):
        return await _form_page(request, values=values, errors_={}, rows=_row_count(form, more=True), schedule=None)
    rows = _row_count(form, more=False)
    now = request.app[CLOCK].now()
    try:
        body = ScheduleBody().load(payload)
        async with request.app[DB].begin() as conn:
            row, _ = await service.create_schedule(conn, workspace_id=request[UI_WORKSPACE]["id"], fields=body, now=now)
    except SchemaError as exc:
        problems = field_errors(errors.ValidationError("Invalid body", details=exc.normalized_messages()))
        return await _form_page(request, values=values, errors_=_row_errors(problems, row_of), rows=rows,
                                schedule=None, status=422)
    except errors.ValidationError as exc:
        return await _form_page(request, values=values, errors_=_row_errors(field_errors(exc), row_of), rows=rows,
                                schedule=None, status=422)
    return await redirect(request, f"{_base(request)}/{row['id']}", f"Schedule “{row['name']}” created.")


@routes.get("/ui/w/{ws}/schedules/{id}")
@ui_view(workspace=True)
async def schedule_page(request: web.Request) -> web.Response:
    workspace_id = request[UI_WORKSPACE]["id"]
    now = request.app[CLOCK].now()
    async with request.app[DB].connect() as conn:
        row = await service.get_schedule(conn, workspace_id, request.match_info["id"])
        slots = (await service.slots_of(conn, [row["id"]]))[row["id"]]
        stats = await service.schedule_stats(conn, row, slots, now)
        queue = await service.queue_with_posts(conn, row, limit=QUEUE_SHOWN)
        queued = (await service.queued_counts(conn, [row["id"]])).get(row["id"], 0)
    _, names = await _target_names(request)
    following = next_occurrence(slots, row["timezone"], now)
    return await render(request, "ui/schedules/detail.html", {
        "schedule": row,
        "slots": sorted(slots, key=lambda s: (DAYS.index(s.day), s.time)),
        "names": names, "stats": stats, "queue": queue, "queued": queued,
        "next_slot": following.utc if following else None,
        "can_manage": can_mutate(request[UI_USER], MANAGE),
    })


@routes.get("/ui/w/{ws}/schedules/{id}/edit")
@ui_view(MANAGE, workspace=True)
async def edit_schedule_page(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        row = await service.get_schedule(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
        slots = (await service.slots_of(conn, [row["id"]]))[row["id"]]
    rows = min(max(ROW_STEP, len(slots) + 3), MAX_SLOTS + ROW_STEP)
    return await _form_page(request, values=_values_of(row, slots), errors_={}, rows=rows, schedule=row)


@routes.post("/ui/w/{ws}/schedules/{id}/edit")
@ui_view(MANAGE, workspace=True)
async def edit_schedule(request: web.Request) -> web.Response:
    """Every field is sent again; new slots or a new zone re-plan the queue (posts that fit no slot
    any more return to draft, and the message says how many)."""
    form = await request.post()
    workspace_id = request[UI_WORKSPACE]["id"]
    async with request.app[DB].connect() as conn:
        current = await service.get_schedule(conn, workspace_id, request.match_info["id"])
    payload, row_of, values = parse_schedule_form(form)
    if form.get("more_rows"):
        return await _form_page(request, values=values, errors_={}, rows=_row_count(form, more=True),
                                schedule=current)
    rows = _row_count(form, more=False)
    now = request.app[CLOCK].now()
    try:
        changes = ScheduleUpdate().load(payload)
        async with request.app[DB].begin() as conn:
            row = await service.get_schedule(conn, workspace_id, current["id"], for_update=True)
            row, _, moves = await publishing.change_schedule(conn, row, changes, now)
    except SchemaError as exc:
        problems = field_errors(errors.ValidationError("Invalid body", details=exc.normalized_messages()))
        return await _form_page(request, values=values, errors_=_row_errors(problems, row_of), rows=rows,
                                schedule=current, status=422)
    except errors.ValidationError as exc:
        return await _form_page(request, values=values, errors_=_row_errors(field_errors(exc), row_of), rows=rows,
                                schedule=current, status=422)
    drafted = sum(1 for m in moves if m.slot_time is None)
    note = f" {drafted} queued post{'s' if drafted != 1 else ''} fit no slot any more and returned to draft." \
        if drafted else ""
    return await redirect(request, f"{_base(request)}/{row['id']}", f"Schedule “{row['name']}” saved.{note}")


# ------------------------------------------------------------------------------------------------
# Pause, resume, delete


async def _set_active(request: web.Request, active: bool) -> web.Response:
    workspace_id = request[UI_WORKSPACE]["id"]
    changes = ScheduleUpdate().load({"is_active": active})
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        row = await service.get_schedule(conn, workspace_id, request.match_info["id"], for_update=True)
        row, _, _ = await publishing.change_schedule(conn, row, changes, now)
    message = (f"Schedule “{row['name']}” resumed: its queue is planned again from now." if active
               else f"Schedule “{row['name']}” paused: nothing of its queue publishes until it is resumed.")
    return await redirect(request, f"{_base(request)}/{row['id']}", message)


@routes.post("/ui/w/{ws}/schedules/{id}/pause")
@ui_view(MANAGE, workspace=True)
async def pause_schedule(request: web.Request) -> web.Response:
    return await _set_active(request, False)


@routes.post("/ui/w/{ws}/schedules/{id}/resume")
@ui_view(MANAGE, workspace=True)
async def resume_schedule(request: web.Request) -> web.Response:
    return await _set_active(request, True)


@routes.get("/ui/w/{ws}/schedules/{id}/delete")
@ui_view(MANAGE, workspace=True)
async def delete_schedule_page(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        row = await service.get_schedule(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
        queued = (await service.queued_counts(conn, [row["id"]])).get(row["id"], 0)
    return await render(request, "ui/schedules/delete.html", {"schedule": row, "queued": queued})


@routes.post("/ui/w/{ws}/schedules/{id}/delete")
@ui_view(MANAGE, workspace=True)
async def delete_schedule(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    async with request.app[DB].begin() as conn:
        row = await service.get_schedule(conn, request[UI_WORKSPACE]["id"], request.match_info["id"], for_update=True)
        drafted = await publishing.remove_schedule(conn, row, now)
    note = f" {len(drafted)} queued post{'s' if len(drafted) != 1 else ''} returned to draft." if drafted else ""
    return await redirect(request, _base(request), f"Schedule “{row['name']}” deleted.{note}")

