"""Bulk import and export of posts as CSV, for the API (ouipost/api/post_import.py) and the admin UI.

Import: a UTF-8 file (with or without a BOM), comma- or semicolon-separated (whichever the header
line holds more of), with a header naming some of IMPORT_COLUMNS (`content` and `platforms` are
required). One row is one post: its cells become a PostBody (`first_comment` included: the post's
first comment, checked per network as the API checks it) and, when `scheduled_at` is set, a
ScheduleBody, loaded with the API's own schemas; several platforms or media URLs in one cell are
separated by `|` or spaces. Every row is checked before anything is kept:

1. the cells (the schemas, the file's shape, at most MAX_ROWS rows);
2. the media URLs: each is checked and fetched with the webhooks' SSRF guard (ouipost.webhooks.service:
   `check_url`, then a connector that refuses private addresses at connection time), streamed to a
   temp file with the upload's size caps and type sniffing (ouipost.posts.media.receive_upload) and probed
   as an upload is (ouipost.posts.uploads.probe);
3. the domain functions themselves, in one transaction: `actions.create_draft`, the media rules of
   `uploads.check_can_attach`, `actions.schedule`. A row that breaks a rule there is reported with
   its line and the transaction is rolled back at the end, so a file with any bad row creates
   nothing, and a dry run rolls back what it did. Otherwise the files are stored and it commits.

Errors: 422 VALIDATION_ERROR with `details.rows = [{"line": n, "fields": {...}}]` (the line where
the row starts in the file, the header being line 1), or `details.file` for what concerns the whole
file (not UTF-8, no header, unknown columns, too many rows).

Export: the posts a list filter selects, newest first, read in keyset chunks of EXPORT_CHUNK posts
(never all at once), one CSV line per post and network with the network's result and latest insight
totals, and the post's first comment last. Cells that a spreadsheet would run as a formula are quoted
(`csv_cell`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

import aiohttp
import marshmallow
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost import __version__
from ouipost.analytics import service as analytics
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.core.ids import new_id
from ouipost.db.rows import MediaRow, PostRow, TargetRow, records
from ouipost.db.tables import media as media_table
from ouipost.db.tables import posts
from ouipost.posts import actions, service, uploads
from ouipost.posts import media as media_files
from ouipost.storage import Storage
from ouipost.webhooks import service as webhooks
from ouipost.webhooks.events import record_events

if TYPE_CHECKING:
    from aiohttp import BodyPartReader

IMPORT_COLUMNS = ("content", "platforms", "scheduled_at", "timezone", "media_urls", "first_comment", "title", "link")
REQUIRED_COLUMNS = ("content", "platforms")
MAX_ROWS = 5_000
MAX_IMPORT_BYTES = 10 << 20  # 10 MB of CSV: 5,000 rows of 2 KB
MAX_MEDIA_PER_ROW = 35  # the most any network takes on one post (TikTok photo posts)
MAX_MEDIA_PER_IMPORT = 5_000
FETCH_CONCURRENCY = 4
# A media URL must answer within these; a large video may take its time, never hold a request forever.
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10, sock_read=30)
MAX_REDIRECTS = 3
LIST_SEPARATOR = re.compile(r"[|\s]+")
EXPORT_CHUNK = 500
EXPORT_COLUMNS = (
    "post_id", "status", "content", "title", "link", "hashtags", "platforms", "scheduled_at", "timezone",
    "published_at", "created_at", "network", "account_id", "result", "remote_id", "url", "error_code",
    "error_message", "impressions", "engagement", "clicks", "first_comment",
)
CSV_RISKY = ("=", "+", "-", "@", "\t", "\r")


# ------------------------------------------------------------------------------------------------
# Reading the file


@dataclass
class CsvRow:
    line: int  # where the row starts in the file (the header is line 1)
    cells: dict[str, str]
    problems: dict[str, list[str]] = field(default_factory=dict)


def _file_error(message: str) -> errors.ValidationError:
    return errors.ValidationError(message, details={"file": [message]})


def sniff_delimiter(header_line: str) -> str:
    """`;` when the header line holds more semicolons than commas, else `,`."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def read_rows(data: bytes) -> list[CsvRow]:
    """The rows of a CSV file, cells keyed by column. 413 over MAX_IMPORT_BYTES; 422 (details.file)
    when the file is not UTF-8, has no header, names unknown or repeated columns, lacks a required
    one, does not parse, or holds more than MAX_ROWS rows. Blank lines are skipped; a row with more
    cells than the header has a problem of its own (kept in `problems`)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise errors.PayloadTooLarge(f"A CSV import is limited to {MAX_IMPORT_BYTES >> 20} MB",
                                     details={"max_bytes": MAX_IMPORT_BYTES})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise _file_error(f"The file is not UTF-8 text (line {line}); save it as CSV UTF-8") from exc
    header_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(header_line), strict=True)
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if not any(header):
            raise _file_error("The file is empty; its first line must name the columns, e.g. content,platforms")
        unknown = [name for name in header if name not in IMPORT_COLUMNS]
        if unknown:
            raise _file_error(f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; "
                              f"the columns are {', '.join(IMPORT_COLUMNS)}")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise _file_error(f"Columns named twice: {', '.join(repeated)}")
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise _file_error(f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        rows: list[CsvRow] = []
        last_line = reader.line_num
        for record in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            row = CsvRow(line, {name: (record[i] if i < len(record) else "") for i, name in enumerate(header)})
            if len(record) > len(header) and any(cell.strip() for cell in record[len(header):]):
                row.problems["_row"] = [f"The row has {len(record)} cells; the header names {len(header)} columns"]
            rows.append(row)
    except csv.Error as exc:
        raise _file_error(f"The file is not valid CSV (line {reader.line_num}): {exc}") from exc
    if len(rows) > MAX_ROWS:
        raise _file_error(f"An import takes at most {MAX_ROWS:,} rows; this file has {len(rows):,}. "
                          "Split it into several files.")
    if not rows:
        raise _file_error("The file has a header but no rows")
    return rows


# ------------------------------------------------------------------------------------------------
# Rows as the API's bodies


@dataclass
class PlannedPost:
    """A row turned into what POST /api/posts and POST /api/posts/{id}/schedule would receive."""

    line: int
    body: dict[str, Any] | None = None  # a loaded PostBody
    schedule: dict[str, Any] | None = None  # a loaded ScheduleBody; None: the post stays a draft
    media_urls: list[str] = field(default_factory=list)
    media: list[FetchedMedia] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add_error(self, exc: errors.ApiError) -> None:
        """An error of the domain functions, by field (or network) as the API details it."""
        for name, messages in (exc.details or {"_row": [exc.message]}).items():
            self.add(name, messages)

    def add(self, name: str, messages: Any) -> None:
        """Note messages on a field: a string, a list of them, or marshmallow's {index: [...]} of a list."""
        if isinstance(messages, dict):
            for key, inner in messages.items():
                self.add(name, [f"item {key}: {m}" for m in (inner if isinstance(inner, list) else [inner])])
            return
        found = messages if isinstance(messages, list) else [messages]
        self.problems.setdefault(name, []).extend(str(m) for m in found)


