"""Shared pieces of the Meta-family sandboxes (Facebook, Instagram, Threads).

- the Graph error envelope `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`;
- token checks that answer like Graph does (190 with subcode 463 expired, 460/458 revoked);
- the `X-App-Usage` / `X-Business-Use-Case-Usage` headers, with a per-hour app call budget that
  answers code 4 when exhausted (`network_state(n)["app_call_budget"]`, default 5000 calls/hour);
- parameter reading (query + form + multipart + JSON, as Graph merges them) and `fields` parsing;
- fetching media URLs over real HTTP and sniffing the bytes, like Meta's fetchers;
- the container state machine Instagram and Threads share;
- deterministic insights that grow with time since publishing.

Knobs (all in `sandbox.network_state(network)`):
    container_polls      status reads that still answer IN_PROGRESS (default 1)
    container_seconds    if set, a container is FINISHED this many seconds after creation instead
    container_error      if set, every new container ends in ERROR with this text
    apps                 {client_id: client_secret} accepted by the token endpoints
"""

from __future__ import annotations

import json
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from ouipost.posts.media import sniff_mime
from ouipost.sandbox.core import Sandbox, TokenInfo, units_under_way

DEFAULT_APPS = {"sandbox-client": "sandbox-secret"}
DEFAULT_APP_CALL_BUDGET = 5000  # calls per rolling hour before code 4
FETCH_TIMEOUT = 15.0
MAX_FETCH_BYTES = 1 << 30


