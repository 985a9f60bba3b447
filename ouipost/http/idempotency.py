"""Idempotency-Key on POST: the same key and the same request within 24 h returns the first answer.

The first request inserts a row (the primary key makes concurrent twins collide, never both run),
runs, and stores its answer; a replay returns that answer with `Idempotent-Replayed: true`. The same
key with another body or path is refused with 422 IDEMPOTENCY_KEY_REUSED; a twin that arrives while
the first is still running gets 409. Server errors are not stored, so a retry can succeed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.core import errors
from ouipost.db.tables import idempotency_keys
from ouipost.http.context import API_KEY, CLOCK, DB
from ouipost.http.web import Handler, dumps, error_response

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: Any


def fingerprint(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


def json_fingerprint(method: str, path: str, raw_body: bytes) -> str:
    """Same JSON with other whitespace or key order counts as the same body."""
    try:
        canonical = json.dumps(json.loads(raw_body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = raw_body
    return fingerprint(method, path, canonical)


def idempotency_key(request: web.Request) -> str | None:
    value = request.headers.get(HEADER)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_KEY_LENGTH:
        raise errors.ValidationError(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters", details={HEADER: ["invalid length"]}
        )
    return value


async def begin(engine: AsyncEngine, api_key_id: str, key: str, print_: str, now: datetime) -> StoredAnswer | None:
    """Claim `key` for this request, or return the stored answer to replay.

    Raises ValidationError (IDEMPOTENCY_KEY_REUSED) for another request under the same key and
    Conflict while the first request is still running.
    """
    async with engine.begin() as conn:
        # A key older than the retention is free again.
        await conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key,
                idempotency_keys.c.created_at <= now - RETENTION,
            )
        )
    try:
        async with engine.begin() as conn:
            await conn.execute(
                idempotency_keys.insert().values(api_key_id=api_key_id, key=key, fingerprint=print_, created_at=now)
            )
        return None
    except IntegrityError:
        pass
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key
                )
            )
        ).mappings().first()
    if row is None:  # the holder failed and released it between our insert and read
        raise errors.Conflict("A request with this Idempotency-Key is being retried; try again")
    if row["fingerprint"] != print_:
        raise errors.ValidationError(
            "This Idempotency-Key was used for a different request", code="IDEMPOTENCY_KEY_REUSED",
            details={HEADER: ["reused with a different body or path"]},
        )
    if row["status"] is None:
        raise errors.Conflict("A request with this Idempotency-Key is still in progress")
    return StoredAnswer(row["status"], row["response"])


async def complete(engine: AsyncEngine, api_key_id: str, key: str, answer: StoredAnswer) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key)
            .values(status=answer.status, response=answer.body)
        )


async def release(engine: AsyncEngine, api_key_id: str, key: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key
            )
        )


def replay(answer: StoredAnswer) -> web.Response:
    return web.json_response(answer.body, status=answer.status, dumps=dumps, headers={"Idempotent-Replayed": "true"})


def idempotent(handler: Handler) -> Handler:
    """Make a JSON POST handler honour Idempotency-Key (apply inside `api_route`)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        key = idempotency_key(request)
        if key is None:
            return await handler(request)
        engine, api_key_id = request.app[DB], request[API_KEY].id
        raw = await request.read()
        print_ = json_fingerprint(request.method, request.path_qs + "|" + request.headers.get("X-Workspace-ID", ""),
                                  raw)
        stored = await begin(engine, api_key_id, key, print_, request.app[CLOCK].now())
        if stored is not None:
            return replay(stored)
        return await run_and_store(request, handler, engine, api_key_id, key)

    wrapper.honours_idempotency_key = True  # type: ignore[attr-defined]  # a mark read with getattr
    return wrapper


async def run_and_store(
    request: web.Request, handler: Handler, engine: AsyncEngine, api_key_id: str, key: str
) -> web.StreamResponse:
    """Run the handler, keep its JSON answer (client errors included), release on server errors."""
    try:
        response = await handler(request)
    except errors.ApiError as exc:
        if exc.status >= 500:
            await release(engine, api_key_id, key)
            raise
        response = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except BaseException:
        await release(engine, api_key_id, key)
        raise
    # Only a JSON answer held in memory is kept (a streamed or payload body is not).
    if response.status >= 500 or not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        await release(engine, api_key_id, key)
        return response
    body = json.loads(response.body)
    await complete(engine, api_key_id, key, StoredAnswer(response.status, body))
    return response
