"""Bulk CSV import (POST /api/posts/import) and export (GET /api/posts/export)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from ouipost.app import create_app
from ouipost.db.tables import media, posts
from ouipost.posts import csv_io
from tests.media_samples import png_bytes

BLUESKY = {"platform": "bluesky", "identifier": "alice.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"}
NEXT_YEAR = datetime.now(UTC).year + 1


def form(data: bytes | str, name: str = "posts.csv") -> aiohttp.FormData:
    body = aiohttp.FormData()
    raw = data.encode() if isinstance(data, str) else data
    # A stream, not bytes: aiohttp warns about bytes bodies over 1 MB (warnings are errors here).
    body.add_field("file", io.BytesIO(raw), filename=name, content_type="text/csv")
    return body


async def upload(client: TestClient, key: Any, data: bytes | str, *, query: str = "", expect: int = 201,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await client.post(f"/api/posts/import{query}", data=form(data), headers={**key.headers(), **(headers or {})})
    body = await resp.json()
    assert resp.status == expect, body
    return body


async def connect_bluesky(client: TestClient, key: Any) -> str:
    resp = await client.post("/api/accounts", json=BLUESKY, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["account"]["id"]


async def stored_posts(engine: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(posts).order_by(posts.c.created_at))).mappings()]


async def test_rows_become_drafts_and_scheduled_posts_in_their_time_zones(client: TestClient, key: Any,
                                                                          engine: Any) -> None:
    await connect_bluesky(client, key)
    data = (
        "content,platforms,scheduled_at,timezone,title,link\n"
        "A draft for two networks,twitter|bluesky,,,,https://example.com/a\n"
        f"Paris morning,bluesky,{NEXT_YEAR}-07-01T09:00:00,Europe/Paris,,\n"
        f"Explicit offset,bluesky,{NEXT_YEAR}-07-01T09:00:00-04:00,,,\n"
        f'"Two\nlines",bluesky,{NEXT_YEAR}-01-15 09:00,,A title,\n'
    )
    body = (await upload(client, key, data))["data"]
    assert (body["created"], body["drafts"], body["scheduled"], body["dry_run"]) == (4, 1, 3, False)
    assert [p["line"] for p in body["posts"]] == [2, 3, 4, 5]
    by_content = {p["content"]: p for p in await stored_posts(engine)}
    assert by_content["A draft for two networks"]["status"] == "draft"
    assert by_content["A draft for two networks"]["platforms"] == ["twitter", "bluesky"]
    assert by_content["A draft for two networks"]["link"] == "https://example.com/a"
    paris = by_content["Paris morning"]
    assert paris["status"] == "scheduled" and paris["scheduled_timezone"] == "Europe/Paris"
    assert paris["scheduled_at"] == datetime(NEXT_YEAR, 7, 1, 7, 0, tzinfo=UTC)  # CEST is UTC+2
    assert by_content["Explicit offset"]["scheduled_at"] == datetime(NEXT_YEAR, 7, 1, 13, 0, tzinfo=UTC)
    # No time zone in the row: the workspace's (UTC by default); a cell's line break is kept.
    assert by_content["Two\nlines"]["scheduled_at"] == datetime(NEXT_YEAR, 1, 15, 9, 0, tzinfo=UTC)
    assert by_content["Two\nlines"]["title"] == "A title"
    listed = await client.get("/api/posts?status=scheduled", headers=key.headers())
    assert (await listed.json())["data"]["pagination"]["total_items"] == 3


async def test_every_bad_row_is_reported_with_its_line_and_nothing_is_created(client: TestClient, key: Any,
                                                                              engine: Any) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = (
        "content,platforms,scheduled_at,timezone,first_comment,link\n"
        "A fine row,bluesky,,,,\n"                                   # 2: fine
        "   ,bluesky,,,,\n"                                          # 3: blank content
        "Hello,myspace,,,,\n"                                        # 4: unknown network
        "Hello,bluesky,,,,not a url\n"                               # 5: bad link
        "Hello,bluesky,tomorrow,,,\n"                                # 6: not a date
        f"Hello,bluesky,{NEXT_YEAR}-01-01T10:00,Mars/Base,,\n"       # 7: unknown zone
        "Hello,bluesky,,Europe/Paris,,\n"                            # 8: zone without time
        "Hello,pinterest,,,Thanks for reading!,\n"                   # 9: no comments on Pinterest
        f"{'x' * 281},twitter,,,,\n"                                 # 10: too long for X
        f"Hello,bluesky,{past},,,\n"                                 # 11: in the past
        f"Hello,twitter,{NEXT_YEAR}-01-01T10:00:00Z,,,\n"            # 12: no X account to publish with
        "Hello,bluesky,,,,,surplus\n"                                # 13: more cells than columns
    )
    await connect_bluesky(client, key)
    error = (await upload(client, key, data, expect=422))["error"]
    assert error["code"] == "VALIDATION_ERROR"
    rows = {r["line"]: r["fields"] for r in error["details"]["rows"]}
    assert sorted(rows) == list(range(3, 14))
    assert "content" in rows[3]
    assert "platforms" in rows[4] and "link" in rows[5]
    assert "scheduled_at" in rows[6] and "timezone" in rows[7] and "timezone" in rows[8]
    assert rows[9] == {"first_comment": ["A first comment cannot be left on pinterest (there are no comments "
                                         "there): remove first_comment or those networks"]}
    assert "twitter" in rows[10]
    assert rows[11] == {"scheduled_at": ["must be in the future"]}
    assert "twitter" in rows[12] and "account" in rows[12]["twitter"][0]
    assert "_row" in rows[13]
    assert await stored_posts(engine) == []


async def test_a_dry_run_says_what_would_be_created_and_creates_nothing(client: TestClient, key: Any,
                                                                        engine: Any) -> None:
    await connect_bluesky(client, key)
    data = f"content,platforms,scheduled_at\nOne,bluesky,\nTwo,bluesky,{NEXT_YEAR}-03-01T10:00:00Z\n"
    body = (await upload(client, key, data, query="?dry_run=1", expect=200))["data"]
    assert (body["dry_run"], body["created"], body["drafts"], body["scheduled"]) == (True, 0, 1, 1)
    assert [p["id"] for p in body["posts"]] == [None, None]
    assert await stored_posts(engine) == []
    bad = await upload(client, key, "content,platforms\n,bluesky\n", query="?dry_run=1", expect=422)
    assert bad["error"]["details"]["rows"][0]["line"] == 2


async def test_a_file_with_a_bom_and_semicolons_is_read(client: TestClient, key: Any, engine: Any) -> None:
    data = "\ufeffContent;Platforms;Title\r\n\"Bonjour; à tous\";bluesky twitter;Salut\r\n\r\n".encode()
    body = (await upload(client, key, data))["data"]
    assert body["created"] == 1
    (post,) = await stored_posts(engine)
    assert post["content"] == "Bonjour; à tous" and post["platforms"] == ["bluesky", "twitter"]


@pytest.mark.parametrize(("data", "words"), [
    (b"content,platforms\n" + "Caf\u00e9,bluesky\n".encode("latin-1"), "not UTF-8"),
    (b"content,colour\nhi,red\n", "Unknown column"),
    (b"content\nhi\n", "Missing column"),
    (b"content,platforms\n", "no rows"),
    (b"", "empty"),
])
async def test_a_file_that_cannot_be_read_is_refused_as_a_whole(client: TestClient, key: Any, data: bytes,
                                                                words: str) -> None:
    error = (await upload(client, key, data, expect=422))["error"]
    assert words in error["message"] and error["details"]["file"]


async def test_more_than_5000_rows_are_refused(client: TestClient, key: Any, engine: Any) -> None:
    data = "content,platforms\n" + "Hello,bluesky\n" * (csv_io.MAX_ROWS + 1)
    error = (await upload(client, key, data, expect=422))["error"]
    assert "at most 5,000 rows" in error["message"] and "5,001" in error["message"]
    assert await stored_posts(engine) == []


async def test_the_file_has_a_byte_cap_and_must_come_as_multipart(client: TestClient, key: Any) -> None:
    huge = "content,platforms\n" + "x" * (csv_io.MAX_IMPORT_BYTES + 1)
    resp = await client.post("/api/posts/import", data=form(huge), headers=key.headers())
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    resp = await client.post("/api/posts/import", data=b"content,platforms\nhi,bluesky\n",
                             headers={**key.headers(), "Content-Type": "text/csv"})
    assert resp.status == 415


async def test_import_needs_posts_write(client: TestClient, make_key: Any) -> None:
    reader = await make_key(permissions=["posts.read"])
    resp = await client.post("/api/posts/import", data=form("content,platforms\nhi,bluesky\n"),
                             headers=reader.headers())
    assert resp.status == 403


async def test_the_same_idempotency_key_replays_the_first_import(client: TestClient, key: Any, engine: Any) -> None:
    data = "content,platforms\nOnce,bluesky\n"
    first = await upload(client, key, data, headers={"Idempotency-Key": "import-1"})
    again = {**key.headers(), "Idempotency-Key": "import-1"}
    resp = await client.post("/api/posts/import", data=form(data), headers=again)
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
    assert (await resp.json()) == first
    assert len(await stored_posts(engine)) == 1
    other = await client.post("/api/posts/import", data=form("content,platforms\nOther,bluesky\n"),
                              headers={**key.headers(), "Idempotency-Key": "import-1"})
    assert (await other.json())["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


# --- media URLs --------------------------------------------------------------------------------


@pytest.fixture
async def media_server(aiohttp_server: Any) -> str:
    """A local server with an image, a page that is no media, a 404 and a redirect to the image."""
    image = png_bytes(64, 48)

    async def square(request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/png")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="image/png")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/square.png")

    app = web.Application()
    app.router.add_get("/square.png", square)
    app.router.add_get("/page.png", page)
    app.router.add_get("/moved", moved)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def private_client(aiohttp_client: Any, settings: Any, engine: Any, clock: Any) -> TestClient:
    """OUIPOST_WEBHOOK_ALLOW_PRIVATE on, as in a sandbox: the media server listens on 127.0.0.1."""
    return await aiohttp_client(create_app(settings.with_overrides(webhook_allow_private=True), engine=engine,
                                           clock=clock))


async def test_media_urls_are_fetched_and_attached(private_client: TestClient, key: Any, engine: Any,
                                                   media_server: str) -> None:
    data = f"content,platforms,media_urls\nLook,bluesky,{media_server}/square.png | {media_server}/moved\n"
    body = (await upload(private_client, key, data))["data"]
    assert body["posts"][0]["media"] == 2
    post_id = body["posts"][0]["id"]
    resp = await private_client.get(f"/api/posts/{post_id}", headers=key.headers())
    shown = (await resp.json())["data"]["post"]["media"]
    assert [m["type"] for m in shown] == ["image", "image"]
    url = URL(shown[0]["url"])
    stored = await private_client.get(url.path_qs)
    assert stored.status == 200 and (await stored.read()).startswith(b"\x89PNG")


async def test_a_media_url_that_fails_is_an_error_of_its_row(private_client: TestClient, key: Any, engine: Any,
                                                             media_server: str) -> None:
    data = (f"content,platforms,media_urls\nFine,bluesky,{media_server}/square.png\n"
            f"Missing,bluesky,{media_server}/nothing.png\nNot media,bluesky,{media_server}/page.png\n")
    error = (await upload(private_client, key, data, expect=422))["error"]
    rows = {r["line"]: r["fields"] for r in error["details"]["rows"]}
    assert sorted(rows) == [3, 4]
    assert "HTTP 404" in rows[3]["media_urls"][0]
    assert "not an accepted type" in rows[4]["media_urls"][0]
    assert await stored_posts(engine) == []
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(media)) == 0


async def test_media_urls_on_private_addresses_are_refused(client: TestClient, key: Any, media_server: str) -> None:
    port = media_server.rsplit(":", 1)[1]
    data = (f"content,platforms,media_urls\nLocal,bluesky,https://127.0.0.1:{port}/square.png\n"
            "Metadata,bluesky,https://169.254.169.254/latest/meta-data\n"
            f"Plain http,bluesky,{media_server}/square.png\n")
    error = (await upload(client, key, data, expect=422))["error"]
    rows = {r["line"]: r["fields"] for r in error["details"]["rows"]}
    assert "private" in rows[2]["media_urls"][0] and "private" in rows[3]["media_urls"][0]
    assert "https" in rows[4]["media_urls"][0]


# --- export ------------------------------------------------------------------------------------


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_export_lists_each_post_and_network_with_filters_and_never_another_workspace(
    client: TestClient, make_key: Any,
) -> None:
    mine, theirs = await make_key(), await make_key()
    await connect_bluesky(client, mine)
    await upload(client, mine, "content,platforms,scheduled_at\n"
                               "=cmd|' /C calc'!A0,twitter|bluesky,\n"
                               f"Later,bluesky,{NEXT_YEAR}-05-05T10:00:00Z\n")
    await upload(client, theirs, "content,platforms\nSecret,bluesky\n")
    resp = await client.get("/api/posts/export?format=csv", headers=mine.headers())
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert resp.headers["X-Request-ID"] and resp.headers["X-RateLimit-Limit"]
    lines = read_csv(await resp.text())
    assert list(lines[0]) == list(csv_io.EXPORT_COLUMNS)
    assert [(line["content"], line["network"]) for line in lines] == [
        ("Later", "bluesky"), ("'=cmd|' /C calc'!A0", "twitter"), ("'=cmd|' /C calc'!A0", "bluesky"),
    ]
    assert lines[0]["status"] == "scheduled" and lines[0]["scheduled_at"] == f"{NEXT_YEAR}-05-05T10:00:00Z"
    assert lines[0]["result"] == "pending" and lines[0]["impressions"] == "0"
    assert "Secret" not in await resp.text()
    drafts = read_csv(await (await client.get("/api/posts/export?status=draft", headers=mine.headers())).text())
    assert {line["status"] for line in drafts} == {"draft"} and len(drafts) == 2
    twitter = read_csv(await (await client.get("/api/posts/export?platform=twitter", headers=mine.headers())).text())
    assert len(twitter) == 2  # the post targeting X, with both its networks


async def test_export_reads_in_chunks_and_misses_no_post(client: TestClient, key: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_io, "EXPORT_CHUNK", 3)
    rows = "".join(f"Post {i},bluesky\n" for i in range(10))
    await upload(client, key, "content,platforms\n" + rows)
    lines = read_csv(await (await client.get("/api/posts/export", headers=key.headers())).text())
    assert sorted(line["content"] for line in lines) == sorted(f"Post {i}" for i in range(10))
    assert len({line["post_id"] for line in lines}) == 10


async def test_export_refuses_other_formats(client: TestClient, key: Any) -> None:
    resp = await client.get("/api/posts/export?format=xlsx", headers=key.headers())
    assert resp.status == 422 and "format" in (await resp.json())["error"]["details"]


async def test_scheduling_rows_in_a_workspace_that_requires_approval_needs_posts_approve(
    client: TestClient, make_key: Any, engine: Any,
) -> None:
    writer = await make_key(permissions=["posts.read", "posts.write", "accounts.manage", "workspaces.manage"])
    resp = await client.put(f"/api/workspaces/{writer.workspace_id}", json={"settings": {"approval_required": True}},
                            headers=writer.headers())
    assert resp.status == 200, await resp.text()
    await connect_bluesky(client, writer)
    scheduled = f"content,platforms,scheduled_at\nLater,bluesky,{NEXT_YEAR}-05-05T10:00:00Z\n"
    refused = await upload(client, writer, scheduled, expect=403)
    assert refused["error"]["details"]["required_permission"] == "posts.approve"
    assert await stored_posts(engine) == []
    assert (await upload(client, writer, "content,platforms\nA draft,bluesky\n"))["data"]["drafts"] == 1
    approver = await make_key(workspace=writer.workspace_id)
    assert (await upload(client, approver, scheduled))["data"]["scheduled"] == 1
