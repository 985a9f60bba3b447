"""Publish pacing: keep a burst of due posts inside the networks' own limits, across all processes.

Two rules, both held in the database (tables in ouipost/db/pacing_tables.py), so any number of
worker processes share them:

- Per account, a GCRA (generic cell rate algorithm, the smooth form of a token bucket): an account
  may send `burst` posts at once, then one every `interval` seconds. The interval is derived from
  the network's published limits so that no window of the network's size ever holds more than its
  limit: `interval = window / (limit - burst)` (the burst plus one post per interval within a window
  adds up to exactly the limit). The state is one integer per account, the "theoretical arrival
  time" (TAT); an admission is one conditional UPDATE:

      UPDATE pacing SET tat_ms = MAX(tat_ms, :now) + :interval
      WHERE key = :key AND tat_ms <= :now + :tolerance        -- tolerance = (burst - 1) * interval

  One row changed: send now. None: wait until `tat_ms - tolerance`. The row lock of the UPDATE
  makes concurrent admissions of one account take turns; different accounts never contend.
- Per network, at most `concurrency` calls in flight across all processes: `pacing_slots` holds
  one row per allowed call; a publisher takes a free slot (conditional UPDATE by primary key, with
  a lease so a killed worker's slot comes back) and gives it back after the network answered.

A target held back by pacing is late, not failed: it stays `pending` and its post gets a fresh
publish job at the time pacing names (see workers/publish_post.py), so waiting never uses up the
job's attempts.

Defaults come from shared/platforms.md; every value can be overridden (see `load_pacing`):

    OUIPOST_PACING=off                                   no pacing at all
    OUIPOST_PACING_ACCOUNT=twitter=10/10,bluesky=off     per account: INTERVAL_SECONDS/BURST, or off
    OUIPOST_PACING_CONCURRENCY=*=32,youtube=4            calls in flight per network (all processes)
    OUIPOST_REFRESH_WINDOWS=twitter=1800,youtube=900     refresh tokens expiring within SECONDS
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.db.pacing_tables import pacing, pacing_slots
from ouipost.platforms.registry import NETWORKS

log = logging.getLogger("ouipost.pacing")

DAY = 86400.0
HOUR = 3600.0
SLOT_LEASE_SECONDS = 600.0  # longer than any single publish (video uploads poll for minutes)
BUSY_RETRY_SECONDS = (0.2, 0.6)  # no free slot: try again after a jittered moment
SLOT_CANDIDATES = 16


@dataclass(frozen=True)
class AccountPace:
    """Per-account pacing: `burst` posts may go at once, then one every `interval` seconds."""

    interval: float
    burst: int = 1

    @classmethod
    def within(cls, *limits: tuple[int, float], burst: int) -> AccountPace:
        """The pace that keeps every (limit, window seconds) of a network: the slowest interval wins.

        With GCRA, a window of W seconds holds at most burst + W / interval posts; the interval
        window / (limit - burst) makes that exactly the limit.
        """
        if burst < 1 or any(limit <= burst for limit, _ in limits):
            raise ValueError("every limit must be larger than the burst, and the burst at least 1")
        return cls(interval=max(window / (limit - burst) for limit, window in limits), burst=burst)


# Per-account defaults, from the networks' published per-user limits (shared/platforms.md).
# [unconf] marks networks that publish no number; those defaults are deliberately conservative.
DEFAULT_ACCOUNT_PACE: dict[str, AccountPace] = {
    # POST /2/tweets: 100 per 15 min per user.
    "twitter": AccountPace.within((100, 900.0), burst=10),
    # Writes: 5,000 points/h and 35,000/day per account, a post costs 3: 1,666/h and 11,666/day
    # (kept a little under, for the deletes and updates that spend the same points).
    "bluesky": AccountPace.within((1600, HOUR), (11000, DAY), burst=20),
    # 250 API posts per rolling 24 h.
    "threads": AccountPace.within((250, DAY), burst=10),
    # 100 API posts per rolling 24 h (older pages say 25 or 50; the network's own cap still answers).
    "instagram": AccountPace.within((100, DAY), burst=5),
    # Video init: 6 requests per minute per token.
    "tiktok": AccountPace.within((6, 60.0), burst=2),
    # videos.insert has 100 calls/day (a project-wide bucket; per channel there is an upload cap).
    "youtube": AccountPace.within((100, DAY), burst=5),
    # Per-member daily quotas are not published [unconf]: 150 shares a day is the usual figure.
    "linkedin": AccountPace.within((150, DAY), burst=10),
    # No published per-Page post limit; "posting too fast" (1390008) exists [unconf].
    "facebook": AccountPace.within((100, HOUR), burst=10),
    # 100 req/s per user overall plus unpublished per-category write limits [unconf].
    "pinterest": AccountPace.within((60, 60.0), burst=10),
}

# Calls in flight per network across every process. No network publishes one; these keep a burst
# from opening hundreds of connections at once to one network (and its per-app limits).
DEFAULT_CONCURRENCY = 32
DEFAULT_NETWORK_CONCURRENCY: dict[str, int] = {"youtube": 8, "tiktok": 8}

# Refresh tokens expiring within this many seconds (from the access-token lifetimes of platforms.md;
# the refresh job runs every 5 minutes, so each window gives several chances before expiry).
DEFAULT_REFRESH_WINDOWS: dict[str, float] = {
    "twitter": 1800.0,  # 2 h tokens
    "tiktok": 1800.0,  # 2 h (new docs) / 24 h (old docs)
    "bluesky": 1800.0,  # accessJwt 2 h
    "youtube": 900.0,  # 1 h tokens
    "instagram": 7 * DAY,  # 60 d; refreshable once at least 24 h old
    "threads": 7 * DAY,  # 60 d; same rule
    "linkedin": 7 * DAY,  # 60 d (refresh only for approved apps)
    "pinterest": 7 * DAY,  # 30 d access, continuous refresh
    "facebook": 7 * DAY,  # Page tokens never expire and the adapter cannot refresh: skipped
}


@dataclass(frozen=True)
class PacingConfig:
    enabled: bool = True
    account: Mapping[str, AccountPace | None] = field(default_factory=lambda: dict(DEFAULT_ACCOUNT_PACE))
    concurrency: Mapping[str, int | None] = field(default_factory=dict)
    default_concurrency: int | None = DEFAULT_CONCURRENCY
    refresh_windows: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_REFRESH_WINDOWS))

    def account_pace(self, network: str) -> AccountPace | None:
        return self.account.get(network) if self.enabled else None

    def network_concurrency(self, network: str) -> int | None:
        if not self.enabled:
            return None
        if network in self.concurrency:
            return self.concurrency[network]
        return DEFAULT_NETWORK_CONCURRENCY.get(network, self.default_concurrency) \
            if self.default_concurrency is not None else None

    def refresh_window(self, network: str) -> float:
        return self.refresh_windows.get(network, 7 * DAY)


def load_pacing(env: Mapping[str, str]) -> PacingConfig:
    """The pacing configuration from OUIPOST_PACING* and OUIPOST_REFRESH_WINDOWS (see the module doc).

    Raises ValueError naming the variable and the bad entry (unknown network, not a number, a burst
    under 1), so a typo fails at start instead of silently pacing with defaults.
    """
    enabled = env.get("OUIPOST_PACING", "on").strip().lower() not in ("off", "0", "false", "no")
    account: dict[str, AccountPace | None] = dict(DEFAULT_ACCOUNT_PACE)
    for network, value in _entries(env, "OUIPOST_PACING_ACCOUNT"):
        if value.lower() == "off":
            account[network] = None
            continue
        interval, _, burst = value.partition("/")
        try:
            pace = AccountPace(interval=float(interval), burst=int(burst or 1))
        except ValueError:
            raise ValueError(f"OUIPOST_PACING_ACCOUNT: {network}={value!r} is not INTERVAL/BURST") from None
        if not (pace.interval > 0 and math.isfinite(pace.interval)) or pace.burst < 1:
            raise ValueError(f"OUIPOST_PACING_ACCOUNT: {network}={value!r} needs an interval > 0 and a burst >= 1")
        account[network] = pace
    concurrency: dict[str, int | None] = {}
    default_concurrency: int | None = DEFAULT_CONCURRENCY
    for network, value in _entries(env, "OUIPOST_PACING_CONCURRENCY", wildcard=True):
        cap = None if value.lower() == "off" else _positive_int("OUIPOST_PACING_CONCURRENCY", network, value)
        if network == "*":
            default_concurrency = cap
        else:
            concurrency[network] = cap
    windows = dict(DEFAULT_REFRESH_WINDOWS)
    for network, value in _entries(env, "OUIPOST_REFRESH_WINDOWS"):
        try:
            windows[network] = float(value)
        except ValueError:
            raise ValueError(f"OUIPOST_REFRESH_WINDOWS: {network}={value!r} is not a number of seconds") from None
    return PacingConfig(enabled, account, concurrency, default_concurrency, windows)


def _entries(env: Mapping[str, str], name: str, *, wildcard: bool = False) -> list[tuple[str, str]]:
    entries = []
    for part in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        network, sep, value = part.partition("=")
        network, value = network.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"{name}: {part!r} is not NETWORK=VALUE")
        if network not in NETWORKS and not (wildcard and network == "*"):
            raise ValueError(f"{name}: unknown network {network!r} (one of {', '.join(NETWORKS)})")
        entries.append((network, value))
    return entries


def _positive_int(name: str, network: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{name}: {network}={value!r} must be a whole number >= 1 or off")
    return number


# --- admission ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """Not now: try again after `seconds` (pacing of the account, or every slot of the network busy)."""

    seconds: float
    reason: str


@dataclass(frozen=True)
class Admission:
    """Go: the network slot taken (None when the network has no cap), to give back with `release`."""

    network: str
    slot: int | None
    holder: str


def account_key(account_id: str) -> str:
    return f"account:{account_id}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def admit(
    conn: AsyncConnection, *, network: str, account_id: str, holder: str, now: datetime,
    config: PacingConfig,
) -> Admission | Hold:
    """Ask to send one post of `account_id` to `network` now, in the caller's transaction.

    Takes a network slot first, then the account's turn; when the account must wait, the slot is
    given back in the same transaction, so a Hold changes nothing but the caller's time. Commit
    the caller's transaction for the admission to count (and to free the rows it locked). Database
    errors propagate; on MySQL a lock wait on a busy account row is short (its holder commits at
    once).
    """
    slot: int | None = None
    cap = config.network_concurrency(network)
    if cap is not None:
        slot = await _take_slot(conn, network, cap, holder, now)
        if slot is None:
            return Hold(random.uniform(*BUSY_RETRY_SECONDS), f"{network}: {cap} calls already in flight")
    pace = config.account_pace(network)
    if pace is not None:
        wait = await _take_turn(conn, account_key(account_id), pace, now)
        if wait is not None:
            if slot is not None:
                await _free_slot(conn, network, slot, holder)
            return Hold(wait, f"{network}: pacing this account ({pace.burst} at once, then one per "
                              f"{pace.interval:g}s)")
    return Admission(network, slot, holder)


async def release(conn: AsyncConnection, admission: Admission) -> None:
    """Give the admission's network slot back (nothing to do for networks without a cap)."""
    if admission.slot is not None:
        await _free_slot(conn, admission.network, admission.slot, admission.holder)


