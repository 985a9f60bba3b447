"""Pages of a list: the count-plus-offset pagination of every list endpoint and list page
(`page` from 1, `limit` rows a page; the API's `pagination` object is built from the total).

Offsets are fine at the sizes these lists have (keys, users, webhooks, accounts, schedules, audit
entries shown a page at a time); the order must be total (end it with the id) so pages are stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


async def fetch_page(
    conn: AsyncConnection,
    source: sa.FromClause,
    *,
    where: Sequence[sa.ColumnElement[bool]] = (),
    order_by: Sequence[sa.ColumnElement[Any]],
    page: int,
    limit: int,
    columns: sa.FromClause | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Page `page` of the rows of `source` (a table or a join) matching every `where` clause, in
    `order_by` order, as dicts of the columns of `columns` (default: all of `source`), and how many
    rows match in all. Two statements: the count, then the page."""
    total = await conn.scalar(sa.select(sa.func.count()).select_from(source).where(*where))
    query = (
        sa.select(columns if columns is not None else source).select_from(source).where(*where)
        .order_by(*order_by).limit(limit).offset((page - 1) * limit)
    )
    rows = await conn.execute(query)
    return [dict(r) for r in rows.mappings()], int(total or 0)
