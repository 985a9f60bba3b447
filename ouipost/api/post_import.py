"""Posts in bulk: import a CSV file (POST /api/posts/import) and export the list as CSV
(GET /api/posts/export). The steps are ouipost.posts.csv_io, shared with the admin UI; here are the
HTTP shapes, the idempotency key and the answers.

These routes are registered before ouipost/api/posts.py's, so that /api/posts/export is not read
as the post id "export".
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from marshmallow import Schema, fields, validate

from ouipost.api.auth import api_route
from ouipost.api.posts import POST_BODY, PostQuery, ScheduleBody
from ouipost.core import errors
from ouipost.http import idempotency
from ouipost.http.context import API_KEY, CLOCK, DB, SETTINGS, STORAGE, WORKER, WORKSPACE_ID
from ouipost.http.web import REQUEST_ID, load_query, ok
from ouipost.jobs.queue import notify_enqueued
from ouipost.openapi import describe, views
from ouipost.posts import approval, csv_io, uploads

routes = web.RouteTableDef()
SCHEDULE_BODY = ScheduleBody()


class ImportQuery(Schema):
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "1/true: check every row (media URLs fetched too) and say what would be created; "
                       "nothing is kept"})


class ExportQuery(PostQuery):
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv"]))

    class Meta:
        exclude = ("page", "limit")


class ImportedPost(views.View):
    line = fields.Integer(metadata={"description": "The row's line in the file (the header is line 1)"})
    id = fields.String(allow_none=True, metadata={"description": "null in a dry run"})
    status = fields.String(validate=validate.OneOf(["draft", "scheduled"]))
    scheduled_at = fields.String(allow_none=True)
    scheduled_timezone = fields.String(allow_none=True)
    platforms = fields.List(fields.String())
    media = fields.Integer(metadata={"description": "media attached from media_urls"})


class ImportResult(views.View):
    dry_run = fields.Boolean()
    created = fields.Integer(metadata={"description": "posts created (0 in a dry run)"})
    drafts = fields.Integer(metadata={"description": "rows without scheduled_at: drafts"})
    scheduled = fields.Integer()
    posts = fields.List(fields.Nested(ImportedPost))


IMPORT_UPLOAD: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "contentMediaType": "text/csv",
                 "description": "UTF-8 CSV (BOM optional), comma or semicolon separated; columns "
                                f"{', '.join(csv_io.IMPORT_COLUMNS)} (content and platforms required); several "
                                "platforms or media URLs in one cell separated by | or spaces; "
                                f"at most {csv_io.MAX_ROWS:,} rows and {csv_io.MAX_IMPORT_BYTES >> 20} MB"},
    },
}


async def read_csv_form(reader: MultipartReader, *, text_fields: tuple[str, ...] = ()) -> tuple[bytes, dict[str, str]]:
    """The `file` part of a multipart body (at most MAX_IMPORT_BYTES: 413 past it) and the small
    `text_fields` the form may send besides (the UI's dry_run); 422 for another field or no file."""
    data: bytes | None = None
    values: dict[str, str] = {}
    while (part := await _next_part(reader)) is not None:
        name = getattr(part, "name", None) or "_"
        if isinstance(part, BodyPartReader) and name in text_fields:
            values[name] = (await part.read(decode=False))[:200].decode("utf-8", "replace").strip()
            continue
        if not isinstance(part, BodyPartReader) or name != "file":
            raise errors.ValidationError(f"Unknown field: {name}; send the CSV in a `file` field",
                                         details={name: ["Unknown field."]})
        if data is not None:
            raise errors.ValidationError("Send one file per import", details={"file": ["more than one"]})
        chunks, size = [], 0
        while chunk := await part.read_chunk(256 * 1024):
            size += len(chunk)
            if size > csv_io.MAX_IMPORT_BYTES:
                raise errors.PayloadTooLarge(f"A CSV import is limited to {csv_io.MAX_IMPORT_BYTES >> 20} MB",
                                             details={"max_bytes": csv_io.MAX_IMPORT_BYTES})
            chunks.append(chunk)
        data = b"".join(chunks)
    if data is None:
        raise errors.ValidationError("Choose a CSV file to import",
                                     details={"file": ["Missing data for required field."]})
    return data, values


async def _next_part(reader: MultipartReader) -> Any:
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError) as exc:
        raise errors.BadRequest("The multipart/form-data body is malformed") from exc