def split_cell(value: str) -> list[str]:
    """The items of a list cell (platforms, media_urls): separated by `|` or spaces."""
    return [item for item in LIST_SEPARATOR.split(value.strip()) if item]


def _text(value: str) -> str:
    return value.replace("\r\n", "\n")  # a spreadsheet's line breaks inside a cell, as clients send them


def plan_row(row: CsvRow, post_schema: marshmallow.Schema, schedule_schema: marshmallow.Schema) -> PlannedPost:
    """Load a row's cells with the API's schemas; every problem is kept on the plan, none raised."""
    planned = PlannedPost(row.line, problems={k: list(v) for k, v in row.problems.items()})
    cells = row.cells
    raw: dict[str, Any] = {"content": _text(cells.get("content", "")),
                           "platforms": split_cell(cells.get("platforms", ""))}
    for name in ("title", "link"):
        if cells.get(name, "").strip():
            raw[name] = cells[name].strip()
    if cells.get("first_comment", "").strip():  # an empty cell: no first comment
        raw["first_comment"] = _text(cells["first_comment"])
    try:
        planned.body = post_schema.load(raw)
    except marshmallow.ValidationError as exc:
        for name, messages in cast(dict[str, Any], exc.normalized_messages()).items():
            planned.add(name, messages)

    scheduled_at, zone = cells.get("scheduled_at", "").strip(), cells.get("timezone", "").strip()
    if scheduled_at:
        try:
            when = {"scheduled_at": scheduled_at, **({"timezone": zone} if zone else {})}
            planned.schedule = schedule_schema.load(when)
        except marshmallow.ValidationError as exc:
            for name, messages in cast(dict[str, Any], exc.normalized_messages()).items():
                planned.add(name, messages)
    elif zone:
        planned.add("timezone", "timezone is set but scheduled_at is empty; a row without scheduled_at becomes a draft")

    planned.media_urls = split_cell(cells.get("media_urls", ""))
    if len(planned.media_urls) > MAX_MEDIA_PER_ROW:
        planned.add("media_urls", f"At most {MAX_MEDIA_PER_ROW} media URLs per row")
        planned.media_urls = []
    return planned


