"""The admin UI: server-rendered pages under /ui for operators and social media teams.

Views (ouipost/ui/views/*.py, each with a `routes` table) call the same domain functions as the API
handlers; templates live in the top-level `templates/ui/` (shipped in the wheel as
ouipost._templates), static files in `ouipost/ui/static/`
(served by the app, no CDN, no build step). Every page works without JavaScript; `ui.js` only
enhances (live counters, previews, copy buttons).

Around every /ui request:
- the session (ouipost.ui.session) says who is signed in;
- unsafe methods must carry the session's CSRF token (`csrf_token` form field; for multipart forms
  the view checks it as the first field) or get a 403 page, with nothing changed;
- answers carry a Content-Security-Policy without inline scripts or styles, frame-ancestors 'none'
  and X-Frame-Options DENY, nosniff, a Referrer-Policy, and no-store on pages;
- errors are HTML pages with the API's own messages, not JSON.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from ouipost import __version__
from ouipost.config import Settings
from ouipost.core import errors
from ouipost.http.context import SETTINGS
from ouipost.http.web import REQUEST_ID, Handler
from ouipost.ui.common import STATIC_ROUTE, render
from ouipost.ui.session import cookie_storage, csrf_ok

log = logging.getLogger("ouipost.ui")

STATIC_DIR = Path(__file__).parent / "static"


def _templates_dir() -> Path:
    """The installed package's copy of the top-level `templates/` (setup.py ships it as
    ouipost._templates) when there is one, else the checkout's."""
    packaged = Path(__file__).resolve().parents[1] / "_templates"
    return packaged if (packaged / "ui").is_dir() else Path(__file__).resolve().parents[2] / "templates"


TEMPLATES_DIR = _templates_dir()
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _CompiledTemplates(jinja2.BytecodeCache):
    """Templates compiled once per process rather than once per app: each app has its own Environment
    (aiohttp_jinja2 binds it to the app), and parsing and compiling a template costs far more than
    loading its code. Jinja checks each entry against the template's source, so an edited template
    is compiled again."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED_TEMPLATES = _CompiledTemplates()


def setup_ui(app: web.Application, settings: Settings) -> None:
    """Mount the UI on `app`: templates, session cookie, guards, static files and every view."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        bytecode_cache=_COMPILED_TEMPLATES,
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["localtime"] = localtime
    env.filters["number"] = _number
    env.globals["version"] = __version__
    app.middlewares.append(ui_middleware(aiohttp_session.session_middleware(cookie_storage(settings))))
    app.on_response_prepare.append(_security_headers)
    app.router.add_static("/ui/static", STATIC_DIR, name=STATIC_ROUTE, append_version=True)
    app.router.add_get("/", _to_ui)
    app.router.add_get("/ui/", _to_ui)
    for route_table in _view_route_tables():
        app.add_routes(route_table)


def _view_route_tables() -> list[web.RouteTableDef]:
    # Each module of ouipost.ui.views brings its own `routes`; adding a page touches only its module.
    from ouipost.ui import views

    tables = []
    for module_info in sorted(pkgutil.iter_modules(views.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{views.__name__}.{module_info.name}")
        if hasattr(module, "routes"):
            tables.append(module.routes)
    return tables


async def _to_ui(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui")


def is_ui_path(path: str) -> bool:
    return path == "/" or path == "/ui" or path.startswith("/ui/")


# ------------------------------------------------------------------------------------------------
# Filters


def localtime(value: datetime | str | None, tz: str | None = None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC time shown in `tz` (the workspace's zone) with the zone's abbreviation; '' for None."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(tz or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = value.astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname()}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# Guards and errors


def ui_middleware(session_middleware: Middleware) -> Middleware:
    """The session (aiohttp_session's middleware) and the guards, for UI paths only: an API request
    passes through one coroutine frame instead of two, and no session storage is set on it (only UI
    views read sessions)."""

    @web.middleware
    async def ui(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_ui_path(request.path):
            return await handler(request)
        if request.path.startswith("/ui/static/"):
            return await session_middleware(request, handler)
        return await session_middleware(request, functools.partial(_guarded, handler=handler))

    return ui


async def _guarded(request: web.Request, *, handler: Handler) -> web.StreamResponse:
    """A UI page: CSRF on unsafe methods, failures as HTML error pages."""
    try:
        if request.method not in _SAFE_METHODS:
            await _check_csrf(request)
        return await handler(request)
    except errors.ApiError as exc:
        return await error_page(request, exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await error_page(request, exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason))
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path,
                      request.get(REQUEST_ID, "-"))
        return await error_page(request, 500, "Something went wrong on our side. The error has been logged.")


_HTTP_MESSAGES = {
    404: "There is no page here.",
    405: "This page does not accept that kind of request.",
    413: "What you sent is too large.",
}


async def _check_csrf(request: web.Request) -> None:
    """A POST (or other unsafe method) must carry this session's token; nothing runs otherwise."""
    content_type = request.content_type
    if content_type == "multipart/form-data":
        handler = request.match_info.handler
        if getattr(handler, "multipart_csrf", False):
            return  # the view checks the token as the form's first field, before reading files
        raise errors.Forbidden("This form cannot be sent here")
    if content_type not in _FORM_TYPES:
        raise errors.Forbidden("This page accepts forms only")
    form = await request.post()
    if not await csrf_ok(request, form.get("csrf_token")):
        raise errors.Forbidden("This form has expired or did not come from this site; reload the page and try again")


async def error_page(
    request: web.Request, status: int, message: str, headers: dict[str, str] | None = None,
) -> web.Response:
    titles = {400: "Bad request", 401: "Signed out", 403: "Not allowed", 404: "Not found", 409: "Conflict",
              413: "Too large", 422: "Not valid", 429: "Too many attempts", 500: "Error", 503: "Unavailable"}
    response = await render(
        request, "ui/error.html",
        {"status": status, "title": titles.get(status, "Error"), "message": message,
         "request_id": request.get(REQUEST_ID, "")},
        status=status,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def content_security_policy(settings: Settings) -> str:
    image_sources = "'self' data: blob:"
    if settings.storage == "s3":
        image_sources += " https:"  # signed media URLs point at the bucket
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src {image_sources}",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ])


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if not is_ui_path(request.path):
        return
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(request.app[SETTINGS])
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    if not request.path.startswith("/ui/static/"):
        # Pages show per-user data, and some (a new API key) a secret once: never cached.
        headers["Cache-Control"] = "no-store"
