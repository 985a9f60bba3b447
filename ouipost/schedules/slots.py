"""Weekly publishing slots turned into instants: pure functions over zoneinfo, no I/O.

A slot is a weekday and a local wall-clock time (`HH:MM`) in the schedule's IANA zone. Each
occurrence is computed on the day itself, so daylight-saving changes behave like a wall clock:

- a 09:00 slot is 09:00 local every week; its UTC instant moves by an hour across a change;
- a slot inside the skipped hour of a spring-forward day (02:30 Europe/Paris on the last Sunday of
  March) happens at the first valid minute after the gap (03:00 local, the instant of the change);
- a slot inside the repeated hour of a fall-back day (01:30 America/New_York on the first Sunday of
  November) happens once, at its first occurrence (fold=0, the daylight-time offset).

Turning a local time into an instant this way is monotonic (a later wall-clock time never maps to an
earlier instant), so walking days in order and slots in time order yields occurrences in order.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HORIZON = timedelta(days=56)
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# The longest gap a zone has ever skipped is a whole day (Pacific/Apia, 2011-12-30).
_MAX_GAP_MINUTES = 2 * 24 * 60


@dataclass(frozen=True)
class Slot:
    """One weekly slot. `platforms` holds network names and/or account ids."""

    id: str
    day: str
    time: str
    platforms: tuple[str, ...] = ()
    position: int = 0

    def __post_init__(self) -> None:
        if self.day not in DAYS:
            raise ValueError(f"unknown day {self.day!r}; use one of {', '.join(DAYS)}")
        parse_hhmm(self.time)


@dataclass(frozen=True)
class SlotTime:
    """One occurrence of a slot: `local` is aware in the slot's zone (its offset), `utc` in UTC."""

    slot_id: str
    local: datetime
    utc: datetime


def parse_hhmm(value: str) -> time:
    """`HH:MM` (00:00..23:59, two digits each) as a time; ValueError for anything else ("9:00", "9am")."""
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return time(int(match.group(1)), int(match.group(2)))


def _exists(naive: datetime, tz: ZoneInfo) -> bool:
    """True when this wall-clock time happens in `tz` (it is not inside a skipped hour)."""
    back = naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    return back.replace(tzinfo=None) == naive


def resolve_local(naive: datetime, tz: ZoneInfo) -> datetime:
    """The instant (aware, in `tz`) at which wall-clock time `naive` happens, by the rules above.

    A time in a gap moves to the first valid minute after it; a repeated time takes its first
    occurrence. Raises ValueError only for a gap longer than two days, which no zone has.
    """
    naive = naive.replace(tzinfo=None, fold=0)
    if _exists(naive, tz):
        return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)  # normalised, fold=0
    candidate = naive.replace(second=0, microsecond=0)
    for _ in range(_MAX_GAP_MINUTES):
        candidate += timedelta(minutes=1)
        if _exists(candidate, tz):
            return candidate.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    raise ValueError(f"{naive.isoformat()} in {tz.key} falls into a gap longer than two days")


def _by_weekday(slots: Iterable[Slot]) -> dict[int, list[tuple[time, int, Slot]]]:
    by_day: dict[int, list[tuple[time, int, Slot]]] = {i: [] for i in range(7)}
    for index, slot in enumerate(slots):
        by_day[DAYS.index(slot.day)].append((parse_hhmm(slot.time), index, slot))
    for entries in by_day.values():
        entries.sort(key=lambda e: (e[0], e[2].position, e[1]))
    return by_day