# ------------------------------------------------------------------------------------------------
# Media URLs


@dataclass
class FetchedMedia:
    url: str
    received: media_files.ReceivedFile
    probed: dict[str, Any]


class _ResponseBody:
    """An HTTP answer's body where media.receive_upload expects a multipart file part."""

    def __init__(self, response: aiohttp.ClientResponse, filename: str) -> None:
        self._content = response.content
        self.filename = filename

    async def read_chunk(self, size: int) -> bytes:
        return await self._content.read(size)


def fetch_session(*, allow_private: bool) -> aiohttp.ClientSession:
    """A session for media URLs behind the webhooks' guard (every address connected to is checked),
    no cookies, no proxies from the environment."""
    return aiohttp.ClientSession(
        connector=webhooks.GuardedConnector(allow_private=allow_private, limit=FETCH_CONCURRENCY),
        timeout=FETCH_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
        headers={"User-Agent": f"OuiPost-Import/{__version__}"},
    )


class MediaFetchFailed(Exception):
    """A media URL that cannot be used; the message says why (shown in the row's errors)."""


async def fetch_media(
    session: aiohttp.ClientSession, url: str, *, allow_private: bool, limits: Mapping[str, int], tmp_dir: Path,
) -> FetchedMedia:
    """Check, download and probe one media URL as an upload is: MediaFetchFailed for a URL the guard
    refuses, an answer other than 200, a file over its type's cap, bytes of no accepted type."""
    try:
        await webhooks.check_url(url, allow_private=allow_private)
    except webhooks.InvalidWebhook as exc:
        raise MediaFetchFailed(str(exc)) from exc
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    try:
        async with session.get(url, max_redirects=MAX_REDIRECTS) as response:
            if response.status != 200:
                raise MediaFetchFailed(f"the server answered HTTP {response.status}")
            body = cast("BodyPartReader", _ResponseBody(response, name))
            received = await media_files.receive_upload(body, tmp_dir, dict(limits))
    except media_files.MediaError as exc:
        raise MediaFetchFailed(str(exc)) from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, webhooks.UnsafeTargetError):
            raise MediaFetchFailed("the host resolves only to private or reserved addresses") from exc
        raise MediaFetchFailed(f"cannot connect to {exc.host}") from exc
    except aiohttp.TooManyRedirects as exc:
        raise MediaFetchFailed(f"more than {MAX_REDIRECTS} redirects") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MediaFetchFailed(f"the download failed ({type(exc).__name__})") from exc
    try:
        probed = await asyncio.to_thread(uploads.probe, received, tmp_dir)
    except errors.ApiError as exc:
        uploads.discard(received)
        raise MediaFetchFailed(exc.message) from exc
    except BaseException:
        uploads.discard(received)
        raise
    return FetchedMedia(url, received, probed)


