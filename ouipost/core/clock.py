"""The one clock. Code asks `clock.now()` for the time, `clock.monotonic()` for deadlines and
`await clock.sleep(s)` to wait; tests swap in a `FrozenClock` and move it, or a `HurriedClock` whose
sleeps move it, so that nothing waits for wall time (a network adapter's 10-minute processing
deadline passes in one `advance`).

Durations that are measured rather than decided on (metrics, logs) keep the real clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    def now(self) -> datetime:
        """The current time, aware, in UTC, truncated to microseconds like the database keeps it."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FrozenClock(Clock):
    """A clock that only moves when told to (tests, benchmarks); sleeping on it moves it at once."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)
        self._origin = self.current

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return (self.current - self._origin).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Move the clock by `seconds` instead of waiting, and let other tasks run."""
        self.current += timedelta(seconds=max(0.0, seconds))
        await asyncio.sleep(0)

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 UTC with `Z`, seconds precision, as every answer shows timestamps."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:  # strftime's %Y does not pad them; isoformat would
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    # What the strftime above gives, in about two thirds of its time (a page of posts shows 80).
    return value.isoformat(timespec="seconds")[:19] + "Z"


class HurriedClock(Clock):
    """The real time, except that sleeping moves the clock forward at once instead of waiting
    (tests that run the whole service): an adapter polling a network every 5 s runs at the speed of
    its requests. Give the sandbox the same clock, so that the networks see that time pass too."""

    def __init__(self) -> None:
        self.ahead = 0.0  # seconds slept so far

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.ahead)

    def monotonic(self) -> float:
        return super().monotonic() + self.ahead

    async def sleep(self, seconds: float) -> None:
        self.ahead += max(0.0, seconds)
        await asyncio.sleep(0)
