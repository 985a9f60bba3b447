"""Posts in the admin UI: the composer (/ui/w/{ws}/compose, /posts/{id}/edit) with its live
validation endpoint, media upload and removal, the post page with its actions (publish now, retry,
unschedule, delete), the filterable posts list and the calendar (month and week).

Every form runs the API's own schemas (PostBody, ScheduleBody, PostQuery of ouipost/api/posts.py)
on the form's values turned into the API's JSON shape, then the same domain functions
(ouipost.posts.actions, ouipost.publishing.service); errors come back in the API's words next to their
fields. Mutations need posts.manage, as the API's posts.write.
"""

from __future__ import annotations

import asyncio
import calendar as calendar_module
import contextlib
import functools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.api.posts import PostBody, PostQuery, ScheduleBody
from ouipost.core import errors
from ouipost.db.rows import MediaRow, PostRow, TargetRow, WorkspaceRow, record
from ouipost.db.tables import media as media_table
from ouipost.db.tables import posts, social_accounts
from ouipost.http.context import CLOCK, DB, SETTINGS, STORAGE, WORKER
from ouipost.http.web import dumps, error_response, run_schema
from ouipost.jobs.queue import notify_enqueued
from ouipost.platforms.registry import NETWORKS, PLATFORMS
from ouipost.platforms.text import COUNTING_LABELS
from ouipost.posts import actions, approval, followups, rules, service, statuses, uploads
from ouipost.posts import calendar as posts_calendar
from ouipost.publishing import service as publishing
from ouipost.schedules import service as schedules_service
from ouipost.ui import localtime
from ouipost.ui.common import (
    UI_USER,
    UI_WORKSPACE,
    accepts_multipart,
    can_mutate,
    field_errors,
    form_dict,
    multipart_with_csrf,
    page_numbers,
    redirect,
    render,
    split_list,
    ui_actor,
    ui_view,
)

routes = web.RouteTableDef()

PAGE_SIZE = 20
# A day shows this many posts, then "+N more" linking to that day in the posts list.
PER_DAY = {"month": 6, "week": 50}
OVERRIDE_FIELDS = ("content", "title", "link")
ACTIONS = ("draft", "schedule", "queue", "publish")
MANAGE = "posts.manage"
FOLLOWUP_KEYS = ("thread", "thread_mode", "first_comment")


def _zone_name(workspace: WorkspaceRow) -> str:
    return str((workspace.get("settings") or {}).get("timezone") or "UTC")


def _zone(workspace: WorkspaceRow) -> ZoneInfo:
    try:
        return ZoneInfo(_zone_name(workspace))
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


@functools.cache
def _timezones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def _base(request: web.Request) -> str:
    return f"/ui/w/{request[UI_WORKSPACE]['id']}"


# ------------------------------------------------------------------------------------------------
# The composer's form, as the API's JSON body


def _text(value: Any) -> str:
    # Browsers send a textarea's line breaks as CRLF; the API counts what clients send as JSON.
    return str(value or "").replace("\r\n", "\n")


# The thread's parts are the fields `thread.N` (N from 0, one textarea each) with, for a part whose
# media were given through the API, `thread.N.media_ids` (a hidden field: the form has no media of
# its own per part, so saving it keeps them). A part left empty is not sent; the API's errors about
# part K of what was sent (`thread.K`, `thread.K.content`) go back to the field it came from.
_PART_FIELD = re.compile(r"^thread\.(\d{1,4})(\.media_ids)?$")


