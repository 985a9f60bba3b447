"""Typed records of the tables that cross service boundaries: one TypedDict per table, key for key.

A service reads a row (`select(posts)`), hands it on as a `PostRow`, and everything downstream
(rules, views, the worker) indexes it with keys and value types the type checker holds: a mistyped
column name or a nullable column used as if it were set is a mypy error, not a KeyError in production.
They stay dicts at run time, so views, JSON and batched statements take them as they are.

`tests/test_rows.py` ties each record to its table: the same names, the same Python types, and
`X | None` exactly where the column is nullable. Change a table and that test names the record to fix.

`record(PostRow, mapping)` is the one place a database mapping becomes a record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict, TypeVar, cast

import sqlalchemy as sa

R = TypeVar("R")


def record(kind: type[R], row: Mapping[Any, Any]) -> R:
    """`row` (a RowMapping or a dict of every column) as the record `kind`; a copy, so callers may
    change it. Checked against the table by tests/test_rows.py, not at run time (hot paths)."""
    return cast(R, dict(row))


def records(kind: type[R], rows: sa.Result[Any] | Iterable[Mapping[Any, Any]]) -> list[R]:
    """`record` for each row of a result, or of any iterable of mappings. A result's column names are
    read once: dict(RowMapping) builds a keys view for every row, which was a tenth of a page of
    posts' time."""
    if isinstance(rows, sa.Result):
        keys = tuple(rows.keys())
        return cast(list[R], [dict(zip(keys, row, strict=True)) for row in rows])
    return cast(list[R], [dict(row) for row in rows])


# --- identity ---------------------------------------------------------------------------------

class UserRow(TypedDict):
    id: str
    email: str
    name: str
    password_hash: str
    role: str
    permissions: list[str]
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class WorkspaceRow(TypedDict):
    id: str
    name: str
    description: str | None
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ApiKeyRow(TypedDict):
    id: str
    name: str
    prefix: str
    tier: str
    permissions: list[str]
    is_active: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None


# --- accounts ---------------------------------------------------------------------------------

class AccountRow(TypedDict):
    id: str
    workspace_id: str
    platform: str
    remote_id: str
    type: str
    name: str
    username: str | None
    profile_image: str | None
    status: str  # AccountStatus
    is_default: bool
    settings: dict[str, Any]
    metadata: dict[str, Any]
    permissions: list[str]
    access_token: str | None  # encrypted
    refresh_token: str | None  # encrypted
    token_expires_at: datetime | None
    refresh_expires_at: datetime | None
    stats: dict[str, Any]
    last_error: str | None
    last_sync_at: datetime | None
    connected_at: datetime
    updated_at: datetime


# --- posts ------------------------------------------------------------------------------------

class ThreadPart(TypedDict):
    content: str
    media_ids: list[str]


class PostRow(TypedDict):
    id: str
    workspace_id: str
    status: str  # PostStatus
    content: str
    title: str | None
    link: str | None
    hashtags: list[str]
    platforms: list[str]
    platform_content: dict[str, Any]
    scheduled_at: datetime | None
    scheduled_timezone: str | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    rejection_reason: str | None
    thread: list[ThreadPart] | None
    thread_mode: str | None
    first_comment: str | None


class TargetRow(TypedDict):
    id: str
    post_id: str
    workspace_id: str
    network: str
    requested: str
    account_id: str | None
    status: str  # TargetStatus
    remote_id: str | None
    remote_url: str | None
    error_code: str | None
    error_message: str | None
    attempts: int
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PartRow(TypedDict):
    id: str
    target_id: str
    post_id: str
    workspace_id: str
    seq: int
    source: str
    source_index: int | None
    kind: str
    status: str  # TargetStatus
    remote_id: str | None
    remote_url: str | None
    remote_extra: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    attempts: int
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MediaRow(TypedDict):
    id: str
    workspace_id: str
    post_id: str | None
    type: str
    filename: str
    size: int
    mime_type: str
    sha256: str
    width: int | None
    height: int | None
    duration: float | None
    alt_text: str | None
    storage_key: str
    thumbnail_key: str | None
    created_at: datetime


# --- webhooks ---------------------------------------------------------------------------------

class WebhookRow(TypedDict):
    id: str
    url: str
    description: str | None
    events: list[str]
    secret_encrypted: str
    is_active: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    last_triggered_at: datetime | None


class DeliveryRow(TypedDict):
    id: str
    webhook_id: str
    event_id: str | None
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    response_status: int | None
    latency_ms: int | None
    error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


# --- schedules --------------------------------------------------------------------------------

class ScheduleRow(TypedDict):
    id: str
    workspace_id: str
    name: str
    description: str | None
    timezone: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class SlotRow(TypedDict):
    id: str
    schedule_id: str
    day: str
    time: str
    platforms: list[str]
    position: int


class EntryRow(TypedDict):
    post_id: str
    schedule_id: str
    slot_id: str | None
    slot_time: datetime | None
    position: int
    held: bool
    created_at: datetime
    updated_at: datetime