def occurrences(slots: Sequence[Slot], tz: ZoneInfo | str, after: datetime, until: datetime) -> Iterator[SlotTime]:
    """Every occurrence of `slots` with `after < utc <= until`, in order of time (ties: earlier
    wall-clock time first, then slot position).

    `after` and `until` must be aware (ValueError otherwise); `tz` is a ZoneInfo or an IANA name
    (ZoneInfoNotFoundError for an unknown one).
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    if after.tzinfo is None or until.tzinfo is None:
        raise ValueError("after and until must be aware datetimes")
    if not slots or until <= after:
        return
    by_day = _by_weekday(slots)
    # Start two days early: a slot in a long gap on an earlier day can land after `after`.
    day: date = after.astimezone(zone).date() - timedelta(days=2)
    last: date = until.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for wall, _index, slot in by_day[day.weekday()]:
            local = resolve_local(datetime.combine(day, wall), zone)
            utc = local.astimezone(UTC)
            if after < utc <= until:
                yield SlotTime(slot.id, local, utc)
        day += timedelta(days=1)


def next_occurrence(slots: Sequence[Slot], tz: ZoneInfo | str, after: datetime) -> SlotTime | None:
    """The first occurrence of any slot after `after` (within a week and a day), or None without slots."""
    return next(occurrences(slots, tz, after, after + timedelta(days=8)), None)


def covers(
    slot_platforms: Collection[str], needed: Iterable[str], account_networks: Mapping[str, str] | None = None
) -> bool:
    """True when a slot listing `slot_platforms` can take a post whose targets are `needed`.

    A network name in the slot covers every target on that network (the network itself or any of its
    accounts); an account id in the slot covers a target naming exactly that account.
    `account_networks` maps the post's account ids to their network.
    """
    return not uncovered_by(slot_platforms, needed, account_networks)


def uncovered_by(
    slot_platforms: Collection[str], needed: Iterable[str], account_networks: Mapping[str, str] | None = None
) -> list[str]:
    """The entries of `needed` a slot listing `slot_platforms` does not cover (see `covers`)."""
    account_networks = account_networks or {}
    missing: list[str] = []
    for entry in dict.fromkeys(needed):
        if entry in slot_platforms:
            continue
        network = account_networks.get(entry)
        if network is not None and network in slot_platforms:
            continue
        missing.append(entry)
    return missing


def not_covered_by_any(
    slots: Iterable[Slot], needed: Iterable[str], account_networks: Mapping[str, str] | None = None
) -> list[str]:
    """The entries of `needed` that no slot covers at all (for explaining a refusal)."""
    needed = list(dict.fromkeys(needed))
    missing = set(needed)
    for slot in slots:
        missing &= set(uncovered_by(slot.platforms, needed, account_networks))
    return [entry for entry in needed if entry in missing]


def next_free_slot(
    slots: Sequence[Slot],
    tz: ZoneInfo | str,
    after: datetime,
    taken: Collection[tuple[str, datetime]],
    networks_needed: Iterable[str],
    horizon: timedelta = HORIZON,
    *,
    account_networks: Mapping[str, str] | None = None,
) -> SlotTime | None:
    """The earliest occurrence after `after` (and within `horizon` of it) of a slot that covers every
    entry of `networks_needed` and whose `(slot_id, utc)` is not in `taken` (one post per slot
    occurrence). None when nothing fits: no slot covers the post, or every fitting occurrence in
    the horizon is taken.
    """
    needed = list(networks_needed)
    fitting = [s for s in slots if covers(s.platforms, needed, account_networks)]
    taken_set = {(slot_id, at.astimezone(UTC)) for slot_id, at in taken}
    for occurrence in occurrences(fitting, tz, after, after + horizon):
        if (occurrence.slot_id, occurrence.utc) not in taken_set:
            return occurrence
    return None


def week_start(now: datetime, tz: ZoneInfo | str) -> datetime:
    """The instant the current ISO week (Monday 00:00 local, or the first minute after) began in `tz`."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    return resolve_local(datetime.combine(monday, time(0, 0)), zone).astimezone(UTC)


def format_local(value: datetime, tz: ZoneInfo | str) -> str:
    """An instant as ISO 8601 with the zone's UTC offset at that instant (`2024-01-29T09:00:00+01:00`)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return value.astimezone(zone).isoformat(timespec="seconds")