async def run_import(
    app: web.Application, workspace_id: str, data: bytes, *, dry_run: bool, may_approve: bool,
) -> csv_io.ImportOutcome:
    """Every step of an import, for the API and the UI: read, plan, fetch media, create (or not).
    A file with rows to schedule in a workspace that requires approval needs a caller who may
    approve (403 otherwise, as POST /api/posts/{id}/schedule; drafts need no approval)."""
    settings = app[SETTINGS]
    rows = csv_io.read_rows(data)
    planned = [csv_io.plan_row(row, POST_BODY, SCHEDULE_BODY) for row in rows]
    if any(p.schedule is not None for p in planned):
        async with app[DB].connect() as conn:
            await approval.ensure_may_publish(conn, workspace_id, may_approve=may_approve)
    try:
        await csv_io.fetch_all_media(planned, allow_private=settings.webhook_allow_private,
                                     limits=uploads.caps(settings), tmp_dir=Path(settings.data_dir) / "tmp")
        outcome = await csv_io.import_posts(app[DB], app[STORAGE], workspace_id, planned, app[CLOCK].now(),
                                            dry_run=dry_run)
    finally:
        csv_io.discard_media(planned)
    if not dry_run:
        notify_enqueued(app.get(WORKER))
    return outcome


@routes.post("/api/posts/import")
@describe("Import posts from a CSV file (multipart/form-data)", query=ImportQuery, upload=IMPORT_UPLOAD,
          data=ImportResult, status=201, also={200: ("A dry run: what would be created", ImportResult)},
          errors=(403, 413, 415), idempotent=True)
@api_route("posts.write")
async def import_posts(request: web.Request) -> web.StreamResponse:
    """Every row is checked (the rules of POST /api/posts and of scheduling, media URLs fetched with
    the webhooks' private-address guard, the upload's size caps and type sniffing) before anything
    is created; one bad row and the answer is 422 with `details.rows` (line and fields of every bad
    row), nothing created. Then every row is created in one transaction: a row with `scheduled_at`
    is scheduled (read in its `timezone`, else the workspace's, unless it has an offset), one
    without stays a draft. `?dry_run=1` checks and answers 200 with what would be created."""
    query = load_query(request, ImportQuery())
    if request.content_type != "multipart/form-data":
        raise errors.UnsupportedMediaType("Send the CSV as multipart/form-data in a `file` field")
    try:
        reader = await request.multipart()
    except ValueError as exc:
        raise errors.BadRequest("The multipart/form-data body needs a valid boundary parameter") from exc
    data, _ = await read_csv_form(reader)
    workspace_id, engine = request[WORKSPACE_ID], request.app[DB]

    async def run(req: web.Request) -> web.Response:
        outcome = await run_import(req.app, workspace_id, data, dry_run=query["dry_run"],
                                   may_approve=approval.PERMISSION in req[API_KEY].permissions)
        return ok(outcome.as_dict(), status=200 if outcome.dry_run else 201)

    key = idempotency.idempotency_key(request)
    if key is None:
        return await run(request)
    # The file's bytes, not the multipart body (its boundary differs between two sends of one file).
    print_ = idempotency.fingerprint(request.method, request.path_qs, workspace_id, hashlib.sha256(data).hexdigest())
    stored = await idempotency.begin(engine, request[API_KEY].id, key, print_, request.app[CLOCK].now())
    if stored is not None:
        return idempotency.replay(stored)
    return await idempotency.run_and_store(request, run, engine, request[API_KEY].id, key)


@routes.get("/api/posts/export")
@describe("Export posts as CSV, with each network's result and latest insight totals", query=ExportQuery,
          data=None, produces="text/csv")
@api_route("posts.read")
async def export_posts(request: web.Request) -> web.StreamResponse:
    """The posts the list's filters select (status, platform, from, to), newest first, one line per
    post and network: the post's fields, the network's result (status, remote id, URL, error) and its
    latest impressions, engagement and clicks. Streamed in chunks (Transfer-Encoding: chunked) as it
    is read, never loaded whole."""
    query = load_query(request, ExportQuery())
    workspace_id = request[WORKSPACE_ID]
    pieces = csv_io.export_csv(request.app[DB], workspace_id, status=query.get("status"),
                               platform=query.get("platform"), start=query.get("from_"), end=query.get("to"))
    return await stream_csv(request, pieces, f"posts-{workspace_id}.csv")


async def stream_csv(request: web.Request, pieces: AsyncIterator[str], filename: str) -> web.StreamResponse:
    """Send `pieces` as a chunked CSV attachment. The first piece is read before the answer starts,
    so that an error until then is still answered in the envelope (or the UI's error page)."""
    first = await anext(pieces)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
        # The request-id middleware sets it once the handler returns: too late for headers already sent.
        "X-Request-ID": request[REQUEST_ID],
    })
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(first.encode())
    async for piece in pieces:
        if piece:  # an empty write would end a chunked body early
            await response.write(piece.encode())
    await response.write_eof()
    return response
