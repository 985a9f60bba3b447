"""Schedule fixtures: a frozen clock (Wednesday 2024-01-24 12:00 UTC) and keys of a roomy tier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ouipost.core.clock import Clock, FrozenClock

START = datetime(2024, 1, 24, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def clock() -> Clock:
    return FrozenClock(START)


@pytest.fixture
async def key(make_key: Any) -> Any:
    # The frozen clock keeps every request in one rate-limit window: use the roomiest tier.
    return await make_key(tier="enterprise")
