"""Media of a post: an upload read from a multipart body, probed, checked against the post's
networks and attached; removal. Shared by the API (ouipost/api/media.py) and the admin UI.

An upload never holds the file in memory: the file part streams to a temp file while its first
bytes decide the type and its size is held to the cap of that type; the temp file then moves into
storage. Whatever fails, nothing is left in storage (the caller removes the temp files with
`discard`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import BodyPartReader, MultipartReader
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.core import errors
from ouipost.core.ids import new_id
from ouipost.db.rows import MediaRow, PostRow, record
from ouipost.db.tables import media as media_table
from ouipost.db.tables import posts
from ouipost.posts import approval, followups, rules, service, statuses, validation
from ouipost.posts import media as media_files
from ouipost.storage import Storage

MEDIA_TYPES = ("image", "video", "document")
MAX_TEXT_FIELD = 2000  # bytes of a form field other than the file (type, alt_text)
MAX_ALT_TEXT = 1000


def caps(settings: Any) -> dict[str, int]:
    """The size cap of each media type, in bytes."""
    return {
        "image": settings.max_image_mb << 20,
        "video": settings.max_video_mb << 20,
        "document": settings.max_document_mb << 20,
    }


async def read_form(
    reader: MultipartReader, limits: dict[str, int], tmp_dir: Path,
) -> tuple[media_files.ReceivedFile, dict[str, str]]:
    """The file part streamed to disk, and the small text fields (type, alt_text); 422 for unknown
    or missing fields, 413 past the type's cap, 415 for content that is no media we take, 400 for a
    body that breaks its boundary."""
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
    if len(fields.get("alt_text", "")) > MAX_ALT_TEXT:
        problems["alt_text"] = [f"Longer than maximum length {MAX_ALT_TEXT}."]
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


def probed_thumbnail(received: media_files.ReceivedFile) -> Path:
    return received.path.with_suffix(".thumb")


def probe(received: media_files.ReceivedFile, tmp_dir: Path) -> dict[str, Any]:
    """Dimensions, duration and a thumbnail, read from the file itself (415 when it is corrupt).
    Blocking: run it in a thread."""
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


def check_declared_type(received: media_files.ReceivedFile, declared: str | None) -> None:
    """422 when the client said `type` and the bytes are another kind."""
    if declared is not None and declared != received.sniffed.kind:
        raise errors.ValidationError(
            f"The file is {received.sniffed.kind} content, not {declared}",
            details={"type": [f"the file's bytes are {received.sniffed.mime_type}"]},
        )


def discard(received: media_files.ReceivedFile) -> None:
    """Remove an upload's temp files (the file and its thumbnail), whichever exist."""
    for leftover in (received.path, probed_thumbnail(received)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


async def attach(
    engine: AsyncEngine, storage: Storage, post: PostRow, received: media_files.ReceivedFile,
    probed: Mapping[str, Any], fields: Mapping[str, str], now: datetime,
) -> MediaRow:
    """Store the file (and its thumbnail) and add its media row to `post`; returns the row.
    409 when the post is no longer editable, 422 when the file breaks a target network's media rules
    (checked before storing and again under the write lock)."""
    media_id = new_id("media")
    row: MediaRow = {
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
        await check_can_attach(conn, post, row)
    await storage.put_file(row["storage_key"], received.path, row["mime_type"])
    try:
        if row["thumbnail_key"]:  # the probe made a thumbnail
            await storage.put_file(row["thumbnail_key"], probed["thumbnail"], probed["thumbnail_type"])
        async with engine.begin() as conn:
            # The post may have changed while the file streamed in: check again under the write lock.
            current = await check_can_attach(conn, post, row, for_update=True)
            await conn.execute(media_table.insert().values(**row))
            await conn.execute(posts.update().where(posts.c.id == post["id"]).values(updated_at=now))
            await approval.withdraw_on_edit(conn, current, now)
    except BaseException:
        await rules.forget_media_files(storage, [row])
        raise
    return row


async def check_can_attach(
    conn: AsyncConnection, post: PostRow, row: MediaRow, *, for_update: bool = False
) -> PostRow:
    """The post is still editable and the new file keeps every target network within its media rules;
    returns the post as it is now."""
    current = await service.get_post(conn, post["workspace_id"], post["id"], for_update=for_update)
    service.ensure_editable(current)
    existing = (await service.media_of(conn, [post["id"]]))[post["id"]]
    infos = [validation.MediaInfo(id=m["id"], kind=m["type"], duration=m["duration"], width=m["width"],
                                  height=m["height"]) for m in [*existing, row]]
    targets = (await service.targets_of(conn, [post["id"]]))[post["id"]]
    networks = list(dict.fromkeys(t["network"] for t in targets))
    # A network without a media_ids override gets the post's media but those its thread's parts name.
    in_thread = followups.thread_media_ids(followups.thread_of(current))
    own = [info.id for info in infos if info.id not in in_thread] if in_thread else None
    overrides = {n: (current["platform_content"].get(n) or {}).get("media_ids") for n in networks}
    selections = {n: own if chosen is None else chosen for n, chosen in overrides.items()}
    # A Mastodon server may take more (or fewer) pictures than the network's default of four.
    limits = await rules.server_limits(
        conn, [service.Target(t["requested"], t["network"], t["account_id"]) for t in targets],
        await rules.default_accounts(conn, post["workspace_id"], networks))
    problems = validation.media_limit_errors(networks, infos, platform_media=selections, account_limits=limits)
    if problems:
        raise errors.ValidationError("This file would break the media rules of some networks", details=problems)
    return current


async def remove(conn: AsyncConnection, workspace_id: str, media_id: str, now: datetime) -> MediaRow:
    """Delete a media row of the workspace; returns it so that the caller removes its files after
    the commit. 404 for another workspace's media, 409 while its post is publishing or published;
    a post pending approval is a draft again."""
    row = (await conn.execute(
        sa.select(media_table, posts.c.status.label("post_status"))
        .join(posts, posts.c.id == media_table.c.post_id, isouter=True)
        .where(media_table.c.id == media_id, media_table.c.workspace_id == workspace_id)
    )).mappings().first()
    if row is None:
        raise errors.NotFound("Media not found")
    if row["post_status"] in statuses.MEDIA_LOCKED:
        raise errors.Conflict(
            f"This media belongs to a {row['post_status']} post and cannot be deleted",
            details={"post_status": row["post_status"]},
        )
    await conn.execute(media_table.delete().where(media_table.c.id == row["id"]))
    if row["post_id"] is not None and row["post_status"] == approval.PENDING:
        await approval.withdraw_pending(conn, row["post_id"], now)
    return record(MediaRow, {column.name: row[column.name] for column in media_table.columns})
