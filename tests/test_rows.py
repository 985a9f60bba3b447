"""The typed records (ouipost/db/rows.py) say exactly what their tables hold: the same columns, the
same Python types, `| None` exactly where a column is nullable. A column added, renamed or made
nullable without its record fails here, naming both."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.db import rows
from ouipost.db.tables import metadata
from ouipost.db.types import JSON, UTCDateTime

RECORDS: dict[str, type] = {
    "users": rows.UserRow,
    "workspaces": rows.WorkspaceRow,
    "api_keys": rows.ApiKeyRow,
    "social_accounts": rows.AccountRow,
    "posts": rows.PostRow,
    "post_targets": rows.TargetRow,
    "post_target_parts": rows.PartRow,
    "media": rows.MediaRow,
    "webhooks": rows.WebhookRow,
    "webhook_deliveries": rows.DeliveryRow,
    "schedules": rows.ScheduleRow,
    "schedule_slots": rows.SlotRow,
    "schedule_entries": rows.EntryRow,
}


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None was in it)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        assert len(members) == 1, f"{annotation} is a union of several types"
        return members[0], optional
    return annotation, False


def _python_type(column: sa.Column[Any]) -> type | None:
    """The Python type a column's values have; None for JSON, whose shape the record states."""
    if isinstance(column.type, JSON):
        return None
    if isinstance(column.type, UTCDateTime):
        return datetime
    return column.type.python_type


def test_every_record_names_a_table_of_the_schema() -> None:
    assert set(RECORDS) <= set(metadata.tables)
    assert {record.__name__ for record in RECORDS.values()} == {
        name for name, value in vars(rows).items()
        if isinstance(value, type) and typing.is_typeddict(value) and name != "ThreadPart"
    }


@pytest.mark.parametrize("table_name", sorted(RECORDS))
def test_a_record_has_the_columns_types_and_nullability_of_its_table(table_name: str) -> None:
    table = metadata.tables[table_name]
    record = RECORDS[table_name]
    hints = typing.get_type_hints(record)
    assert list(hints) == [c.name for c in table.columns], f"{record.__name__} and {table_name} differ in columns"
    for column in table.columns:
        base, optional = _split_optional(hints[column.name])
        assert optional == bool(column.nullable), f"{record.__name__}.{column.name}: nullable is {column.nullable}"
        expected = _python_type(column)
        if expected is None:  # JSON: a list or an object (or a record of one)
            assert typing.get_origin(base) in (list, dict) or typing.is_typeddict(base), \
                f"{record.__name__}.{column.name}: JSON should be a list or a dict, not {base}"
        else:
            assert base is expected, f"{record.__name__}.{column.name}: {base} is not {expected.__name__}"
        assert column.name in record.__required_keys__


def test_a_record_is_a_copy_of_its_row_with_its_keys() -> None:
    row = {"id": "ws_1", "name": "A", "description": None, "settings": {}, "created_at": datetime(2026, 1, 1),
           "updated_at": datetime(2026, 1, 1)}
    made = rows.record(rows.WorkspaceRow, row)
    made["name"] = "B"
    assert row["name"] == "A" and made["name"] == "B"
    assert rows.records(rows.WorkspaceRow, [row, row]) == [row, row]
