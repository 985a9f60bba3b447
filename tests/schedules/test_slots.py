"""Slot computation: wall-clock slots in a zone, across daylight-saving changes in both hemispheres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ouipost.schedules.slots import (
    Slot,
    covers,
    format_local,
    next_free_slot,
    next_occurrence,
    not_covered_by_any,
    occurrences,
    parse_hhmm,
    resolve_local,
    week_start,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def all_between(slots: list[Slot], tz: ZoneInfo, start: str, end: str) -> list[tuple[str, str, str]]:
    return [
        (o.slot_id, o.local.isoformat(), o.utc.strftime("%Y-%m-%dT%H:%MZ"))
        for o in occurrences(slots, tz, z(start), z(end))
    ]


# ------------------------------------- Europe/Paris (last Sundays of March and October)


def test_paris_0900_stays_0900_local_across_spring_forward() -> None:
    found = all_between([Slot("s", "sunday", "09:00")], PARIS, "2024-03-20T00:00Z", "2024-04-08T00:00Z")
    assert found == [
        ("s", "2024-03-24T09:00:00+01:00", "2024-03-24T08:00Z"),
        ("s", "2024-03-31T09:00:00+02:00", "2024-03-31T07:00Z"),  # same wall clock, one hour earlier in UTC
        ("s", "2024-04-07T09:00:00+02:00", "2024-04-07T07:00Z"),
    ]


def test_paris_0900_stays_0900_local_across_fall_back() -> None:
    found = all_between([Slot("s", "monday", "09:00")], PARIS, "2024-10-20T00:00Z", "2024-11-05T00:00Z")
    assert found == [
        ("s", "2024-10-21T09:00:00+02:00", "2024-10-21T07:00Z"),
        ("s", "2024-10-28T09:00:00+01:00", "2024-10-28T08:00Z"),
        ("s", "2024-11-04T09:00:00+01:00", "2024-11-04T08:00Z"),
    ]


def test_paris_0230_on_the_spring_forward_day_moves_to_0300() -> None:
    found = all_between([Slot("s", "sunday", "02:30")], PARIS, "2024-03-24T12:00Z", "2024-04-08T00:00Z")
    assert found == [
        ("s", "2024-03-31T03:00:00+02:00", "2024-03-31T01:00Z"),  # 02:00-03:00 does not exist that day
        ("s", "2024-04-07T02:30:00+02:00", "2024-04-07T00:30Z"),
    ]


def test_paris_0230_on_the_fall_back_day_happens_once_with_the_summer_offset() -> None:
    found = all_between([Slot("s", "sunday", "02:30")], PARIS, "2024-10-26T00:00Z", "2024-10-28T00:00Z")
    assert found == [("s", "2024-10-27T02:30:00+02:00", "2024-10-27T00:30Z")]


def test_a_moved_slot_and_a_slot_at_the_end_of_the_gap_both_happen_in_order() -> None:
    slots = [Slot("b", "sunday", "03:00"), Slot("a", "sunday", "02:30")]
    found = all_between(slots, PARIS, "2024-03-30T00:00Z", "2024-04-01T00:00Z")
    assert found == [
        ("a", "2024-03-31T03:00:00+02:00", "2024-03-31T01:00Z"),
        ("b", "2024-03-31T03:00:00+02:00", "2024-03-31T01:00Z"),
    ]


# ------------------------------------- America/New_York (second Sunday of March, first Sunday of November)


def test_new_york_0230_on_the_spring_forward_day_moves_to_0300() -> None:
    found = all_between([Slot("s", "sunday", "02:30")], NEW_YORK, "2024-03-09T00:00Z", "2024-03-18T00:00Z")
    assert found == [
        ("s", "2024-03-10T03:00:00-04:00", "2024-03-10T07:00Z"),
        ("s", "2024-03-17T02:30:00-04:00", "2024-03-17T06:30Z"),
    ]


def test_new_york_0130_on_the_fall_back_day_happens_once_with_the_first_offset() -> None:
    found = all_between([Slot("s", "sunday", "01:30")], NEW_YORK, "2024-10-27T12:00Z", "2024-11-11T00:00Z")
    assert found == [
        ("s", "2024-11-03T01:30:00-04:00", "2024-11-03T05:30Z"),  # not again at 06:30Z (01:30 EST)
        ("s", "2024-11-10T01:30:00-05:00", "2024-11-10T06:30Z"),
    ]


def test_new_york_0900_shifts_by_an_hour_in_utc() -> None:
    found = all_between([Slot("s", "friday", "09:00")], NEW_YORK, "2024-03-01T00:00Z", "2024-03-16T00:00Z")
    assert [f[1] for f in found] == ["2024-03-01T09:00:00-05:00", "2024-03-08T09:00:00-05:00",
                                     "2024-03-15T09:00:00-04:00"]
    assert [f[2] for f in found] == ["2024-03-01T14:00Z", "2024-03-08T14:00Z", "2024-03-15T13:00Z"]


# ------------------------------------- Australia/Sydney (DST ends the first Sunday of April, starts in October)


def test_sydney_0900_across_the_april_end_of_summer_time() -> None:
    found = all_between([Slot("s", "sunday", "09:00")], SYDNEY, "2024-03-30T00:00Z", "2024-04-08T00:00Z")
    assert found == [
        ("s", "2024-03-31T09:00:00+11:00", "2024-03-30T22:00Z"),
        ("s", "2024-04-07T09:00:00+10:00", "2024-04-06T23:00Z"),
    ]


def test_sydney_0230_in_the_repeated_hour_of_april_happens_once() -> None:
    found = all_between([Slot("s", "sunday", "02:30")], SYDNEY, "2024-04-05T00:00Z", "2024-04-08T00:00Z")
    assert found == [("s", "2024-04-07T02:30:00+11:00", "2024-04-06T15:30Z")]


def test_sydney_0230_on_the_october_spring_forward_moves_to_0300() -> None:
    found = all_between([Slot("s", "sunday", "02:30")], SYDNEY, "2024-10-01T00:00Z", "2024-10-14T00:00Z")
    assert found == [
        ("s", "2024-10-06T03:00:00+11:00", "2024-10-05T16:00Z"),
        ("s", "2024-10-13T02:30:00+11:00", "2024-10-12T15:30Z"),
    ]


def test_sydney_0900_across_the_october_start_of_summer_time() -> None:
    found = all_between([Slot("s", "monday", "09:00")], SYDNEY, "2024-09-29T00:00Z", "2024-10-08T00:00Z")
    assert found == [
        ("s", "2024-09-30T09:00:00+10:00", "2024-09-29T23:00Z"),
        ("s", "2024-10-07T09:00:00+11:00", "2024-10-06T22:00Z"),
    ]


# ---------------------------------------------------------------- the walk itself


def test_occurrences_are_after_exclusive_and_until_inclusive_and_ordered() -> None:
    slots = [Slot("wed", "wednesday", "09:00"), Slot("mon", "monday", "09:00"), Slot("mon2", "monday", "08:00")]
    found = list(occurrences(slots, "UTC", z("2024-01-01T08:00Z"), z("2024-01-08T09:00Z")))
    assert [(o.slot_id, o.utc.isoformat()) for o in found] == [
        ("mon", "2024-01-01T09:00:00+00:00"),
        ("wed", "2024-01-03T09:00:00+00:00"),
        ("mon2", "2024-01-08T08:00:00+00:00"),
        ("mon", "2024-01-08T09:00:00+00:00"),
    ]
    assert all(o.local.utcoffset() == timedelta(0) for o in found)


def test_a_slot_in_a_skipped_whole_day_moves_to_the_next_day() -> None:
    # Samoa skipped Friday 2011-12-30 entirely when it crossed the date line.
    apia = ZoneInfo("Pacific/Apia")
    moved = resolve_local(datetime(2011, 12, 30, 10, 0), apia)
    assert moved.isoformat() == "2011-12-31T00:00:00+14:00"
    found = list(occurrences([Slot("f", "friday", "10:00")], apia, z("2011-12-25T00:00Z"), z("2012-01-07T00:00Z")))
    assert [o.local.isoformat() for o in found] == ["2011-12-31T00:00:00+14:00", "2012-01-06T10:00:00+14:00"]


def test_next_occurrence_and_format_local() -> None:
    slots = [Slot("a", "monday", "09:00")]
    found = next_occurrence(slots, PARIS, z("2024-01-24T12:00Z"))
    assert found is not None and format_local(found.utc, PARIS) == "2024-01-29T09:00:00+01:00"
    assert next_occurrence([], PARIS, z("2024-01-24T12:00Z")) is None


def test_naive_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        list(occurrences([Slot("a", "monday", "09:00")], PARIS, datetime(2024, 1, 1), z("2024-02-01T00:00Z")))


@pytest.mark.parametrize("value", ["25:00", "9am", "9:00", "09:0", "24:00", "09:60", "0900", " 09:00", "", "09:00:00"])
def test_parse_hhmm_refuses_anything_but_hh_mm(value: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(value)


def test_slot_refuses_unknown_days() -> None:
    with pytest.raises(ValueError, match="funday"):
        Slot("s", "funday", "09:00")


def test_week_start_is_monday_midnight_in_the_zone() -> None:
    # Sunday 23:30 UTC is already Monday in Paris.
    assert week_start(z("2024-01-28T23:30Z"), PARIS) == z("2024-01-28T23:00Z")
    assert week_start(z("2024-01-28T22:30Z"), PARIS) == z("2024-01-21T23:00Z")


# ---------------------------------------------------------------- fitting posts into slots


def test_coverage_by_network_name_and_account_id() -> None:
    assert covers(["facebook", "twitter"], ["facebook"])
    assert not covers(["facebook"], ["facebook", "linkedin"])
    assert covers(["facebook"], ["acc_1"], {"acc_1": "facebook"})  # a network covers its accounts
    assert covers(["acc_1"], ["acc_1"], {"acc_1": "facebook"})
    assert not covers(["acc_1"], ["facebook"], {"acc_1": "facebook"})  # an account is not the default one
    slots = [Slot("a", "monday", "09:00", ("facebook",)), Slot("b", "monday", "10:00", ("twitter",))]
    assert not_covered_by_any(slots, ["facebook", "twitter", "linkedin"]) == ["linkedin"]


def test_next_free_slot_skips_taken_occurrences_and_slots_that_do_not_cover() -> None:
    slots = [
        Slot("mon", "monday", "09:00", ("facebook", "twitter")),
        Slot("tue", "tuesday", "09:00", ("facebook",)),
        Slot("wed", "wednesday", "09:00", ("facebook", "twitter", "linkedin")),
    ]
    now = z("2024-01-24T12:00Z")  # a Wednesday afternoon
    first = next_free_slot(slots, PARIS, now, set(), ["facebook", "twitter"])
    assert first is not None and (first.slot_id, first.local.isoformat()) == ("mon", "2024-01-29T09:00:00+01:00")
    second = next_free_slot(slots, PARIS, now, {(first.slot_id, first.utc)}, ["facebook", "twitter"])
    assert second is not None and (second.slot_id, second.local.isoformat()) == ("wed", "2024-01-31T09:00:00+01:00")
    only_tue = next_free_slot(slots, PARIS, now, set(), ["linkedin"])
    assert only_tue is not None and only_tue.slot_id == "wed"


def test_next_free_slot_is_none_when_nothing_fits_within_the_horizon() -> None:
    slots = [Slot("mon", "monday", "09:00", ("facebook",))]
    now = z("2024-01-24T12:00Z")
    assert next_free_slot(slots, PARIS, now, set(), ["twitter"]) is None
    taken = {(o.slot_id, o.utc) for o in occurrences(slots, PARIS, now, now + timedelta(days=56))}
    assert len(taken) == 8
    assert next_free_slot(slots, PARIS, now, taken, ["facebook"]) is None
    later = next_free_slot(slots, PARIS, now, taken, ["facebook"], horizon=timedelta(days=70))
    assert later is not None and later.local.isoformat() == "2024-03-25T09:00:00+01:00"