async def _take_turn(conn: AsyncConnection, key: str, pace: AccountPace, now: datetime) -> float | None:
    """GCRA: None when a post may go now (and it is counted), else the seconds to wait."""
    now_ms, step = _ms(now), max(1, round(pace.interval * 1000))
    tolerance = (pace.burst - 1) * step
    for _ in range(2):
        taken = await conn.execute(
            pacing.update()
            .where(pacing.c.key == key, pacing.c.tat_ms <= now_ms + tolerance)
            .values(tat_ms=sa.case((pacing.c.tat_ms > now_ms, pacing.c.tat_ms), else_=now_ms) + step)
        )
        if taken.rowcount:
            return None
        tat = await conn.scalar(sa.select(pacing.c.tat_ms).where(pacing.c.key == key))
        if tat is not None:
            return max(0.001, (tat - tolerance - now_ms) / 1000)
        # First post of this account: create its row (a concurrent first post may win the insert;
        # either way the UPDATE above now finds the row).
        await conn.execute(_insert_ignore(conn, pacing, {"key": key, "tat_ms": now_ms}, ["key"]))
    raise RuntimeError(f"pacing row {key!r} vanished while admitting")


async def _take_slot(conn: AsyncConnection, network: str, cap: int, holder: str, now: datetime) -> int | None:
    """Take a free (or lease-expired) slot of `network`; None when all `cap` are busy.

    MySQL/MariaDB: `SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1`, so concurrent publishers never wait
    on (or deadlock over) a slot another is taking; the row is then updated by primary key. SQLite
    serialises writers, so the conditional UPDATE alone is exclusive there.
    """
    free = sa.or_(pacing_slots.c.holder.is_(None), pacing_slots.c.until < now)
    mysql = conn.dialect.name == "mysql"
    find = (
        sa.select(pacing_slots.c.slot)
        .where(pacing_slots.c.network == network, pacing_slots.c.slot < cap, free)
        .order_by(pacing_slots.c.slot)
        .limit(1 if mysql else SLOT_CANDIDATES)
    )
    if mysql:
        find = find.with_for_update(skip_locked=True)
    candidates = list((await conn.execute(find)).scalars())
    if not candidates and await _create_missing_slots(conn, network, cap):
        candidates = list((await conn.execute(find)).scalars())
    # Random order (SQLite): concurrent publishers reading the same free slots mostly try different ones.
    random.shuffle(candidates)
    until = now + timedelta(seconds=SLOT_LEASE_SECONDS)
    for slot in candidates[:4]:
        taken = await conn.execute(
            pacing_slots.update()
            .where(pacing_slots.c.network == network, pacing_slots.c.slot == slot, free)
            .values(holder=holder[:100], until=until)
        )
        if taken.rowcount:
            return int(slot)
    return None


