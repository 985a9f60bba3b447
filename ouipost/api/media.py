"""Media: upload to a post (multipart, checked by content, streamed to storage), delete.

The upload's steps (streaming the file part to disk, probing, the media rules of the post's networks,
storing) are ouipost.posts.uploads, shared with the admin UI; here are the HTTP shape, the
idempotency key and the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from ouipost.api.auth import api_route
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.http import idempotency
from ouipost.http.context import API_KEY, CLOCK, DB, SETTINGS, STORAGE, WORKSPACE_ID
from ouipost.http.web import ok
from ouipost.openapi import describe, views
from ouipost.posts import rules, service, statuses, uploads

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
MEDIA_TYPES = uploads.MEDIA_TYPES
LOCKED_STATUSES = statuses.MEDIA_LOCKED
caps = uploads.caps


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
@describe("Upload a media file to a post (multipart/form-data)",
          upload=views.MEDIA_UPLOAD, data={"media": views.Media}, status=201, errors=(409,), idempotent=True)
@api_route("posts.write")
async def upload_media(request: web.Request) -> web.StreamResponse:
    engine, settings = request.app[DB], request.app[SETTINGS]
    workspace_id = request[WORKSPACE_ID]
    async with engine.connect() as conn:
        post = await service.get_post(conn, workspace_id, request.match_info["id"])
    service.ensure_editable(post)  # before reading a byte of a possibly large body
    if request.content_type != "multipart/form-data":
        raise errors.UnsupportedMediaType("Send the file as multipart/form-data with a `file` field")
    idem_key = idempotency.idempotency_key(request)

    try:
        reader = await request.multipart()
    except ValueError as exc:  # no boundary, or one over 70 characters
        raise errors.BadRequest("The multipart/form-data body needs a valid boundary parameter") from exc
    tmp_dir = Path(settings.data_dir) / "tmp"
    received, fields = await uploads.read_form(reader, caps(settings), tmp_dir)
    try:
        probed = await asyncio.to_thread(uploads.probe, received, tmp_dir)
        declared = fields.get("type")
        uploads.check_declared_type(received, declared)
        if idem_key is not None:
            print_ = idempotency.fingerprint(
                request.method, request.path, workspace_id, received.sha256, declared or "",
                fields.get("alt_text") or "",
            )
            stored = await idempotency.begin(engine, request[API_KEY].id, idem_key, print_, request.app[CLOCK].now())
            if stored is not None:
                return idempotency.replay(stored)

        async def store(req: web.Request) -> web.Response:
            row = await uploads.attach(req.app[DB], req.app[STORAGE], post, received, probed, fields,
                                       req.app[CLOCK].now())
            return ok({"media": media_view(row, rules.media_urls(req.app[STORAGE], [row])[row["id"]])}, status=201)

        if idem_key is None:
            return await store(request)
        return await idempotency.run_and_store(request, store, engine, request[API_KEY].id, idem_key)
    finally:
        uploads.discard(received)


@routes.delete("/api/media/{id}")
@describe("Delete a media file", data=views.Message, errors=(409,))
@api_route("posts.write")
async def delete_media(request: web.Request) -> web.Response:
    async with request.app[DB].begin() as conn:
        row = await uploads.remove(conn, request[WORKSPACE_ID], request.match_info["id"], request.app[CLOCK].now())
    await rules.forget_media_files(request.app[STORAGE], [row])
    return ok({"message": "Media deleted successfully"})