async def fetch_all_media(
    planned: Sequence[PlannedPost], *, allow_private: bool, limits: Mapping[str, int], tmp_dir: Path,
) -> None:
    """Fetch every row's media URLs, FETCH_CONCURRENCY at a time; a failure is a problem of its row.
    The caller discards the temp files (`discard_media`) whatever happens next."""
    total = sum(len(p.media_urls) for p in planned)
    if total > MAX_MEDIA_PER_IMPORT:
        raise _file_error(f"An import fetches at most {MAX_MEDIA_PER_IMPORT:,} media URLs; this file has {total:,}")
    if not total:
        return
    gate = asyncio.Semaphore(FETCH_CONCURRENCY)
    async with fetch_session(allow_private=allow_private) as session:

        async def one(post: PlannedPost, index: int, url: str) -> tuple[PlannedPost, int, FetchedMedia | str]:
            async with gate:
                try:
                    return post, index, await fetch_media(session, url, allow_private=allow_private,
                                                          limits=limits, tmp_dir=tmp_dir)
                except MediaFetchFailed as exc:
                    return post, index, f"{url}: {exc}"

        results = await asyncio.gather(*(one(p, i, url) for p in planned for i, url in enumerate(p.media_urls)),
                                       return_exceptions=True)
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:  # not a bad URL but trouble here (a full disk...): keep no temp file
        for result in results:
            if isinstance(result, tuple) and isinstance(result[2], FetchedMedia):
                uploads.discard(result[2].received)
        raise failure
    fetched = cast(list[tuple[PlannedPost, int, FetchedMedia | str]], results)
    for post, _index, outcome in sorted(fetched, key=lambda r: (r[0].line, r[1])):
        if isinstance(outcome, str):
            post.add("media_urls", outcome)
        else:
            post.media.append(outcome)


def discard_media(planned: Sequence[PlannedPost]) -> None:
    for post in planned:
        for item in post.media:
            uploads.discard(item.received)


# ------------------------------------------------------------------------------------------------
# Importing


@dataclass
class ImportOutcome:
    dry_run: bool
    posts: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        drafts = sum(1 for p in self.posts if p["status"] == "draft")
        return {
            "dry_run": self.dry_run,
            "created": 0 if self.dry_run else len(self.posts),
            "drafts": drafts,
            "scheduled": len(self.posts) - drafts,
            "posts": self.posts,
        }


def rows_error(planned: Sequence[PlannedPost]) -> errors.ValidationError | None:
    """422 listing every row with problems (line and fields), or None when there is none."""
    bad = [{"line": p.line, "fields": p.problems} for p in planned if p.problems]
    if not bad:
        return None
    lines = ", ".join(str(b["line"]) for b in bad[:10]) + (" ..." if len(bad) > 10 else "")
    return errors.ValidationError(
        f"{len(bad)} row{'s' if len(bad) > 1 else ''} cannot be imported (line{'s' if len(bad) > 1 else ''} "
        f"{lines}); nothing was created", details={"rows": bad},
    )


def _media_row(post: PostRow, item: FetchedMedia, now: datetime) -> MediaRow:
    # The columns uploads.attach writes for an upload, for a file that came from a URL.
    received, probed = item.received, item.probed
    media_id = new_id("media")
    return {
        "id": media_id, "workspace_id": post["workspace_id"], "post_id": post["id"],
        "type": received.sniffed.kind, "filename": received.filename, "size": received.size,
        "mime_type": received.sniffed.mime_type, "sha256": received.sha256,
        "width": probed["width"], "height": probed["height"], "duration": probed["duration"], "alt_text": None,
        "storage_key": f"{post['workspace_id']}/{media_id}/original.{received.sniffed.extension}",
        "thumbnail_key": f"{post['workspace_id']}/{media_id}/thumbnail" if probed["thumbnail"] else None,
        "created_at": now,
    }