async def _free_slot(conn: AsyncConnection, network: str, slot: int, holder: str) -> None:
    # Fenced on the holder: a slot whose lease expired and was taken by another is not freed by us.
    await conn.execute(
        pacing_slots.update()
        .where(pacing_slots.c.network == network, pacing_slots.c.slot == slot, pacing_slots.c.holder == holder[:100])
        .values(holder=None, until=None)
    )


async def _create_missing_slots(conn: AsyncConnection, network: str, cap: int) -> bool:
    """Create the slot rows 0..cap-1 of `network` that do not exist yet (first use, or a raised cap).

    Only runs when no free slot was found, so the common path costs nothing. Returns whether rows
    were added (then it is worth looking again).
    """
    have = set((await conn.execute(
        sa.select(pacing_slots.c.slot).where(pacing_slots.c.network == network, pacing_slots.c.slot < cap)
    )).scalars())
    missing = [{"network": network, "slot": n, "holder": None, "until": None} for n in range(cap) if n not in have]
    if missing:
        await conn.execute(_insert_ignore(conn, pacing_slots, missing, ["network", "slot"]))
    return bool(missing)


def _insert_ignore(conn: AsyncConnection, table: sa.Table, values: object, keys: list[str]) -> sa.Insert:
    """INSERT that leaves existing rows alone, without ending the caller's transaction on a conflict."""
    if conn.dialect.name == "sqlite":
        return sqlite_dialect.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
    statement = mysql_dialect.insert(table).values(values)
    # ON DUPLICATE KEY UPDATE k = k: a no-op on conflict (INSERT IGNORE would also hide other errors).
    return statement.on_duplicate_key_update({keys[0]: statement.inserted[keys[0]]})
