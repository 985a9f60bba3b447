"""HTTP plumbing shared by every handler: the envelope, request ids, error mapping, body parsing.

- `ok(data, status)` builds `{"success": true, "data": ...}`.
- `error_middleware` turns every failure (ApiError, routing 404/405, oversized bodies, unexpected
  exceptions) into `{"success": false, "error": {...}}`; unexpected ones are logged with the request
  id and answered without internals.
- `request_id_middleware` echoes a sane client `X-Request-ID` or makes one, on every answer.
- `load_body` / `load_query` run marshmallow schemas and raise VALIDATION_ERROR with per-field details.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import marshmallow
import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import exc as sa_exc

from ouipost.core import errors
from ouipost.core.logs import CURRENT_REQUEST_ID

log = logging.getLogger("ouipost.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def dumps_bytes(data: Any) -> bytes:
    """Compact JSON with non-ASCII kept as UTF-8. orjson writes it (about 30 times faster on a page of
    posts: it was a tenth of a list request's time); what orjson refuses (integers beyond 64 bits,
    non-string keys) goes through the json module, with the same output. TypeError for what neither
    can encode."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def dumps(data: Any) -> str:
    return dumps_bytes(data).decode()


def json_answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """What web.json_response gives (application/json; charset=utf-8), encoded by dumps_bytes."""
    return web.Response(body=dumps_bytes(body), status=status, headers=headers, content_type="application/json",
                        charset="utf-8")


