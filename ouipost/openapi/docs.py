"""GET /openapi.json (the document, no auth) and GET /docs (Swagger UI, offline).

Swagger UI's files come from the `openapi-ui-bundles` package (Swagger UI 5, which renders OpenAPI
3.1; `swagger-ui-bundle` on PyPI still ships 4.15, which refuses 3.1 documents) and are served by
the app under /docs/assets/; the page starts it with docs-init.js from this package, so it runs
under a Content-Security-Policy without inline scripts and fetches nothing from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openapi_ui_bundles
from aiohttp import web

from ouipost.http.web import dumps_bytes
from ouipost.openapi.spec import build_spec

SWAGGER_UI_DIR = Path(openapi_ui_bundles.swagger_ui.static_path)
INIT_SCRIPT = Path(__file__).parent / "static" / "docs-init.js"
ASSETS = "/docs/assets"
# The page's own files only; Swagger UI sets element styles from its script, and shows data: images.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
OPENAPI_CACHE = web.AppKey("openapi_cache", dict)

DOCS_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Oui Post API</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
  <link rel="stylesheet" href="{ASSETS}/index.css">
  <link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS}/swagger-ui-bundle.js"></script>
  <script src="{ASSETS}/swagger-ui-standalone-preset.js"></script>
  <script src="{ASSETS}/docs-init.js"></script>
</body>
</html>
"""


def setup_docs(app: web.Application) -> None:
    """Add /openapi.json, /docs and its assets to `app` (after every documented route)."""
    app[OPENAPI_CACHE] = {}
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs_page)
    app.router.add_get(f"{ASSETS}/docs-init.js", init_script)
    app.router.add_static(ASSETS, SWAGGER_UI_DIR, name="docs_assets")


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The app's document, built on first use (its routes are fixed once it runs)."""
    cache = app[OPENAPI_CACHE]
    if "document" not in cache:
        cache["document"] = build_spec(app)
    return cache["document"]


async def openapi_json(request: web.Request) -> web.Response:
    cache = request.app[OPENAPI_CACHE]
    if "body" not in cache:
        cache["body"] = dumps_bytes(openapi_document(request.app))
    return web.Response(body=cache["body"], content_type="application/json", charset="utf-8")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html", headers={"Content-Security-Policy": DOCS_CSP})


async def init_script(request: web.Request) -> web.FileResponse:
    return web.FileResponse(INIT_SCRIPT, headers={"Content-Type": "text/javascript; charset=utf-8"})
