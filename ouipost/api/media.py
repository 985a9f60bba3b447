"""Media: upload to a post (multipart, checked by content, streamed to storage), delete.

An upload never holds the file in memory: the file part streams to a temp file while its first
bytes decide the type and its size is held to the cap of that type; the temp file then moves into
storage. Whatever fails, nothing is left on disk or in the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ouipost import errors, idempotency
from ouipost import media as media_files
from ouipost.api.auth import api_route
from ouipost.clock import isoformat
from ouipost.context import API_KEY, CLOCK, DB, SETTINGS, STORAGE, WORKSPACE_ID
from ouipost.db.tables import media as media_table
from ouipost.db.tables import posts
from ouipost.ids import new_id
from ouipost.posts import rules, service, validation
from ouipost.web import ok

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
MEDIA_TYPES = ("image", "video", "document")
MAX_TEXT_FIELD = 2000  # bytes of a form field other than the file (type, alt_text)
LOCKED_STATUSES = frozenset({"publishing", "published", "partially_published"})


def caps(settings: Any) -> dict[str, int]:
    return {
        "image": settings.max_image_mb << 20,
        "video": settings.max_video_mb << 20,
        "document": settings.max_document_mb << 20,
    }


def media_view(row: Mapping[str, Any], urls: Mapping[str, str | None]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row["id"],
        "post_id": row["post_id"],
        "type": row["type"],
        "filename": row["filename"],
        "size": row["size"],
        "mime_type": row["mime_type"],
        "dimensions": {"width": row["width"], "height": row["height"]} if row["width"] else None,
        "url": urls["url"],
        "thumbnail_url": urls["thumbnail_url"],
        "alt_text": row["alt_text"],
        "created_at": isoformat(row["created_at"]),
    }
    if row["type"] == "video":
        view["duration"] = row["duration"]
    return view


@routes.post("/api/posts/{id}/media")
@api_route("posts.write")
async def upload_media(request: web.Request) -> web.Response:
    engine, settings = request.app[DB], request.app[SETTINGS]
    workspace_id = request[WORKSPACE_ID]
    async with engine.connect() as conn:
        post = await service.get_post(conn, workspace_id, request.match_info["id"])
    service.ensure_editable(post)  # before reading a byte of a possibly large body
    if request.content_type != "multipart/form-data":
        raise errors.UnsupportedMediaType("Send the file as multipart/form-data with a `file` field")
    idem_key = idempotency.idempotency_key(request)

    received, fields = await _read_form(request, caps(settings), Path(settings.data_dir) / "tmp")
    try:
        probed = await asyncio.to_thread(_probe, received, Path(settings.data_dir) / "tmp")
        declared = fields.get("type")
        if declared is not None and declared != received.sniffed.kind:
            raise errors.ValidationError(
                f"The file is {received.sniffed.kind} content, not {declared}",
                details={"type": [f"the file's bytes are {received.sniffed.mime_type}"]},
            )
        if idem_key is not None:
            print_ = idempotency.fingerprint(
                request.method, request.path, workspace_id, received.sha256, declared or "",
                fields.get("alt_text") or "",
            )
            stored = await idempotency.begin(engine, request[API_KEY].id, idem_key, print_, request.app[CLOCK].now())
            if stored is not None:
                return idempotency.replay(stored)

        async def store(req: web.Request) -> web.Response:
            return await _store(req, post, received, probed, fields)

        if idem_key is None:
            return await store(request)
        return await idempotency.run_and_store(request, store, engine, request[API_KEY].id, idem_key)
    finally:
        for leftover in (received.path, probed_thumbnail(received)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def probed_thumbnail(received: media_files.ReceivedFile) -> Path:
    return received.path.with_suffix(".thumb")


async def _read_form(
    request: web.Request, limits: dict[str, int], tmp_dir: Path
) -> tuple[media_files.ReceivedFile, dict[str, str]]:
    """The file part streamed to disk, and the small text fields; 422 for unknown or missing fields."""
    try:
        reader = await request.multipart()
    except ValueError as exc:  # no boundary, or one over 70 characters
        raise errors.BadRequest("The multipart/form-data body needs a valid boundary parameter") from exc
    received: media_files.ReceivedFile | None = None
    fields: dict[str, str] = {}
    try:
        while (part := await _next_part(reader)) is not None:
            if not isinstance(part, BodyPartReader):
                raise errors.ValidationError("Nested multipart bodies are not accepted")
            if part.name == "file":
                if received is not None:
                    raise errors.ValidationError("Send one file per upload", details={"file": ["more than one"]})
                try:
                    received = await media_files.receive_upload(part, tmp_dir, limits)
                except media_files.MediaTooLarge as exc:
                    raise errors.PayloadTooLarge(str(exc), details={"max_bytes": exc.limit}) from exc
                except media_files.UnsupportedMedia as exc:
                    raise errors.UnsupportedMediaType(f"Unsupported media: {exc}") from exc
            elif part.name in ("type", "alt_text"):
                raw = await part.read(decode=False)
                if len(raw) > MAX_TEXT_FIELD:
                    raise errors.ValidationError(f"{part.name} is too long", details={part.name: ["too long"]})
                fields[part.name] = raw.decode("utf-8", "replace").strip()
            else:
                raise errors.ValidationError(
                    f"Unknown field: {part.name}", details={part.name or "_": ["Unknown field."]}
                )
    except BaseException:
        if received is not None:
            received.path.unlink(missing_ok=True)
        raise
    problems: dict[str, list[str]] = {}
    if received is None:
        problems["file"] = ["Missing data for required field."]
    if "type" in fields and fields["type"] not in MEDIA_TYPES:
        problems["type"] = [f"Must be one of: {', '.join(MEDIA_TYPES)}."]
    if len(fields.get("alt_text", "")) > 1000:
        problems["alt_text"] = ["Longer than maximum length 1000."]
    if problems:
        if received is not None:
            received.path.unlink(missing_ok=True)
        raise errors.ValidationError("The upload has invalid fields", details=problems)
    assert received is not None
    return received, fields


async def _next_part(reader: MultipartReader) -> Any:
    """The next part, or None after the last; 400 when the body does not follow its boundary."""
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError) as exc:  # no starting boundary; a NUL in a part's headers
        raise errors.BadRequest("The multipart/form-data body is malformed") from exc


def _probe(received: media_files.ReceivedFile, tmp_dir: Path) -> dict[str, Any]:
    """Dimensions, duration and a thumbnail, read from the file itself (415 when it is corrupt)."""
    kind = received.sniffed.kind
    try:
        if kind == "image":
            width, height = media_files.probe_image(received.path)
            thumb = probed_thumbnail(received)
            media_files.make_thumbnail(received.path, thumb)
            return {"width": width, "height": height, "duration": None, "thumbnail": thumb,
                    "thumbnail_type": media_files.thumbnail_mime_type(thumb)}
        if kind == "video":
            info = media_files.probe_video(received.path)
            return {"width": info.width, "height": info.height, "duration": info.duration, "thumbnail": None}
        return {"width": None, "height": None, "duration": None, "thumbnail": None}
    except media_files.UnsupportedMedia as exc:
        raise errors.UnsupportedMediaType(f"Unsupported media: {exc}") from exc


async def _store(
    request: web.Request, post: Mapping[str, Any], received: media_files.ReceivedFile, probed: dict[str, Any],
    fields: Mapping[str, str],
) -> web.Response:
    engine, storage, now = request.app[DB], request.app[STORAGE], request.app[CLOCK].now()
    media_id = new_id("media")
    row = {
        "id": media_id, "workspace_id": post["workspace_id"], "post_id": post["id"],
        "type": received.sniffed.kind, "filename": received.filename, "size": received.size,
        "mime_type": received.sniffed.mime_type, "sha256": received.sha256,
        "width": probed["width"], "height": probed["height"], "duration": probed["duration"],
        "alt_text": fields.get("alt_text") or None,
        # Our own name, never the client's: any byte length, character or extension they send is
        # only the display name; the stored file is named after the type its bytes are.
        "storage_key": f"{post['workspace_id']}/{media_id}/original.{received.sniffed.extension}",
        "thumbnail_key": f"{post['workspace_id']}/{media_id}/thumbnail" if probed["thumbnail"] else None,
        "created_at": now,
    }
    async with engine.connect() as conn:
        await _check_can_attach(conn, post, row)
    await storage.put_file(row["storage_key"], received.path, row["mime_type"])
    try:
        if probed["thumbnail"]:
            await storage.put_file(row["thumbnail_key"], probed["thumbnail"], probed["thumbnail_type"])
        async with engine.begin() as conn:
            # The post may have changed while the file streamed in: check again under the write lock.
            await _check_can_attach(conn, post, row, for_update=True)
            await conn.execute(media_table.insert().values(**row))
            await conn.execute(posts.update().where(posts.c.id == post["id"]).values(updated_at=now))
    except BaseException:
        await rules.forget_media_files(request.app, [row])
        raise
    urls = rules.media_urls(request.app, [row])[media_id]
    return ok({"media": media_view(row, urls)}, status=201)


async def _check_can_attach(
    conn: Any, post: Mapping[str, Any], row: Mapping[str, Any], *, for_update: bool = False
) -> None:
    """The post is still editable and the new file keeps every target network within its media rules."""
    current = await service.get_post(conn, post["workspace_id"], post["id"], for_update=for_update)
    service.ensure_editable(current)
    existing = (await service.media_of(conn, [post["id"]]))[post["id"]]
    infos = [validation.MediaInfo(id=m["id"], kind=m["type"], duration=m["duration"], width=m["width"],
                                  height=m["height"]) for m in [*existing, row]]
    targets = (await service.targets_of(conn, [post["id"]]))[post["id"]]
    networks = list(dict.fromkeys(t["network"] for t in targets))
    selections = {n: (current["platform_content"].get(n) or {}).get("media_ids") for n in networks}
    problems = validation.media_limit_errors(networks, infos, platform_media=selections)
    if problems:
        raise errors.ValidationError("This file would break the media rules of some networks", details=problems)


@routes.delete("/api/media/{id}")
@api_route("posts.write")
async def delete_media(request: web.Request) -> web.Response:
    async with request.app[DB].begin() as conn:
        row = (await conn.execute(
            sa.select(media_table, posts.c.status.label("post_status"))
            .join(posts, posts.c.id == media_table.c.post_id, isouter=True)
            .where(media_table.c.id == request.match_info["id"], media_table.c.workspace_id == request[WORKSPACE_ID])
        )).mappings().first()
        if row is None:
            raise errors.NotFound("Media not found")
        if row["post_status"] in LOCKED_STATUSES:
            raise errors.Conflict(
                f"This media belongs to a {row['post_status']} post and cannot be deleted",
                details={"post_status": row["post_status"]},
            )
        await conn.execute(media_table.delete().where(media_table.c.id == row["id"]))
    await rules.forget_media_files(request.app, [row])
    return ok({"message": "Media deleted successfully"})
