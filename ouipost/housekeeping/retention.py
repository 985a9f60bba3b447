"""How long housekeeping keeps each kind of row: OUIPOST_RETENTION, read once into `Retention`.

    OUIPOST_RETENTION=platform_calls=30d,webhook_deliveries=14d,done_jobs=2d,events=off

Each entry is NAME=AGE with AGE a whole number of days (`30d`) or hours (`24h`), or `off` (never
pruned). Names not given keep their default (DEFAULT_RETENTION). What each name covers and from
which moment its age counts is in ouipost/housekeeping/service.py; the rows that only ever serve a short
window (login failures, expired admin sessions, old rate-limit windows) have fixed retentions there
and no setting.

This module reads settings only (no database), so that ouipost/config.py can import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

VARIABLE = "OUIPOST_RETENTION"

DEFAULT_RETENTION: dict[str, timedelta | None] = {
    "platform_calls": timedelta(days=30),  # /admin/platform-health reads the last 24 h
    "webhook_deliveries": timedelta(days=30),  # finished ones; GET /admin/webhooks/{id}/deliveries lists them
    "events": timedelta(days=7),  # once fanned out to the webhooks (a delivery keeps its own payload)
    "idempotency_keys": timedelta(hours=24),  # DESIGN.md: the same key within 24 h returns the first answer
    "oauth_states": timedelta(hours=1),  # counted from the state's expiry (it lives 10 minutes)
    "done_jobs": timedelta(days=7),
    "failed_jobs": timedelta(days=30),  # admin stats and the jobs' last_error show them
}

# Shorter would break a promise: a replay within 24 h must find the first answer, and platform health
# reads the last 24 h of calls. Everything else may be as short as an hour.
MINIMUM_RETENTION: dict[str, timedelta] = {
    "idempotency_keys": timedelta(hours=24),
    "platform_calls": timedelta(hours=24),
}
SHORTEST_RETENTION = timedelta(hours=1)
LONGEST_RETENTION = timedelta(days=3650)

_AGE = re.compile(r"(\d{1,6})\s*([dh])")


@dataclass(frozen=True)
class Retention:
    """Per kind of row, how long it is kept (None: for ever). Missing names get the default."""

    ages: Mapping[str, timedelta | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION))

    def of(self, name: str) -> timedelta | None:
        """The retention of `name` (one of DEFAULT_RETENTION's keys); KeyError for another name."""
        if name not in DEFAULT_RETENTION:
            raise KeyError(name)
        return self.ages.get(name, DEFAULT_RETENTION[name])


def load_retention(env: Mapping[str, str]) -> Retention:
    """The retention from OUIPOST_RETENTION (see the module doc).

    Raises ValueError naming the variable and every bad entry: an unknown name, an age that is not
    `<days>d`, `<hours>h` or `off`, or one under its minimum (24 h for idempotency_keys and
    platform_calls, 1 h otherwise) or over ten years.
    """
    ages = dict(DEFAULT_RETENTION)
    problems = []
    for part in filter(None, (p.strip() for p in env.get(VARIABLE, "").split(","))):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not name or not value:
            problems.append(f"{part!r} is not NAME=AGE")
            continue
        if name not in DEFAULT_RETENTION:
            problems.append(f"unknown name {name!r} (one of {', '.join(DEFAULT_RETENTION)})")
            continue
        if value.lower() == "off":
            ages[name] = None
            continue
        match = _AGE.fullmatch(value.lower())
        if match is None:
            problems.append(f"{name}={value!r} is not an age such as 30d or 24h, or off")
            continue
        number, unit = int(match.group(1)), match.group(2)
        age = timedelta(days=number) if unit == "d" else timedelta(hours=number)
        minimum = MINIMUM_RETENTION.get(name, SHORTEST_RETENTION)
        if not minimum <= age <= LONGEST_RETENTION:
            problems.append(f"{name}={value!r} must be between {_human(minimum)} and {_human(LONGEST_RETENTION)}")
            continue
        ages[name] = age
    if problems:
        raise ValueError(
            f"{VARIABLE}: " + "; ".join(problems) + " (e.g. platform_calls=30d,idempotency_keys=24h,events=off)"
        )
    return Retention(ages)


def _human(age: timedelta) -> str:
    hours = int(age.total_seconds() // 3600)
    return f"{hours}h" if hours < 48 or hours % 24 else f"{hours // 24}d"