async def create_drafts(
    conn: AsyncConnection, workspace_id: str, planned: Sequence[PlannedPost], now: datetime,
) -> list[tuple[PlannedPost, PostRow]]:
    """actions.create_draft for every row whose cells loaded, in bulk: each row's targets resolved
    and its draft rules enforced as there (a refusal is noted on its row), then every draft inserted
    by one statement per table and every post.created event recorded at once. Keep in step with
    actions.create_draft."""
    ready: list[tuple[PlannedPost, list[service.Target]]] = []
    for post in planned:
        if post.body is None:
            continue  # its cells were refused: nothing for the domain to check
        try:
            targets = await service.resolve_targets(conn, workspace_id, post.body["platforms"])
            actions.enforce_rules(post.body, targets, media=[])
        except errors.ValidationError as exc:
            post.add_error(exc)
            continue
        ready.append((post, targets))
    rows = await service.insert_posts(conn, workspace_id=workspace_id, now=now,
                                      items=[(post.body or {}, targets) for post, targets in ready])
    await record_events(conn, [("post.created", {"post": service.post_view(row)}, workspace_id) for row in rows],
                        now=now)
    return [(post, row) for (post, _), row in zip(ready, rows, strict=True)]


async def _attach_and_schedule(
    conn: AsyncConnection, post: PlannedPost, created: PostRow, now: datetime,
) -> tuple[PostRow, list[tuple[MediaRow, FetchedMedia]]]:
    """The row's media (checked against the media rules of its networks one by one, as uploads
    are), then its schedule. Raises the API's errors."""
    stored: list[tuple[MediaRow, FetchedMedia]] = []
    for item in post.media:
        row = _media_row(created, item, now)
        await uploads.check_can_attach(conn, created, row)
        await conn.execute(media_table.insert(), row)
        stored.append((row, item))
    if post.schedule is not None:
        created = await actions.schedule(conn, created, post.schedule, now)
    return created, stored


async def _forget_files(storage: Storage, rows: Sequence[MediaRow]) -> None:
    # What rules.forget_media_files does, with the storage rather than the app (none here).
    for row in rows:
        for key in (row["storage_key"], row["thumbnail_key"]):
            if key:
                await storage.delete(key)




async def import_posts(
    engine: AsyncEngine, storage: Storage, workspace_id: str, planned: Sequence[PlannedPost], now: datetime,
    *, dry_run: bool,
) -> ImportOutcome:
    """Create (and schedule) every planned post in one transaction, or none. Every row whose cells
    loaded goes through the domain functions, even in a file with bad rows, so that one answer
    lists every problem; a row the domain refuses is noted on its plan, and at the end 422 lists
    every bad row (rows_error) and everything is rolled back. A dry run rolls back too. Media files
    are stored just before the commit (and removed if it fails). The caller discards the temp files."""
    outcome: list[dict[str, Any]] = []
    files: list[tuple[MediaRow, FetchedMedia]] = []
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            for post, created in await create_drafts(conn, workspace_id, planned, now):
                try:
                    created, stored = await _attach_and_schedule(conn, post, created, now)
                except (errors.ValidationError, errors.Conflict, errors.NotFound) as exc:
                    post.add_error(exc)
                    continue
                files.extend(stored)
                outcome.append({
                    "line": post.line, "id": None if dry_run else created["id"], "status": created["status"],
                    "scheduled_at": isoformat(created["scheduled_at"]),
                    "scheduled_timezone": created["scheduled_timezone"],
                    "platforms": created["platforms"], "media": len(stored),
                })
            error = rows_error(planned)
            if error is not None:
                raise error
            if dry_run:
                await transaction.rollback()
                return ImportOutcome(True, outcome)
            try:
                for row, item in files:
                    await storage.put_file(row["storage_key"], item.received.path, row["mime_type"])
                    if row["thumbnail_key"]:  # the probe made a thumbnail
                        await storage.put_file(row["thumbnail_key"], item.probed["thumbnail"],
                                               item.probed["thumbnail_type"])
                await transaction.commit()
            except BaseException:
                await _forget_files(storage, [row for row, _ in files])
                raise
        finally:
            if transaction.is_active:
                await transaction.rollback()
    return ImportOutcome(False, outcome)


