"""Posts in bulk in the admin UI: the "Import CSV" form (with a dry run) and the "Export CSV" download
of the posts list. The same steps as POST /api/posts/import and GET /api/posts/export
(ouipost.api.post_import.run_import, ouipost.posts.csv_io); errors are the API's, shown per line.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ouipost.api.post_import import read_csv_form, run_import, stream_csv
from ouipost.core import errors
from ouipost.http.context import DB
from ouipost.posts import approval, csv_io
from ouipost.ui.common import UI_USER, UI_WORKSPACE, accepts_multipart, multipart_with_csrf, redirect, render, ui_view
from ouipost.ui.views.posts import MANAGE, _zone, list_query_from

routes = web.RouteTableDef()
TEMPLATE = "ui/posts/import.html"


def _context(request: web.Request, **extra: Any) -> dict[str, Any]:
    zone = str((request[UI_WORKSPACE].get("settings") or {}).get("timezone") or "UTC")
    return {"zone": zone, "columns": csv_io.IMPORT_COLUMNS, "max_rows": csv_io.MAX_ROWS,
            "max_mb": csv_io.MAX_IMPORT_BYTES >> 20, "errors": {}, "rows": [], "planned": None, "dry_run": False,
            **extra}


@routes.get("/ui/w/{ws}/posts/import")
@ui_view(MANAGE, workspace=True)
async def import_page(request: web.Request) -> web.Response:
    return await render(request, TEMPLATE, _context(request))


@routes.post("/ui/w/{ws}/posts/import")
@ui_view(MANAGE, workspace=True)
@accepts_multipart
async def import_submit(request: web.Request) -> web.Response:
    """csrf_token, dry_run (a checkbox), then the file; a dry run shows what would be created, a
    refused file every bad line with its fields, an import goes back to the posts list."""
    workspace_id = request[UI_WORKSPACE]["id"]
    reader = await multipart_with_csrf(request)
    dry_run = False
    try:
        data, values = await read_csv_form(reader, text_fields=("dry_run",))
        dry_run = values.get("dry_run") in ("1", "on", "true")
        outcome = await run_import(request.app, workspace_id, data, dry_run=dry_run,
                                   may_approve=request[UI_USER].can(approval.PERMISSION))
    except errors.ApiError as exc:
        rows = exc.details.get("rows") if exc.status == 422 else None
        problems = {} if rows else {"file": [exc.message]}
        return await render(request, TEMPLATE, _context(request, errors=problems, rows=rows or [], dry_run=dry_run,
                                                         message=exc.message), status=exc.status)
    summary = outcome.as_dict()
    if dry_run:
        return await render(request, TEMPLATE, _context(request, planned=summary, dry_run=True))
    return await redirect(request, f"/ui/w/{workspace_id}/posts",
                          f"Imported {summary['created']} posts: {summary['scheduled']} scheduled, "
                          f"{summary['drafts']} drafts.")


@routes.get("/ui/w/{ws}/posts/export.csv")
@ui_view(workspace=True)
async def export_csv(request: web.Request) -> web.StreamResponse:
    """The posts list's filters (status, network, from, to; not the text search) as the API's export."""
    workspace = request[UI_WORKSPACE]
    _typed, query, problems = list_query_from(request, _zone(workspace))
    if problems:
        raise errors.ValidationError("The filters are not valid", details=problems)
    pieces = csv_io.export_csv(request.app[DB], workspace["id"], status=query.get("status"),
                               platform=query.get("platform"), start=query.get("from_"), end=query.get("to"))
    return await stream_csv(request, pieces, f"posts-{workspace['id']}.csv")
