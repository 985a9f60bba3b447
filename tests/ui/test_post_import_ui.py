"""The posts list's "Import CSV" form (with a dry run) and "Export CSV" link, without a browser."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import aiohttp
import sqlalchemy as sa

from ouipost.db.tables import posts
from tests.ui.test_posts_ui import _setup

NEXT_YEAR = datetime.now(UTC).year + 1
FILE = ("content,platforms,scheduled_at\n"
        "A draft,twitter|bluesky,\n"
        f"Paris morning,bluesky,{NEXT_YEAR}-07-01T09:00:00\n")


def _import_form(csrf: str, data: str, *, dry_run: bool = False) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf_token", csrf)
    if dry_run:
        form.add_field("dry_run", "1")
    form.add_field("file", io.BytesIO(data.encode()), filename="posts.csv", content_type="text/csv")
    return form


async def _count(engine: Any, workspace_id: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(posts)
                                     .where(posts.c.workspace_id == workspace_id)))


async def test_the_posts_list_links_to_import_and_export(client: Any, make_user: Any, engine: Any,
                                                         clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    page = await (await client.get(f"/ui/w/{s['ws']}/posts?status=draft")).text()
    assert f'href="/ui/w/{s["ws"]}/posts/import"' in page
    assert f"/ui/w/{s['ws']}/posts/export.csv?status=draft" in page
    form = await (await client.get(f"/ui/w/{s['ws']}/posts/import")).text()
    assert 'name="csrf_token"' in form and 'name="dry_run"' in form and 'type="file"' in form


async def test_a_dry_run_shows_what_would_be_created_then_the_import_creates_it(
    client: Any, make_user: Any, engine: Any, clock: Any,
) -> None:
    s = await _setup(client, make_user, engine, clock)
    url = f"/ui/w/{s['ws']}/posts/import"
    dry = await client.post(url, data=_import_form(s["csrf"], FILE, dry_run=True))
    text = await dry.text()
    assert dry.status == 200 and "Dry run: nothing was created" in text and "1 scheduled and 1 drafts" in text
    assert await _count(engine, s["ws"]) == 0
    done = await client.post(url, data=_import_form(s["csrf"], FILE), allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == f"/ui/w/{s['ws']}/posts"
    assert await _count(engine, s["ws"]) == 2
    listed = await (await client.get(f"/ui/w/{s['ws']}/posts")).text()
    assert "Imported 2 posts: 1 scheduled, 1 drafts." in listed


async def test_bad_lines_are_listed_and_nothing_is_created(client: Any, make_user: Any, engine: Any,
                                                           clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    refused = await client.post(f"/ui/w/{s['ws']}/posts/import",
                                data=_import_form(s["csrf"], "content,platforms\nFine,bluesky\n<b>x</b>,myspace\n"))
    text = await refused.text()
    assert refused.status == 422 and "<td>3</td><td>platforms</td>" in text and "myspace" in text
    assert "<b>x</b>" not in text  # nothing of the file is echoed unescaped
    assert await _count(engine, s["ws"]) == 0


async def test_the_import_form_needs_its_csrf_token_and_posts_manage(client: Any, make_user: Any, engine: Any,
                                                                    clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    forged = await client.post(f"/ui/w/{s['ws']}/posts/import", data=_import_form("not-the-token", FILE))
    assert forged.status == 403 and await _count(engine, s["ws"]) == 0
    viewer = await _setup(client, make_user, engine, clock, role="viewer")
    page = await client.get(f"/ui/w/{viewer['ws']}/posts/import")
    assert page.status == 403


async def test_export_downloads_the_filtered_posts_as_csv(client: Any, make_user: Any, engine: Any,
                                                          clock: Any) -> None:
    s = await _setup(client, make_user, engine, clock)
    await client.post(f"/ui/w/{s['ws']}/posts/import", data=_import_form(s["csrf"], FILE), allow_redirects=False)
    resp = await client.get(f"/ui/w/{s['ws']}/posts/export.csv?status=scheduled&network=&from=&to=")
    assert resp.status == 200 and resp.headers["Content-Disposition"].startswith("attachment")
    lines = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(line["content"], line["status"], line["network"]) for line in lines] == [
        ("Paris morning", "scheduled", "bluesky")]