# ------------------------------------------------------------------------------------------------
# Exporting


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that no spreadsheet runs as a formula: text starting with = + - @ (or a
    tab or carriage return) gets a leading quote. Numbers stay numbers; None is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        value = isoformat(value)
    text = str(value)
    return "'" + text if text.startswith(CSV_RISKY) else text


def _csv_lines(rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return out.getvalue()


def export_header() -> str:
    return _csv_lines([EXPORT_COLUMNS])


def _export_lines(
    post: PostRow, targets: Sequence[TargetRow], totals: Mapping[str, Any],
) -> list[list[Any]]:
    common = [
        post["id"], post["status"], post["content"], post["title"], post["link"], " ".join(post["hashtags"] or []),
        "|".join(post["platforms"] or []), post["scheduled_at"], post["scheduled_timezone"], post["published_at"],
        post["created_at"],
    ]
    by_network = totals.get("by_platform") or {}
    lines = []
    each: Sequence[Mapping[str, Any]] = targets or [{}]  # a post without targets: one line, no target
    for t in each:
        figures = by_network.get(t.get("network"), {})
        lines.append([
            *common, t.get("network"), t.get("account_id"), t.get("status"), t.get("remote_id"), t.get("remote_url"),
            t.get("error_code"), t.get("error_message"),
            *(int(figures.get(name, 0)) for name in ("impressions", "engagement", "clicks")),
            post.get("first_comment"),
        ])
    return lines


async def _export_chunk(
    conn: AsyncConnection, clauses: Sequence[sa.ColumnElement[bool]], after: tuple[datetime, str] | None,
) -> tuple[list[PostRow], str]:
    query = sa.select(posts).where(*clauses)
    if after is not None:
        # (created_at, id) < after, written so that the (workspace_id, created_at) index serves it.
        query = query.where(posts.c.created_at <= after[0],
                            sa.or_(posts.c.created_at < after[0], posts.c.id < after[1]))
    result = await conn.execute(query.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(EXPORT_CHUNK))
    rows = records(PostRow, result)
    ids = [r["id"] for r in rows]
    targets = await service.targets_of(conn, ids)
    totals = await analytics.post_totals(conn, [r["id"] for r in rows if service.may_have_insights(r)])
    lines = [line for r in rows for line in _export_lines(r, targets[r["id"]], totals.get(r["id"], {}))]
    return rows, _csv_lines(lines)


async def export_csv(
    engine: AsyncEngine, workspace_id: str, *, status: str | None = None, platform: str | None = None,
    start: datetime | None = None, end: datetime | None = None,
) -> AsyncIterator[str]:
    """The CSV text of the workspace's posts the filters select (those of GET /api/posts): one piece
    per chunk of EXPORT_CHUNK posts, the first with the header (so that a caller that waits for it
    has seen the first read succeed). Each chunk is read on a connection of its own, so a slow
    reader holds none between chunks."""
    clauses = service.list_filter(workspace_id, status=status, platform=platform, start=start, end=end)
    after: tuple[datetime, str] | None = None
    header = export_header()
    while True:
        async with engine.connect() as conn:
            rows, text = await _export_chunk(conn, clauses, after)
        yield header + text
        header = ""
        if len(rows) < EXPORT_CHUNK:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])
