"""The one ID generator: prefix + `_` + canonical lowercase hyphenated UUIDv7 (time-ordered)."""

from __future__ import annotations

import re

import uuid6

PREFIXES = frozenset(
    {"ws", "post", "media", "acc", "sched", "slot", "key", "user", "wh", "log", "job", "tgt", "part", "evt", "dlv"}
)
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
ID_LENGTH = 48  # the column width for every id; the longest prefix plus 37 fits


def new_id(prefix: str) -> str:
    """A new id such as `ws_01939c4e-...`. Ids sort by creation time."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{uuid6.uuid7()}"


def looks_like(prefix: str, value: str) -> bool:
    """True when `value` has the shape of an id with this prefix (no database lookup)."""
    return re.fullmatch(f"{re.escape(prefix)}_{_UUID}", value) is not None