class GraphError(Exception):
    """Raised inside a handler; `graph_route` turns it into the Graph error answer."""

    def __init__(self, status: int, message: str, code: int, subcode: int | None = None, *,
                 type: str = "OAuthException", headers: dict[str, str] | None = None,
                 user_title: str | None = None, user_msg: str | None = None,
                 is_transient: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.subcode = subcode
        self.type = type
        self.headers = headers or {}
        self.user_title = user_title
        self.user_msg = user_msg
        self.is_transient = is_transient

    def response(self) -> web.Response:
        return graph_error_response(
            self.status, self.message, self.code, self.subcode, type=self.type, headers=self.headers,
            user_title=self.user_title, user_msg=self.user_msg, is_transient=self.is_transient,
        )


def graph_error_response(status: int, message: str, code: int, subcode: int | None = None, *,
                         type: str = "OAuthException", headers: dict[str, str] | None = None,
                         user_title: str | None = None, user_msg: str | None = None,
                         is_transient: bool | None = None) -> web.Response:
    """The Graph error envelope, with a fresh fbtrace_id like every real answer."""
    error: dict[str, Any] = {"message": message, "type": type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    if user_title:
        error["error_user_title"] = user_title
    if user_msg:
        error["error_user_msg"] = user_msg
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(15)
    return web.json_response({"error": error}, status=status, headers=headers)


def expired_token_error(expired_at: float | None = None) -> GraphError:
    """Graph's error for an expired token (code 190, subcode 463), with its WWW-Authenticate header."""
    when = time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(expired_at or time.time()))
    message = f"Error validating access token: Session has expired on {when}."
    return GraphError(400, message, 190, 463,
                      headers={"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'})


def expired_token_response(expired_at: float | None = None) -> web.Response:
    return expired_token_error(expired_at).response()


def server_error_response() -> web.Response:
    return graph_error_response(
        500, "An unexpected error has occurred. Please retry your request later.", 2, is_transient=True,
    )


def buc_header(object_id: str, kind: str, call_count: int, regain_minutes: int) -> str:
    return json.dumps({object_id: [{
        "type": kind, "call_count": call_count, "total_cputime": max(1, call_count // 2),
        "total_time": max(1, call_count // 2), "estimated_time_to_regain_access": regain_minutes,
    }]})


# --------------------------------------------------------------------------------------------------
# Request reading


async def read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Graph merges query, form, multipart and JSON parameters; files come back apart."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, bytes] = {}
    # body_exists, not can_read_body: the recorder may have read (and cached) the body already.
    if request.body_exists:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise GraphError(400, "(#100) Invalid JSON body", 100) from exc
            if isinstance(body, dict):
                params.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                else:
                    params[key] = value
    return params, files


def access_token_of(request: web.Request, params: dict[str, Any]) -> str | None:
    """Graph takes the token as `access_token` or as `Authorization: Bearer|OAuth <token>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = params.get("access_token")
    return str(token) if token else None


def as_bool(value: Any, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes")


def parse_fields(raw: str | None) -> list[str]:
    """Top-level names of a `fields=` list: 'a,b.summary(total_count),c{d,e}' -> ['a', 'b', 'c']."""
    if not raw:
        return []
    names: list[str] = []
    depth = 0
    current = ""
    for char in raw:
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        if char == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += char
    names.append(current)
    out = []
    for name in names:
        base = name.strip().split(".", 1)[0].split("{", 1)[0].split("(", 1)[0]
        if base:
            out.append(base)
    return out


def with_query(url: str, params: dict[str, str], fragment: str = "") -> str:
    """`url` with `params` added to its query (Meta's consent dialogs redirect with a `#_` fragment)."""
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, fragment))


def require_param(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise GraphError(400, f"(#100) The parameter {name} is required", 100)
    return str(value)


# --------------------------------------------------------------------------------------------------
# Tokens and apps


def apps(sandbox: Sandbox, network: str) -> dict[str, str]:
    return sandbox.network_state(network).setdefault("apps", dict(DEFAULT_APPS))


def check_client(sandbox: Sandbox, network: str, client_id: Any, client_secret: Any) -> None:
    """Graph's answers for an unknown app id (101) or a wrong secret (1)."""
    known = apps(sandbox, network)
    if not client_id or str(client_id) not in known:
        raise GraphError(400, "Error validating application. Invalid application ID.", 101)
    if client_secret is not None and known[str(client_id)] != str(client_secret):
        raise GraphError(400, "Error validating client secret.", 1)


def live_token(sandbox: Sandbox, network: str, token: str | None) -> TokenInfo:
    """The token's info, or the Graph 190 error a real network gives for it."""
    if not token:
        raise GraphError(400, "An active access token must be used to query information about the "
                              "current user.", 190)
    info = sandbox.token(network, token)
    if info is not None:
        return info
    raw = sandbox.tokens.get(token)
    if raw is None or raw.network != network or raw.kind != "access":
        raise GraphError(400, "Invalid OAuth access token - Cannot parse access token", 190)
    if raw.revoked:
        raise GraphError(400, "Error validating access token: The user has not authorized application.",
                         190, 458)
    raise expired_token_error(raw.expires_at)


# Long-lived tokens (Instagram Login and Threads share Meta's model) ------------------------------


def _long_lived_response(sandbox: Sandbox, network: str, info: TokenInfo, ttl: int) -> web.Response:
    token = sandbox.new_token(network, info.subject, info.scopes, ttl,
                              client_id=info.extra.get("client_id"), long_lived=True, issued_at=sandbox.now())
    return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": ttl})


def exchange_for_long_lived(
    sandbox: Sandbox, network: str, params: dict[str, Any], *, grant_type: str, ttl: int
) -> web.Response:
    """`GET /access_token?grant_type=<ig|th>_exchange_token`: a short-lived token for a long-lived one."""
    if params.get("grant_type") != grant_type:
        raise GraphError(400, f"Unsupported grant_type, expected {grant_type}", 100)
    info = live_token(sandbox, network, str(require_param(params, "access_token")))
    if apps(sandbox, network).get(info.extra.get("client_id", "")) != require_param(params, "client_secret"):
        raise GraphError(400, "Error validating client secret.", 1)
    if info.extra.get("long_lived"):
        raise GraphError(400, "The access token is already a long-lived token", 100)
    return _long_lived_response(sandbox, network, info, ttl)


def refresh_long_lived(
    sandbox: Sandbox, network: str, params: dict[str, Any], *, grant_type: str, ttl: int, min_age: float
) -> web.Response:
    """`GET /refresh_access_token?grant_type=<ig|th>_refresh_token`: only long-lived tokens, only
    once they are `min_age` seconds old (24 h at Meta)."""
    if params.get("grant_type") != grant_type:
        raise GraphError(400, f"Unsupported grant_type, expected {grant_type}", 100)
    info = live_token(sandbox, network, str(require_param(params, "access_token")))
    if not info.extra.get("long_lived"):
        raise GraphError(400, "Only long-lived access tokens can be refreshed", 100)
    if sandbox.now() - float(info.extra.get("issued_at", 0)) < min_age:
        raise GraphError(400, "The access token can be refreshed once it is at least 24 hours old", 100)
    return _long_lived_response(sandbox, network, info, ttl)


def require_scopes(info: TokenInfo, *needed: str, code: int = 10, status: int = 403,
                   message: str | None = None) -> None:
    """Graph's permission error when the grant lacks a scope (code 10 or 200, usually HTTP 403)."""
    missing = [s for s in needed if s not in info.scopes]
    if missing:
        text = message or f"(#{code}) Application does not have permission for this action: requires " \
                          f"{', '.join(missing)}"
        raise GraphError(status, text, code)


# --------------------------------------------------------------------------------------------------
# Usage headers and the app call budget


def count_call(sandbox: Sandbox, network: str) -> int:
    """Record one call; returns the app usage in % of the hourly budget."""
    state = sandbox.network_state(network)
    now = sandbox.now()
    calls: list[float] = [t for t in state.get("app_calls", []) if now - t < 3600]
    calls.append(now)
    state["app_calls"] = calls
    budget = int(state.get("app_call_budget", DEFAULT_APP_CALL_BUDGET))
    return min(100, len(calls) * 100 // max(1, budget))


def app_usage_header(pct: int) -> str:
    return json.dumps({"call_count": pct, "total_cputime": max(0, pct // 2), "total_time": max(0, pct // 2)})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def graph_route(sandbox: Sandbox, network: str) -> Callable[[Handler], Handler]:
    """Decorate a handler: count the call against the app budget, add X-App-Usage, map GraphError."""

    def decorate(fn: Handler) -> Handler:
        @wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            pct = count_call(sandbox, network)
            usage = {"X-App-Usage": app_usage_header(pct)}
            if pct >= 100:
                return graph_error_response(400, "(#4) Application request limit reached", 4,
                                            is_transient=True, headers=usage)
            try:
                response = await fn(request)
            except GraphError as exc:
                response = exc.response()
            for key, value in usage.items():
                response.headers.setdefault(key, value)
            return response

        return handler

    return decorate


# --------------------------------------------------------------------------------------------------
# Media fetching


@dataclass
class FetchedMedia:
    url: str
    ok: bool
    mime: str | None = None
    size: int = 0
    width: int | None = None
    height: int | None = None
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "mime": self.mime, "bytes": self.size, "width": self.width,
                "height": self.height}


def image_size(data: bytes, mime: str | None) -> tuple[int | None, int | None]:
    """(width, height) of a PNG or JPEG from its header (SOFn marker), else (None, None)."""
    if mime == "image/png" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if mime == "image/jpeg":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
    return None, None


async def fetch_media(url: str) -> FetchedMedia:
    """GET the URL over real HTTP like Meta's fetchers do; never raises."""
    try:
        async with aiohttp.ClientSession() as session, session.get(
            url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        ) as resp:
            if resp.status != 200:
                return FetchedMedia(url, False, error=f"HTTP {resp.status}")
            data = await resp.content.read(MAX_FETCH_BYTES)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return FetchedMedia(url, False, error=f"{type(exc).__name__}: {exc}")
    mime = sniff_mime(data)
    width, height = image_size(data, mime)
    return FetchedMedia(url, mime is not None, mime, len(data), width, height,
                        None if mime else "not an image or video")


# --------------------------------------------------------------------------------------------------
# Containers (Instagram, Threads)


@dataclass
class Container:
    id: str
    owner: str
    media_type: str  # IMAGE, VIDEO, REELS, STORIES, CAROUSEL, TEXT
    created_at: float
    text: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    media: list[dict[str, Any]] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    is_carousel_item: bool = False
    status: str = "IN_PROGRESS"
    error: str | None = None  # the text shown once the container is in ERROR
    polls: int = 0


CONTAINER_TTL = 24 * 3600.0


def containers(sandbox: Sandbox, network: str) -> dict[str, Container]:
    return sandbox.network_state(network).setdefault("containers", {})


def container_status(sandbox: Sandbox, network: str, container: Container, *, poll: bool) -> str:
    """Advance the state machine (a status read counts as a poll) and return the status."""
    state = sandbox.network_state(network)
    if container.status in ("PUBLISHED", "ERROR", "EXPIRED"):
        return container.status
    if sandbox.now() - container.created_at > CONTAINER_TTL:
        container.status = "EXPIRED"
        return container.status
    if poll:
        container.polls += 1
    if container.status == "IN_PROGRESS":
        seconds = state.get("container_seconds")
        if seconds is not None:
            ready = sandbox.now() - container.created_at >= float(seconds)
        else:
            ready = container.polls > int(state.get("container_polls", 1))
        if ready:
            container.status = "ERROR" if container.error else "FINISHED"
    return container.status


# --------------------------------------------------------------------------------------------------
# Insights


def hours_since(sandbox: Sandbox, at: float) -> int:
    """Hours since `at` on the sandbox clock counting the one under way (1 in the first hour): the
    unit every Meta sandbox metric grows by (core.units_under_way)."""
    return units_under_way(sandbox, at, 3600)


def new_id(sandbox: Sandbox, base: int) -> str:
    return str(base + sandbox.next_id())
