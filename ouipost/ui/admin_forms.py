"""Small helpers the admin UI pages (users, keys, webhooks, audit, workspaces) share: the page number
of a list, errors of list items shown at their list's field, and the workspaces a grant form offers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.identity import workspaces
from ouipost.ui.common import UI_WORKSPACES

MAX_PAGE = 1_000_000


def page_arg(request: web.Request) -> int:
    """The `page` query parameter, 1 when missing or not a number."""
    try:
        return max(1, min(int(request.query.get("page", "1")), MAX_PAGE))
    except ValueError:
        return 1


def at_list_fields(errors: dict[str, list[str]], list_fields: Iterable[str]) -> dict[str, list[str]]:
    """Errors of one item of a list field (`permissions.2`) shown at the list (`permissions`), where
    the form shows the checkboxes."""
    names = set(list_fields)
    merged: dict[str, list[str]] = {}
    for key, messages in errors.items():
        head, _, tail = key.rpartition(".")
        target = head if head in names and tail.isdigit() else key
        merged.setdefault(target, []).extend(messages)
    return merged


async def workspace_options(
    conn: AsyncConnection, request: web.Request, granted: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """(id, name) of the workspaces a grant form offers: those the signed-in user may see, plus any
    already granted that they do not (kept, so that saving the form does not drop them)."""
    options = [(ws["id"], ws["name"]) for ws in request[UI_WORKSPACES]]
    shown = {ws_id for ws_id, _ in options}
    missing = [ws_id for ws_id in granted if ws_id not in shown]
    if missing:
        names = await workspaces.names_by_id(conn, missing)
        options += [(ws_id, names.get(ws_id, ws_id)) for ws_id in missing]
    return options


def checkbox(values: dict[str, Any], name: str) -> bool:
    """A checkbox's state from a submitted form: present (any value) means checked."""
    return bool(values.get(name))