def ok(data: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_answer({"success": True, "data": data}, status=status, headers=headers)


def error_response(
    status: int, code: str, message: str, details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"success": False, "error": {"code": code, "message": message, "details": dict(details or {})}}
    return json_answer(body, status=status, headers=headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _SANE_REQUEST_ID.fullmatch(given) else f"req_{secrets.token_hex(12)}"
    request[REQUEST_ID] = request_id
    context = CURRENT_REQUEST_ID.set(request_id)  # log lines below this request carry its id (JSON logs)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-ID"] = request_id
        raise
    finally:
        CURRENT_REQUEST_ID.reset(context)
    response.headers["X-Request-ID"] = request_id
    return response


_HTTP_CODES = {
    400: ("BAD_REQUEST", "The request is not valid"),
    401: ("UNAUTHORIZED", "A valid API key is required"),
    403: ("FORBIDDEN", "You are not allowed to do this"),
    404: ("NOT_FOUND", "No such route"),
    405: ("METHOD_NOT_ALLOWED", "This route does not accept that method"),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(
            413, "PAYLOAD_TOO_LARGE", "The request body is too large",
            {"max_bytes": exc.max_size} if hasattr(exc, "max_size") else {},
        )
    except web.HTTPMethodNotAllowed as exc:
        return error_response(
            405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here",
            {"allowed": sorted(exc.allowed_methods)}, {"Allow": ",".join(sorted(exc.allowed_methods))},
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        code, message = _HTTP_CODES.get(exc.status, ("ERROR", exc.reason))
        return error_response(exc.status, code, message)
    except Exception as exc:
        if is_database_unavailable(exc):
            # The database went away (or is restarting): say so, and when to try again. Pools check
            # connections before use, so answers come back by themselves once it is reachable.
            log.warning("database unavailable in %s %s (request %s): %s", request.method, request.path,
                        request.get(REQUEST_ID, "-"), type(exc).__name__)
            return error_response(
                503, "SERVICE_UNAVAILABLE", "The database is unavailable; try again shortly",
                headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
            )
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path,
                      request.get(REQUEST_ID, "-"))
        return error_response(500, "INTERNAL_ERROR", "Something went wrong on our side")


DATABASE_RETRY_AFTER = 5  # seconds: about how long a database restart or failover takes
# MySQL/MariaDB client and server errors that say the server cannot be reached or is overloaded,
# not that the statement is wrong: can't connect (2002, 2003), gone away (2006), lost connection
# (2013, 2055), too many connections (1040), shutdown in progress (1053), connection killed (1927),
# lock wait timeout (1205) and deadlock (1213).
_UNAVAILABLE_MYSQL_CODES = frozenset({1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055})
_UNAVAILABLE_SQLITE_MESSAGES = ("database is locked", "unable to open database file", "disk i/o error")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached right now (503), as opposed to a statement
    the database refused (IntegrityError, unknown column: a bug, 500)."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return False  # IntegrityError, ProgrammingError, DataError...: the statement is at fault
        args = getattr(exc.orig, "args", ())
        if args and isinstance(args[0], int):
            return args[0] in _UNAVAILABLE_MYSQL_CODES
        return any(m in str(exc.orig).lower() for m in _UNAVAILABLE_SQLITE_MESSAGES)
    # A connect that fails below the driver (refused, reset, unreachable).
    return isinstance(exc, ConnectionError | TimeoutError)


_API_PREFIXES = ("/api/", "/admin/")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer: no server banner, no content sniffing; API and admin data is not stored by
    browsers or proxies (it holds keys, tokens and workspace data)."""
    response.headers.popall("Server", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith(_API_PREFIXES) or request.path in ("/api", "/admin"):
        response.headers["Cache-Control"] = "no-store"


class AccessLogger(AbstractAccessLogger):
    """One line per request with the request id, so a client's id finds the server's log lines."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.1fms %s',
            request.remote, request.method, request.path_qs if not _has_secret_query(request) else request.path,
            response.status, time * 1000, response.headers.get("X-Request-ID", "-"),
            extra={"request_id": response.headers.get("X-Request-ID")},
        )


def _has_secret_query(request: web.BaseRequest) -> bool:
    # OAuth callbacks and signed media URLs carry codes and signatures: keep them out of logs.
    return any(name in request.query for name in ("code", "signature", "token", "state"))


# ------------------------------------------------------------------------------------------------
# Input


async def read_json(request: web.Request) -> Any:
    """The parsed JSON body. INVALID_JSON when it does not parse; 413 over the JSON cap."""
    raw = await request.read()  # client_max_size enforces the JSON cap (413 from aiohttp)
    if not raw.strip():
        raise errors.InvalidJson("The request body is empty; send a JSON object")
    try:
        data = json.loads(raw)
    except RecursionError as exc:
        raise errors.InvalidJson(f"The request body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidJson(f"The request body is not valid JSON: {exc}") from exc
    check_json_text(data)
    return data


MAX_JSON_DEPTH = 32  # far beyond any body the API takes; deeper ones could only exhaust the stack later
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def check_json_text(data: Any) -> None:
    """Refuse what parses as JSON but no database or encoder can hold: nesting deeper than
    MAX_JSON_DEPTH (400 INVALID_JSON) and strings with lone UTF-16 surrogates such as "\\ud800", in
    values or keys (422 VALIDATION_ERROR naming the field by its path). Iterative, so depth is no risk
    to the check itself."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                _refuse_surrogate(path)
            continue
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise errors.InvalidJson(f"The request body nests deeper than {MAX_JSON_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                child = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _LONE_SURROGATE.search(key):
                    _refuse_surrogate(path or "_body")
                stack.append((item, child, depth + 1))


def _refuse_surrogate(path: str) -> None:
    raise errors.ValidationError(
        f"{path or 'The body'} is not valid Unicode text",
        details={path or "_body": ["Contains a lone surrogate (\\ud800-\\udfff); send valid Unicode text."]},
    )


async def load_body(request: web.Request, schema: marshmallow.Schema, *, partial: bool = False) -> dict[str, Any]:
    """Parse and validate a JSON object body with `schema` (unknown fields refused)."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise errors.ValidationError(
            "The request body must be a JSON object", details={"_body": [f"got {type(data).__name__}"]}
        )
    return run_schema(schema, data, partial=partial)


def load_query(request: web.Request, schema: marshmallow.Schema) -> dict[str, Any]:
    """Validate the query string with `schema`; repeated parameters are refused."""
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values[0] if len(values) == 1 else values
    return run_schema(schema, data)


def run_schema(schema: marshmallow.Schema, data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    try:
        return schema.load(data, partial=partial)
    except marshmallow.ValidationError as exc:
        details = exc.normalized_messages()
        unknown = [k for k, v in details.items() if v == ["Unknown field."]] if isinstance(details, dict) else []
        message = "The request has invalid fields"
        if unknown:
            message = f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(sorted(unknown))}"
        raise errors.ValidationError(message, details=details) from exc