def thread_rows(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The thread's part fields as the form holds them, in order, empty ones included:
    [{content, media_ids}]."""
    indices = sorted({int(m.group(1)) for name in values if (m := _PART_FIELD.match(str(name)))})
    return [{"content": _text(values.get(f"thread.{i}")),
             "media_ids": split_list(str(values.get(f"thread.{i}.media_ids") or ""))} for i in indices]


def _filled(row: Mapping[str, Any]) -> bool:
    return bool(row["content"].strip() or row["media_ids"])


def sent_rows(values: Mapping[str, Any]) -> list[int]:
    """The form row (position in thread_rows) of each part the body sends, in order."""
    return [n for n, row in enumerate(thread_rows(values)) if _filled(row)]


def with_thread_rows(values: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`values` with its part fields numbered from 0 as `rows` (at least one part field, empty)."""
    kept = {k: v for k, v in values.items() if not _PART_FIELD.match(str(k))}
    for n, row in enumerate(rows or [{"content": "", "media_ids": []}]):
        kept[f"thread.{n}"] = row["content"]
        if row["media_ids"]:
            kept[f"thread.{n}.media_ids"] = ", ".join(row["media_ids"])
    return kept


def _followups_from_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """thread, thread_mode and first_comment as PostBody takes them: every field sent (the form shows
    the whole post), [] and None for none."""
    thread = []
    for row in thread_rows(values):
        if _filled(row):
            part: dict[str, Any] = {"content": row["content"]}
            if row["media_ids"]:
                part["media_ids"] = row["media_ids"]
            thread.append(part)
    comment = _text(values.get("first_comment"))
    return {
        "thread": thread,
        "thread_mode": str(values.get("thread_mode") or "").strip() or None,
        "first_comment": comment if comment.strip() else None,
    }


def post_body_from_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """The composer's fields in the shape of the API's PostBody: lists from checkboxes and comma
    lists, None for empty optional fields, platform_content only for overrides that say something,
    the thread's filled parts in order."""
    body: dict[str, Any] = {
        "content": _text(values.get("content")),
        "platforms": list(values.get("platforms") or []),
        "title": str(values.get("title") or "").strip() or None,
        "link": str(values.get("link") or "").strip() or None,
        "hashtags": split_list(str(values.get("hashtags") or "")),
        **_followups_from_form(values),
    }
    overrides: dict[str, dict[str, Any]] = {}
    for network in NETWORKS:
        override: dict[str, Any] = {}
        for name in OVERRIDE_FIELDS:
            raw = values.get(f"platform_content.{network}.{name}")
            value = _text(raw) if name == "content" else str(raw or "").strip()
            if value.strip():
                override[name] = value
        if override:
            overrides[network] = override
    if overrides:
        body["platform_content"] = overrides
    return body


def keep_other_overrides(body: dict[str, Any], saved: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`body` with the parts of the saved post's overrides the composer has no field for (hashtags,
    media_ids set through the API), so that saving the form does not drop them."""
    for network, override in (saved or {}).items():
        others = {k: v for k, v in override.items() if k not in OVERRIDE_FIELDS}
        if others:
            body.setdefault("platform_content", {}).setdefault(network, {}).update(others)
    return body


def schedule_body_from_form(values: Mapping[str, Any], action: str) -> dict[str, Any]:
    """The scheduling fields as the API's ScheduleBody: a time (and zone) or a recurring schedule."""
    if action == "queue":
        schedule_id = str(values.get("schedule_id") or "").strip()
        return {"schedule_id": schedule_id} if schedule_id else {}
    body: dict[str, Any] = {}
    if str(values.get("scheduled_at") or "").strip():
        body["scheduled_at"] = str(values["scheduled_at"]).strip()
    if str(values.get("timezone") or "").strip():
        body["timezone"] = str(values["timezone"]).strip()
    return body


_SENT_PART = re.compile(r"^thread\.(\d+)(\..*)?$")


def part_field(key: str, rows: Sequence[int] | None) -> str:
    """An error key about part K of the thread sent (`thread.K`, `thread.K.content`,
    `thread.K.media_ids`) as the field of the form row it came from (`thread.<row>`); without
    `rows` (no form: the post page), as `thread.K`."""
    match = _SENT_PART.match(key)
    if match is None:
        return key
    index = int(match.group(1))
    if rows is None:
        return f"thread.{index}"
    return f"thread.{rows[index]}" if index < len(rows) else "thread"


def error_label(key: str, names: Mapping[str, str]) -> str:
    """What an error key names on a page without the field: a network, a thread part, a field."""
    match = _SENT_PART.match(key)
    if match is not None:
        return f"Thread part {int(match.group(1)) + 1}"
    return names.get(key) or {"thread": "Thread", "thread_mode": "Thread mode",
                              "first_comment": "First comment"}.get(key, key)


def form_errors_of(
    exc: errors.ApiError, action: str = "draft", rows: Sequence[int] | None = None,
) -> dict[str, list[str]]:
    """The API's error details keyed by the composer's field names (overrides are
    `platform_content.<network>.<field>`; a thread part's are its field's, `thread.<row>`, with
    `rows` from sent_rows; rule errors stay keyed by network). Errors that are not about fields
    (409 for a post past editing, 404) are the form's, in the API's message."""
    if not isinstance(exc, errors.ValidationError):
        return {"_form": [exc.message]}
    found: dict[str, list[str]] = {}
    for key, messages in field_errors(exc).items():
        name = part_field(key.replace(".value.", ".").replace(".key", ""), rows)
        if action == "queue" and name == "scheduled_at":
            name = "schedule_id"  # "Give either scheduled_at or schedule_id": the queue form has the latter
        found.setdefault(name, [])
        found[name].extend(m for m in messages if m not in found[name])
    return found


def followup_field_errors(report: rules.Report, rows: Sequence[int]) -> dict[str, list[str]]:
    """The live check's follow-up errors (thread, thread.K, thread_mode, first_comment) keyed by the
    composer's fields, as a save would show them."""
    found: dict[str, list[str]] = {}
    for key, messages in report.errors.items():
        if key in FOLLOWUP_KEYS or _SENT_PART.match(key):
            found.setdefault(part_field(key, rows), []).extend(messages)
    return found


def counters(report: rules.Report) -> list[dict[str, Any]]:
    """Each targeted network's count against its limit, as the composer shows it (red when over the
    limit or when the network's rules refuse the text)."""
    shown = []
    for network, info in report.platforms.items():
        problems = report.errors.get(network, [])
        shown.append({
            "network": network,
            "name": PLATFORMS[network].name,
            "characters": info["characters"],
            "max_characters": info["max_characters"],
            "counting": COUNTING_LABELS.get(info["counting"], info["counting"]),
            "over": info["characters"] > info["max_characters"] or bool(problems),
            "errors": problems,
            "publish_errors": report.publish_errors.get(network, []),
        })
    return shown


def values_from_post(post: PostRow, zone: str) -> dict[str, Any]:
    """A saved post as the composer's field values."""
    values: dict[str, Any] = {
        "content": post["content"], "platforms": list(post["platforms"] or []),
        "title": post["title"] or "", "link": post["link"] or "", "hashtags": ", ".join(post["hashtags"] or []),
        "timezone": post["scheduled_timezone"] or zone, "scheduled_at": "", "schedule_id": "",
    }
    if post["scheduled_at"] is not None:
        at = post["scheduled_at"]
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        values["scheduled_at"] = at.astimezone(ZoneInfo(values["timezone"])).strftime("%Y-%m-%dT%H:%M")
    for network, override in (post["platform_content"] or {}).items():
        for name in OVERRIDE_FIELDS:
            if override.get(name):
                values[f"platform_content.{network}.{name}"] = override[name]
    values["first_comment"] = post.get("first_comment") or ""
    values["thread_mode"] = post.get("thread_mode") or followups.ThreadMode.THREAD
    parts = [{"content": part["content"], "media_ids": list(part.get("media_ids") or [])}
             for part in followups.thread_of(post)]
    return with_thread_rows(values, parts)


async def _accounts(conn: AsyncConnection, workspace_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(social_accounts.c.id, social_accounts.c.platform, social_accounts.c.name,
                  social_accounts.c.username, social_accounts.c.status, social_accounts.c.is_default)
        .where(social_accounts.c.workspace_id == workspace_id)
        .order_by(social_accounts.c.platform, social_accounts.c.name, social_accounts.c.id)
    )
    return [dict(r) for r in rows.mappings()]


def target_groups(accounts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Target checkboxes by network: the network's default account (its name as the target, which
    is also how a draft names a network that has no account yet), then each connected account."""
    by_network: dict[str, list[Mapping[str, Any]]] = {n: [] for n in NETWORKS}
    for account in accounts:
        by_network.setdefault(account["platform"], []).append(account)
    groups = []
    for network in NETWORKS:
        owned = by_network[network]
        options = [(network, "Default account" if owned else "No account connected yet (draft only)")]
        for account in owned:
            label = account["name"] + (f" (@{account['username']})" if account["username"] else "")
            if account["status"] != "active":
                label += f" — {account['status']}"
            options.append((account["id"], label))
        groups.append({"network": network, "name": PLATFORMS[network].name, "options": options,
                       "has_accounts": bool(owned)})
    return groups


async def _composer_context(
    conn: AsyncConnection, request: web.Request, post: Mapping[str, Any] | None,
) -> dict[str, Any]:
    workspace = request[UI_WORKSPACE]
    accounts = await _accounts(conn, workspace["id"])
    schedules, _ = await schedules_service.list_schedules(conn, workspace["id"], page=1, limit=100)
    context: dict[str, Any] = {
        "groups": target_groups(accounts),
        "networks": [(n, PLATFORMS[n].name) for n in NETWORKS],
        "schedules": [(s["id"], s["name"] + ("" if s["is_active"] else " (paused)")) for s in schedules],
        "timezones": _timezones(),
        "zone": _zone_name(workspace),
        "post": post,
        "media": [],
        "media_urls": {},
        "max_thread_parts": followups.MAX_THREAD_PARTS,
        "thread_modes": [(followups.ThreadMode.THREAD, "Reply chain only"),
                         (followups.ThreadMode.FIRST_COMMENT, "First part as a comment where there are no chains")],
        # Named from the registry's flags: where a thread is a reply chain, where only comments exist.
        "chain_networks": [s.name for s in PLATFORMS.values() if s.reply_chains],
        "comment_networks": [s.name for s in PLATFORMS.values() if s.comments and not s.reply_chains],
        "silent_networks": [s.name for s in PLATFORMS.values() if not s.comments],
    }
    if post is not None:
        media = (await service.media_of(conn, [post["id"]]))[post["id"]]
        context["media"] = media
        context["media_urls"] = rules.media_urls(request.app[STORAGE], media)
    return context


async def _render_composer(
    request: web.Request, post: Mapping[str, Any] | None, values: Mapping[str, Any],
    problems: Mapping[str, list[str]], shown: Sequence[Mapping[str, Any]] = (), status: int = 200,
    **extra: Any,
) -> web.Response:
    """The composer with `values` (its thread's part fields numbered from 0, at least one shown)."""
    async with request.app[DB].connect() as conn:
        context = await _composer_context(conn, request, post)
    values = with_thread_rows(values, thread_rows(values))
    return await render(request, "ui/posts/compose.html", {
        **context, "values": values, "errors": problems, "counters": shown, "upload_errors": {},
        "thread_parts": thread_rows(values), **extra,
    }, status=status)


async def _check_form(
    conn: AsyncConnection, workspace_id: str, body: Mapping[str, Any], post_id: str | None,
) -> rules.Report:
    """POST /api/posts/validate's check of `body`; on the edit page with the media the post already
    has (a network that needs an image then sees it)."""
    media: list[MediaRow] = []
    if post_id:
        post = await service.get_post(conn, workspace_id, post_id)
        media = (await service.media_of(conn, [post["id"]]))[post["id"]]
    return await actions.validate_body(conn, workspace_id, body, media)


async def _live_counters(
    request: web.Request, body: Mapping[str, Any], post_id: str | None = None,
) -> list[dict[str, Any]]:
    """The counters a re-rendered composer shows (as the live endpoint would); none when the
    targets themselves are wrong."""
    try:
        async with request.app[DB].connect() as conn:
            return counters(await _check_form(conn, request[UI_WORKSPACE]["id"], body, post_id))
    except errors.ApiError:
        return []


@routes.get("/ui/w/{ws}/compose")
@ui_view(MANAGE, workspace=True)
async def compose_page(request: web.Request) -> web.Response:
    zone = _zone_name(request[UI_WORKSPACE])
    values = {"content": "", "platforms": [], "timezone": zone, "hashtags": ", ".join(
        (request[UI_WORKSPACE].get("settings") or {}).get("default_hashtags") or [])}
    return await _render_composer(request, None, values, {})


@routes.get("/ui/w/{ws}/posts/{id}/edit")
@ui_view(MANAGE, workspace=True)
async def edit_page(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        post = await service.get_post(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
    service.ensure_editable(post)
    values = values_from_post(post, _zone_name(request[UI_WORKSPACE]))
    body = keep_other_overrides(post_body_from_form(values), post["platform_content"])
    return await _render_composer(request, post, values, {}, await _live_counters(request, body, post["id"]))


@routes.post("/ui/w/{ws}/compose")
@ui_view(MANAGE, workspace=True)
async def compose_submit(request: web.Request) -> web.Response:
    return await _save(request, None)


@routes.post("/ui/w/{ws}/posts/{id}/edit")
@ui_view(MANAGE, workspace=True)
async def edit_submit(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        post = await service.get_post(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
    return await _save(request, post)


async def _change_thread_rows(
    request: web.Request, existing: PostRow | None, values: Mapping[str, Any],
) -> web.Response:
    """"Add a part" and "Remove" without JavaScript: the form again, nothing saved, with one more
    empty part field or without the one removed, that part's field focused (which scrolls to it);
    the script does the same in the page."""
    if existing is not None:
        service.ensure_editable(existing)
    rows = thread_rows(values)
    removed = str(values.get("thread_remove") or "")
    if removed.isdigit():
        focus = int(removed)
        if focus < len(rows):
            del rows[focus]
    else:
        if len(rows) < followups.MAX_THREAD_PARTS:
            rows.append({"content": "", "media_ids": []})
        focus = len(rows) - 1
    values = with_thread_rows(values, rows)
    body = post_body_from_form(values)
    if existing is not None:
        body = keep_other_overrides(body, existing["platform_content"])
    shown: list[dict[str, Any]] = []
    with contextlib.suppress(errors.ValidationError):
        shown = await _live_counters(request, run_schema(PostBody(), body),
                                     existing["id"] if existing is not None else None)
    return await _render_composer(request, existing, values, {}, shown, focus_part=max(min(focus, len(rows) - 1), 0))


async def _save(request: web.Request, existing: PostRow | None) -> web.Response:
    """Create or update the post and then, in the same transaction, schedule, queue or publish it
    as the pressed button says; any error rolls everything back and re-renders the form."""
    values = form_dict(await request.post(), lists=("platforms",))
    if "thread_add" in values or "thread_remove" in values:
        return await _change_thread_rows(request, existing, values)
    rows = sent_rows(values)
    action = str(values.get("action") or "draft")
    if action not in ACTIONS:
        action = "draft"
    workspace_id, now = request[UI_WORKSPACE]["id"], request.app[CLOCK].now()
    body = post_body_from_form(values)
    if existing is not None:
        body = keep_other_overrides(body, existing["platform_content"])
    problems: dict[str, list[str]] = {}
    post_fields: dict[str, Any] = {}
    schedule_fields: dict[str, Any] = {}
    try:
        post_fields = run_schema(PostBody(), body)
    except errors.ValidationError as exc:
        problems.update(form_errors_of(exc, rows=rows))
    if action in ("schedule", "queue"):
        try:
            schedule_fields = run_schema(ScheduleBody(), schedule_body_from_form(values, action))
        except errors.ValidationError as exc:
            for key, messages in form_errors_of(exc, action).items():
                problems.setdefault(key, []).extend(messages)
    if not problems:
        try:
            async with request.app[DB].begin() as conn:
                if existing is None:
                    post = await actions.create_draft(conn, workspace_id, post_fields, now)
                else:
                    post, _ = await actions.update_draft(conn, workspace_id, existing["id"], post_fields, now)
                if action in ("schedule", "queue", "publish"):
                    await approval.ensure_may_publish(conn, workspace_id, may_approve=_may_approve(request))
                if action in ("schedule", "queue"):
                    if action == "queue":
                        # A missing schedule is a wrong choice in this form, not a missing page.
                        try:
                            await schedules_service.get_schedule(conn, workspace_id, schedule_fields["schedule_id"])
                        except errors.NotFound as exc:
                            raise errors.ValidationError(
                                exc.message, details={"schedule_id": [exc.message]}) from exc
                    post = await actions.schedule(conn, post, schedule_fields, now)
                elif action == "publish":
                    post = await publishing.request_publish(conn, post, now)
        except errors.ApiError as exc:
            problems = form_errors_of(exc, action, rows)
            status = exc.status
        else:
            return await _after_save(request, post, action, created=existing is None)
    else:
        status = 422
    existing_id = existing["id"] if existing is not None else None
    shown = await _live_counters(request, post_fields, existing_id) if post_fields else []
    return await _render_composer(request, existing, values, problems, shown, status=status)


async def _after_save(
    request: web.Request, post: Mapping[str, Any], action: str, *, created: bool,
) -> web.Response:
    base = _base(request)
    if action == "publish":
        notify_enqueued(request.app.get(WORKER))
        return await _publish_outcome(request, post["id"])
    if action in ("schedule", "queue"):
        notify_enqueued(request.app.get(WORKER))
        zone = post["scheduled_timezone"] or _zone_name(request[UI_WORKSPACE])
        when = localtime(post["scheduled_at"], zone) if post["scheduled_at"] else "its schedule's next free slot"
        return await redirect(request, f"{base}/posts/{post['id']}", f"Scheduled for {when}.")
    if created:
        return await redirect(request, f"{base}/posts/{post['id']}/edit",
                              "Draft saved. You can add media to it below.")
    return await redirect(request, f"{base}/posts/{post['id']}", "Changes saved.")


async def _publish_outcome(request: web.Request, post_id: str) -> web.Response:
    """Wait a few seconds for the worker, as POST /api/posts/{id}/publish does, then show the post."""
    post, _, done = await actions.wait_for_outcome(
        request.app[DB], request[UI_WORKSPACE]["id"], post_id, actions.PUBLISH_WAIT_SECONDS)
    messages = {
        "published": ("Published.", "success"),
        "partially_published": ("Published on some networks only; see each network's result below.", "warning"),
        "failed": ("Publishing failed; see each network's error below.", "error"),
    }
    text, kind = messages.get(post["status"], ("Publishing is under way; reload this page for the result.", "info"))
    if not done:
        text, kind = "Publishing is under way; reload this page for the result.", "info"
    return await redirect(request, f"{_base(request)}/posts/{post_id}", text, kind)


@routes.post("/ui/w/{ws}/compose/validate")
@ui_view(MANAGE, workspace=True)
async def compose_validate(request: web.Request) -> web.Response:
    """The composer's live check (JSON for posts.js): the same schema and the same domain check as
    POST /api/posts/validate, on the form's fields; `data` is that endpoint's answer. On the edit
    page (`post_id`) the post's media count as they will when it is scheduled."""
    values = form_dict(await request.post(), lists=("platforms",))
    try:
        body = run_schema(PostBody(), post_body_from_form(values))
        async with request.app[DB].connect() as conn:
            report = await _check_form(conn, request[UI_WORKSPACE]["id"], body, values.get("post_id") or None)
    except errors.ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    # `data` is exactly what the API answers; `counters` is what the page draws from it, and
    # `fields` the follow-ups' errors keyed by the form's fields (a thread part's by its field).
    return web.json_response({
        "success": True, "data": report.as_dict(), "counters": counters(report),
        "fields": followup_field_errors(report, sent_rows(values)),
    }, dumps=dumps)


# ------------------------------------------------------------------------------------------------
# Media: upload to a post, remove


@routes.post("/ui/w/{ws}/posts/{id}/media")
@ui_view(MANAGE, workspace=True)
@accepts_multipart
async def upload_media(request: web.Request) -> web.Response:
    """csrf_token, alt_text, then the file, streamed to disk as the API's upload does; the same
    probing and the same attach step (its media rules per network) follow."""
    workspace_id, settings = request[UI_WORKSPACE]["id"], request.app[SETTINGS]
    async with request.app[DB].connect() as conn:
        post = await service.get_post(conn, workspace_id, request.match_info["id"])
    service.ensure_editable(post)
    reader = await multipart_with_csrf(request)
    tmp_dir = Path(settings.data_dir) / "tmp"
    fields: dict[str, str] = {}
    try:
        received, fields = await uploads.read_form(reader, uploads.caps(settings), tmp_dir)
        try:
            probed = await asyncio.to_thread(uploads.probe, received, tmp_dir)
            await uploads.attach(request.app[DB], request.app[STORAGE], post, received, probed, fields,
                                 request.app[CLOCK].now())
        finally:
            uploads.discard(received)
    except errors.ApiError as exc:
        # Size and type refusals are about the file; rule errors stay keyed by network.
        problems = {"file": [exc.message]} if exc.status in (413, 415) else form_errors_of(exc)
        if set(problems) == {"_form"}:
            problems = {"file": problems["_form"]}
        values = values_from_post(post, _zone_name(request[UI_WORKSPACE]))
        return await _render_composer(request, post, values, {}, [], status=exc.status,
                                      upload_errors=problems, upload_alt=fields.get("alt_text", ""))
    return await redirect(request, f"{_base(request)}/posts/{post['id']}/edit", "Media added.")


async def _media_row(conn: AsyncConnection, request: web.Request) -> tuple[PostRow, MediaRow]:
    post = await service.get_post(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
    row = (await conn.execute(sa.select(media_table).where(
        media_table.c.id == request.match_info["media_id"], media_table.c.post_id == post["id"],
    ))).mappings().first()
    if row is None:
        raise errors.NotFound("Media not found")
    return post, record(MediaRow, row)


@routes.get("/ui/w/{ws}/posts/{id}/media/{media_id}/delete")
@ui_view(MANAGE, workspace=True)
async def media_delete_page(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        post, row = await _media_row(conn, request)
    return await render(request, "ui/posts/media_delete.html", {
        "post": post, "item": row, "urls": rules.media_urls(request.app[STORAGE], [row])[row["id"]],
        "locked": post["status"] in statuses.MEDIA_LOCKED,
    })


@routes.post("/ui/w/{ws}/posts/{id}/media/{media_id}/delete")
@ui_view(MANAGE, workspace=True)
async def media_delete(request: web.Request) -> web.Response:
    """The API's DELETE /api/media/{id}: refused while the post is publishing or published."""
    async with request.app[DB].begin() as conn:
        post, row = await _media_row(conn, request)
        row = await uploads.remove(conn, post["workspace_id"], row["id"], request.app[CLOCK].now())
    await rules.forget_media_files(request.app[STORAGE], [row])
    return await redirect(request, f"{_base(request)}/posts/{post['id']}/edit", "Media removed.")


# ------------------------------------------------------------------------------------------------
# The post page and its actions


async def _post_page_context(conn: AsyncConnection, request: web.Request) -> dict[str, Any]:
    post = await service.get_post(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
    targets = (await service.targets_of(conn, [post["id"]]))[post["id"]]
    media = (await service.media_of(conn, [post["id"]]))[post["id"]]
    # Each network's follow-ups as GET /api/posts/{id} shows them under platform_posts[].parts.
    parts = {target_id: [followups.part_view(p) for p in rows]
             for target_id, rows in (await followups.parts_of(conn, [post["id"]])).items()}
    failed_parts = any(p["status"] == followups.PartStatus.FAILED for rows in parts.values() for p in rows)
    account_ids = [t["account_id"] for t in targets if t["account_id"]]
    names: dict[str, str] = {}
    if account_ids:
        rows = await conn.execute(sa.select(social_accounts.c.id, social_accounts.c.name).where(
            social_accounts.c.id.in_(account_ids)))
        names = {r.id: r.name for r in rows}
    return {
        "post": post, "targets": targets, "account_names": names, "media": media,
        "media_urls": rules.media_urls(request.app[STORAGE], media),
        "network_names": {n: PLATFORMS[n].name for n in NETWORKS},
        "editable": post["status"] in statuses.EDITABLE,
        "publishable": post["status"] in statuses.SCHEDULABLE,
        "retryable": post["status"] in statuses.RETRYABLE
        and (any(t["status"] == "failed" for t in targets) or failed_parts),
        "failed_targets": any(t["status"] == "failed" for t in targets),
        "parts": parts,
        "thread": followups.thread_of(post),
        "can_manage": can_mutate(request[UI_USER], MANAGE),
        "zone": _zone_name(request[UI_WORKSPACE]),
        "approval_required": bool((request[UI_WORKSPACE].get("settings") or {}).get("approval_required")),
        "may_approve": _may_approve(request),
        "action_errors": {},
        "error_labels": {},
    }


async def _render_post(request: web.Request, problems: Mapping[str, list[str]] | None = None,
                       status: int = 200) -> web.Response:
    async with request.app[DB].connect() as conn:
        context = await _post_page_context(conn, request)
    context["action_errors"] = dict(problems or {})
    context["error_labels"] = {key: error_label(key, context["network_names"]) for key in context["action_errors"]}
    return await render(request, "ui/posts/post.html", context, status=status)


@routes.get("/ui/w/{ws}/posts/{id}")
@ui_view(workspace=True)
async def post_page(request: web.Request) -> web.Response:
    return await _render_post(request)


@routes.post("/ui/w/{ws}/posts/{id}/publish")
@ui_view(MANAGE, workspace=True)
async def publish_now(request: web.Request) -> web.Response:
    """Publish now, or retry a failed/partially published post: POST /api/posts/{id}/publish's
    function, which sends again only the targets that failed."""
    workspace_id = request[UI_WORKSPACE]["id"]
    try:
        async with request.app[DB].begin() as conn:
            post = await service.get_post(conn, workspace_id, request.match_info["id"], for_update=True)
            await approval.ensure_may_publish(conn, workspace_id, may_approve=_may_approve(request))
            await publishing.request_publish(conn, post, request.app[CLOCK].now())
    except (errors.ValidationError, errors.Conflict, errors.Forbidden) as exc:
        return await _render_post(request, form_errors_of(exc), status=exc.status)
    notify_enqueued(request.app.get(WORKER))
    return await _publish_outcome(request, post["id"])


def _may_approve(request: web.Request) -> bool:
    return bool(request[UI_USER].can(approval.PERMISSION)) and can_mutate(request[UI_USER], MANAGE)


def _requested_instant(request: web.Request, values: Mapping[str, Any]) -> datetime | None:
    """The form's optional `scheduled_at` (a local date and time in the workspace's zone, as the
    composer's), or None when left empty. 422 when it is not a date and time."""
    text = str(values.get("scheduled_at") or "").strip()
    return actions.scheduled_instant(text, _zone_name(request[UI_WORKSPACE])) if text else None


async def _approval_step(request: web.Request, step: str) -> web.Response:
    """Submit, approve or reject through ouipost/posts/approval.py, as the API's routes do."""
    values = form_dict(await request.post())
    workspace_id, now, actor = request[UI_WORKSPACE]["id"], request.app[CLOCK].now(), ui_actor(request)
    zone = _zone_name(request[UI_WORKSPACE])
    try:
        if step != "submit" and not _may_approve(request):
            raise errors.Forbidden(f"Your account lacks the {approval.PERMISSION} permission")
        async with request.app[DB].begin() as conn:
            post = await service.get_post(conn, workspace_id, request.match_info["id"], for_update=True)
            if step == "submit":
                when = _requested_instant(request, values)
                post = await approval.submit(conn, post, requested_at=when, timezone=zone if when else None,
                                             actor=actor, now=now)
            elif step == "approve":
                when = _requested_instant(request, values)
                post = await approval.approve(conn, post, scheduled_at=when, timezone=zone if when else None,
                                              publish_now=values.get("publish_now") == "on", actor=actor, now=now)
            else:
                reason = str(values.get("reason") or "").strip()
                if not reason or len(reason) > approval.MAX_REASON:
                    raise errors.ValidationError("Say why the post is rejected", details={
                        "reason": [f"Say why the post is rejected, in 1 to {approval.MAX_REASON} characters"]})
                post = await approval.reject(conn, post, reason=reason, actor=actor, now=now)
    except (errors.ValidationError, errors.Conflict, errors.Forbidden) as exc:
        return await _render_post(request, form_errors_of(exc), status=exc.status)
    target = f"{_base(request)}/posts/{post['id']}"
    if step == "submit":
        return await redirect(request, target, "Submitted for approval.")
    if step == "reject":
        return await redirect(request, target, "Rejected: the post is a draft again, with your reason.")
    notify_enqueued(request.app.get(WORKER))
    if post["status"] == "publishing":
        return await _publish_outcome(request, post["id"])
    return await redirect(request, target, f"Approved: scheduled for {localtime(post['scheduled_at'], zone)}.")


@routes.post("/ui/w/{ws}/posts/{id}/submit")
@ui_view(MANAGE, workspace=True)
async def submit_for_approval(request: web.Request) -> web.Response:
    return await _approval_step(request, "submit")


@routes.post("/ui/w/{ws}/posts/{id}/approve")
@ui_view(MANAGE, workspace=True)
async def approve(request: web.Request) -> web.Response:
    return await _approval_step(request, "approve")


@routes.post("/ui/w/{ws}/posts/{id}/reject")
@ui_view(MANAGE, workspace=True)
async def reject(request: web.Request) -> web.Response:
    return await _approval_step(request, "reject")


@routes.post("/ui/w/{ws}/posts/{id}/unschedule")
@ui_view(MANAGE, workspace=True)
async def unschedule(request: web.Request) -> web.Response:
    try:
        async with request.app[DB].begin() as conn:
            post = await service.get_post(conn, request[UI_WORKSPACE]["id"], request.match_info["id"], for_update=True)
            await publishing.unschedule_post(conn, post, request.app[CLOCK].now())
    except errors.Conflict as exc:
        return await _render_post(request, form_errors_of(exc), status=exc.status)
    return await redirect(request, f"{_base(request)}/posts/{post['id']}", "Unscheduled: the post is a draft again.")


@routes.get("/ui/w/{ws}/posts/{id}/delete")
@ui_view(MANAGE, workspace=True)
async def delete_page(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        context = await _post_page_context(conn, request)
    return await render(request, "ui/posts/delete.html", context)


@routes.post("/ui/w/{ws}/posts/{id}/delete")
@ui_view(MANAGE, workspace=True)
async def delete_post(request: web.Request) -> web.Response:
    async with request.app[DB].begin() as conn:
        post, media = await actions.delete(conn, request[UI_WORKSPACE]["id"], request.match_info["id"])
    await rules.forget_media_files(request.app[STORAGE], media)
    return await redirect(request, f"{_base(request)}/posts", actions.deletion_message(post))


# ------------------------------------------------------------------------------------------------
# The posts list


def _local_day(value: str, zone: ZoneInfo, *, end: bool) -> str:
    """A YYYY-MM-DD of the workspace's zone as the instant the API's from/to expect (ISO, with its
    offset): the day's first instant, or with `end` its last."""
    day = date.fromisoformat(value)
    start = datetime.combine(day, time(0), tzinfo=zone)
    if end:
        start = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone) - timedelta(microseconds=1)
    return start.isoformat()


def list_query_from(request: web.Request, zone: ZoneInfo) -> tuple[dict[str, Any], dict[str, Any],
                                                                  dict[str, list[str]]]:
    """(the filters as typed, the loaded PostQuery plus `q`, errors by field)."""
    typed = {name: request.query.get(name, "").strip() for name in ("status", "network", "from", "to", "q", "page")}
    raw: dict[str, Any] = {"limit": PAGE_SIZE}
    problems: dict[str, list[str]] = {}
    if typed["page"]:
        raw["page"] = typed["page"]
    if typed["status"]:
        raw["status"] = typed["status"]
    if typed["network"]:
        raw["platform"] = typed["network"]
    for name in ("from", "to"):
        if typed[name]:
            try:
                raw[name] = _local_day(typed[name], zone, end=name == "to")
            except ValueError:
                problems[name] = ["Not a valid date."]
    loaded: dict[str, Any] = {"page": 1, "limit": PAGE_SIZE}
    try:
        loaded = run_schema(PostQuery(), raw)
    except errors.ValidationError as exc:
        for key, messages in field_errors(exc).items():
            # The form names the API's `platform` "network"; a bad page number has no field of its own.
            problems.setdefault({"platform": "network", "page": "_form", "limit": "_form"}.get(key, key),
                                []).extend(messages)
    loaded["q"] = typed["q"][:200]
    return typed, loaded, problems


@routes.get("/ui/w/{ws}/posts")
@ui_view(workspace=True)
async def posts_list(request: web.Request) -> web.Response:
    workspace = request[UI_WORKSPACE]
    zone = _zone(workspace)
    typed, query, problems = list_query_from(request, zone)
    rows: list[PostRow] = []
    targets: dict[str, list[TargetRow]] = {}
    total = 0
    if not problems:
        clauses = service.list_filter(
            workspace["id"], status=query.get("status"), platform=query.get("platform"),
            start=query.get("from_"), end=query.get("to"),
        )
        if query["q"]:
            # Bound to the workspace by the clause above; LIKE with % and _ taken literally.
            clauses.append(posts.c.content.icontains(query["q"], autoescape=True))
        async with request.app[DB].connect() as conn:
            rows, total = await service.list_posts(conn, clauses, page=query["page"], limit=PAGE_SIZE)
            targets = await service.targets_of(conn, [r["id"] for r in rows])
    filters = {k: v for k, v in typed.items() if v and k != "page"}

    def page_url(number: int) -> str:
        return f"/ui/w/{workspace['id']}/posts?" + urlencode({**filters, "page": number})

    return await render(request, "ui/posts/list.html", {
        "posts": rows, "targets": targets, "values": typed, "errors": problems,
        "pages": page_numbers(query.get("page", 1), PAGE_SIZE, total), "page_url": page_url,
        "status_options": [("", "Any status")] + [(s, s.replace("_", " ")) for s in statuses.POST_STATUSES],
        "network_options": [("", "Any network")] + [(n, PLATFORMS[n].name) for n in NETWORKS],
        "network_names": {n: PLATFORMS[n].name for n in NETWORKS},
        "zone": _zone_name(workspace), "can_manage": can_mutate(request[UI_USER], MANAGE),
        "filtered": bool(filters),
    }, status=422 if problems else 200)


# ------------------------------------------------------------------------------------------------
# The calendar


def calendar_range(view: str, day: date) -> tuple[date, date, list[list[date]]]:
    """(first day shown, the day after the last, the weeks as rows of 7 days from Monday)."""
    if view == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7), [[start + timedelta(days=i) for i in range(7)]]
    first = day.replace(day=1)
    start = first - timedelta(days=first.weekday())
    last = day.replace(day=calendar_module.monthrange(day.year, day.month)[1])
    end = last + timedelta(days=7 - last.weekday())
    weeks = [[start + timedelta(days=w * 7 + i) for i in range(7)] for w in range((end - start).days // 7)]
    return start, end, weeks


@routes.get("/ui/w/{ws}/calendar")
@ui_view(workspace=True)
async def calendar_page(request: web.Request) -> web.Response:
    workspace = request[UI_WORKSPACE]
    zone = _zone(workspace)
    today = request.app[CLOCK].now().astimezone(zone).date()
    view = "week" if request.query.get("view") == "week" else "month"
    day = today
    with contextlib.suppress(ValueError):
        day = date.fromisoformat(request.query.get("date", ""))
    first, after, weeks = calendar_range(view, day)
    days = [first + timedelta(days=i) for i in range((after - first).days)]
    # Each local midnight as an instant: DST days are 23 or 25 hours long, never shifted.
    starts = [datetime.combine(d, time(0), tzinfo=zone).astimezone(UTC) for d in [*days, after]]
    async with request.app[DB].connect() as conn:
        found = await posts_calendar.posts_by_day(conn, workspace["id"], starts, PER_DAY[view])
    by_day = {
        d: {"items": [{**item, "local": item["at"].astimezone(zone)} for item in items], "total": total}
        for d, items, total in zip(days, found.posts, found.totals, strict=True)
    }
    if view == "week":
        prev_day, next_day = day - timedelta(days=7), day + timedelta(days=7)
        title = f"Week of {first.strftime('%d %B %Y')}"
    else:
        prev_day = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
        next_day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        title = day.strftime("%B %Y")
    base = f"/ui/w/{workspace['id']}"

    def url(target_view: str, target: date) -> str:
        return f"{base}/calendar?" + urlencode({"view": target_view, "date": target.isoformat()})

    def day_list_url(target: date) -> str:
        return f"{base}/posts?" + urlencode({"from": target.isoformat(), "to": target.isoformat()})

    return await render(request, "ui/posts/calendar.html", {
        "view": view, "day": day, "today": today, "weeks": weeks, "by_day": by_day, "title": title,
        "url": url, "prev_day": prev_day, "next_day": next_day, "day_list_url": day_list_url,
        "zone": _zone_name(workspace), "weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        "can_manage": can_mutate(request[UI_USER], MANAGE),
    })
