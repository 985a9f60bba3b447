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

A target held back by pacing is late, not failed: it stays `pending`. Held by its account's pace,
its post gets a fresh publish job at the time pacing names; held because every slot of its network
is busy, its run waits a moment and asks again (see workers/publish_post.py). Waiting never uses up
the job's attempts. `admit_many` decides many targets in one go (the worker's batches).

Defaults come from shared/platforms.md; every value can be overridden (see `load_pacing`):

    OUIPOST_PACING=off                                   no pacing at all
    OUIPOST_PACING_ACCOUNT=twitter=10/10,bluesky=off     per account: INTERVAL_SECONDS/BURST, or off
    OUIPOST_PACING_CONCURRENCY=*=64,youtube=4            calls in flight per network (all processes)
    OUIPOST_REFRESH_WINDOWS=twitter=1800,youtube=900     refresh tokens expiring within SECONDS
"""

from __future__ import annotations

import functools
import logging
import math
import random
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.db.batch import NOW, expanding, json_by_key, json_value_of
from ouipost.db.pacing_tables import pacing, pacing_slots
from ouipost.db.types import UTCDateTime
from ouipost.platforms.registry import NETWORKS

log = logging.getLogger("ouipost.publishing.pacing")

DAY = 86400.0
HOUR = 3600.0
SLOT_LEASE_SECONDS = 600.0  # longer than any single publish (video uploads poll for minutes)
BUSY_RETRY_SECONDS = (0.2, 0.6)  # no free slot: try again after a jittered moment


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
    # Per account: 300 requests per 5 min, 30 media uploads per 30 min (the default server config;
    # each server may differ, and its X-RateLimit-Reset defers what still meets a limit).
    "mastodon": AccountPace.within((30, 1800.0), burst=10),
}

# Calls in flight per network across every process. No network publishes one; these keep a burst
# from opening hundreds of connections at once to one network (and its per-app limits). A slot is
# held for the call plus the commits around it, so a cap of N passes at most about
# N / (latency + ~0.1 s) posts a second to a network: 64 lets a 09:00 burst drain at a few hundred
# posts a second on a fast network, and still tens a second on one answering in a second.
DEFAULT_CONCURRENCY = 64
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
    """Not now: try again after `seconds`. `busy` when every slot of the network was taken (a
    moment's wait), else the account's pacing (it names the time of its next turn)."""

    seconds: float
    reason: str
    busy: bool = False
    network: str = ""


@dataclass(frozen=True)
class Admission:
    """Go: the network slot taken (None when the network has no cap), to give back with `release`."""

    network: str
    slot: int | None
    holder: str


@dataclass(frozen=True)
class Ask:
    """One post of `account_id` to send to `network`; `holder` names the sender (unique per ask)."""

    network: str
    account_id: str
    holder: str


def account_key(account_id: str) -> str:
    return f"account:{account_id}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def admit(
    conn: AsyncConnection, *, network: str, account_id: str, holder: str, now: datetime,
    config: PacingConfig,
) -> Admission | Hold:
    """Ask to send one post of `account_id` to `network` now, in the caller's transaction (see
    `admit_many`)."""
    return (await admit_many(conn, [Ask(network, account_id, holder)], now=now, config=config))[0]


async def admit_many(
    conn: AsyncConnection, asks: Sequence[Ask], *, now: datetime, config: PacingConfig,
) -> list[Admission | Hold]:
    """Decide many asks at once, in the caller's transaction; one answer per ask, in order.

    Network slots are taken first (an ask finding none is held `busy`); then the accounts' turns,
    in the order of the asks (several asks of one account take its turns one after the other);
    an ask whose account must wait gives its slot back in the same transaction, so a Hold changes
    nothing. Commit the caller's transaction for the admissions to count. On SQLite run it inside
    `ouipost.db.batch.write_transaction` for exactness across processes; on MySQL and PostgreSQL the rows read are
    locked (FOR UPDATE; slots with SKIP LOCKED, so concurrent admissions never wait on each other's
    slots). Database errors propagate.
    """
    answers: list[Admission | Hold | None] = [None] * len(asks)
    slots: dict[int, int | None] = {}
    by_network: dict[str, list[int]] = {}
    for n, ask in enumerate(asks):
        by_network.setdefault(ask.network, []).append(n)
    for network, indexes in by_network.items():
        cap = config.network_concurrency(network)
        if cap is None:
            slots.update((n, None) for n in indexes)
            continue
        taken = await _take_slots(conn, network, cap, [asks[n].holder for n in indexes], now)
        for n, slot in zip(indexes, taken, strict=True):
            if slot is None:
                answers[n] = Hold(random.uniform(*BUSY_RETRY_SECONDS), f"{network}: {cap} calls already in flight",
                                  busy=True, network=network)
            else:
                slots[n] = slot
    paced = [(n, pace) for n in slots if (pace := config.account_pace(asks[n].network)) is not None]
    waits = await _take_turns(conn, [(account_key(asks[n].account_id), pace) for n, pace in paced], now)
    give_back: list[int] = []
    for (n, pace), wait in zip(paced, waits, strict=True):
        if wait is not None:
            answers[n] = Hold(wait, f"{asks[n].network}: pacing this account ({pace.burst} at once, then one per "
                                    f"{pace.interval:g}s)", network=asks[n].network)
            if slots[n] is not None:
                give_back.append(n)
    if give_back:
        await _free_slots(conn, [asks[n].holder for n in give_back])
    # Every ask not held has a slot (None when its network has no cap): it goes.
    return [answer if answer is not None else Admission(asks[n].network, slots[n], asks[n].holder)
            for n, answer in enumerate(answers)]


async def release(conn: AsyncConnection, admission: Admission) -> None:
    """Give the admission's network slot back (nothing to do for networks without a cap)."""
    await release_many(conn, [admission])


async def release_many(conn: AsyncConnection, admissions: Sequence[Admission]) -> None:
    """Give the admissions' network slots back, in one statement. Fenced on the holder: a slot whose
    lease expired and was taken by another is not freed by us."""
    holders = [a.holder for a in admissions if a.slot is not None]
    if holders:
        await _free_slots(conn, holders)


# Statements built once (see ouipost/publishing/service.py on why).
_TATS = (sa.select(pacing.c.key, pacing.c.tat_ms).where(pacing.c.key.in_(expanding("keys")))
         .order_by(pacing.c.key))
_TATS_LOCKED = _TATS.with_for_update()
_SET_TAT = pacing.update().where(pacing.c.key == sa.bindparam("k")).values(tat_ms=sa.bindparam("tat"))
# The same for many keys in one statement on MySQL/MariaDB (see ouipost.db.batch.json_value_of).
_SET_TATS_BY_JSON = pacing.update().where(pacing.c.key.in_(expanding("keys"))).values(
    tat_ms=json_value_of("tats", pacing.c.key))
_SLOT_FREE = sa.or_(pacing_slots.c.holder.is_(None), pacing_slots.c.until < NOW)
_FREE_SLOTS = (
    sa.select(pacing_slots.c.slot)
    .where(pacing_slots.c.network == sa.bindparam("network"), pacing_slots.c.slot < sa.bindparam("cap"), _SLOT_FREE)
    .order_by(pacing_slots.c.slot)
    .limit(sa.bindparam("wanted", type_=sa.Integer()))
)
_FREE_SLOTS_SKIP_LOCKED = _FREE_SLOTS.with_for_update(skip_locked=True)
_TAKE_SLOT = (
    pacing_slots.update()
    .where(pacing_slots.c.network == sa.bindparam("b_network"), pacing_slots.c.slot == sa.bindparam("b_slot"),
           _SLOT_FREE)
    .values(holder=sa.bindparam("b_holder"), until=sa.bindparam("b_until", type_=UTCDateTime()))
)
# The same for many slots in one statement on MySQL/MariaDB (see ouipost.db.batch.json_value_of); its
# row count is the number of rows matched, as the sum of the one-row statements' is.
_TAKE_SLOTS_BY_JSON = (
    pacing_slots.update()
    .where(pacing_slots.c.network == sa.bindparam("b_network"), pacing_slots.c.slot.in_(expanding("slots")),
           _SLOT_FREE)
    .values(holder=json_value_of("holders", pacing_slots.c.slot), until=sa.bindparam("b_until", type_=UTCDateTime()))
)
_HELD_BY = sa.select(pacing_slots.c.holder, pacing_slots.c.slot).where(
    pacing_slots.c.network == sa.bindparam("network"),
    pacing_slots.c.holder.in_(expanding("holders")),
)
_FREE_BY_HOLDER = pacing_slots.update().where(
    pacing_slots.c.holder.in_(expanding("holders"))).values(holder=None, until=None)


async def _take_turns(conn: AsyncConnection, asks: Sequence[tuple[str, AccountPace]], now: datetime,
                      ) -> list[float | None]:
    """GCRA for each (key, pace), in order: None when that post may go now (and it is counted),
    else the seconds to wait. Reads the keys' rows (locking them on MySQL and PostgreSQL), decides in order, and
    writes each changed key once."""
    if not asks:
        return []
    now_ms = _ms(now)
    keys = sorted({key for key, _ in asks})
    tats = await _read_tats(conn, keys)
    missing = [k for k in keys if k not in tats]
    if missing:
        # First posts of these accounts: create their rows (a concurrent first post may win the
        # insert; reading again takes whichever row exists, locked).
        await conn.execute(_insert_ignore(conn.dialect.name, pacing, ("key",)),
                           [{"key": k, "tat_ms": now_ms} for k in missing])
        tats.update(await _read_tats(conn, missing))
    before = dict(tats)
    waits: list[float | None] = []
    for key, pace in asks:
        step = max(1, round(pace.interval * 1000))
        tolerance = (pace.burst - 1) * step
        tat = tats[key]
        if tat <= now_ms + tolerance:
            tats[key] = max(tat, now_ms) + step
            waits.append(None)
        else:
            waits.append(max(0.001, (tat - tolerance - now_ms) / 1000))
    changed = {k: v for k, v in tats.items() if v != before[k]}
    by_json = json_by_key(changed) if conn.dialect.name == "mysql" and len(changed) > 1 else None
    if by_json is not None:
        await conn.execute(_SET_TATS_BY_JSON, {"keys": list(changed), "tats": by_json})
    elif changed:
        await conn.execute(_SET_TAT, [{"k": k, "tat": v} for k, v in changed.items()])
    return waits


async def _read_tats(conn: AsyncConnection, keys: Sequence[str]) -> dict[str, int]:
    query = _TATS if conn.dialect.name == "sqlite" else _TATS_LOCKED
    return {key: int(tat) for key, tat in (await conn.execute(query, {"keys": list(keys)})).all()}


async def _take_slots(conn: AsyncConnection, network: str, cap: int, holders: Sequence[str], now: datetime,
                      ) -> list[int | None]:
    """Take free (or lease-expired) slots of `network` for `holders`, in order: a slot each while
    any is free, None for the rest.

    MySQL/MariaDB and PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED LIMIT n`, so concurrent publishers never wait
    on (or deadlock over) slots another is taking; then each is given its holder. On SQLite the
    UPDATE is fenced on the slot being free, and what it did is read back when it did not take
    them all (another process took one since our read).
    """
    locks = conn.dialect.name != "sqlite"
    find, params = (_FREE_SLOTS_SKIP_LOCKED if locks else _FREE_SLOTS), {
        "network": network, "cap": cap, "now": now, "wanted": len(holders)}
    candidates = [int(s) for s in (await conn.execute(find, params)).scalars()]
    if len(candidates) < len(holders) and await _create_missing_slots(conn, network, cap):
        candidates = [int(s) for s in (await conn.execute(find, params)).scalars()]
    if not candidates:
        return [None] * len(holders)
    if not locks:
        random.shuffle(candidates)  # concurrent publishers reading the same free slots mostly differ
    assigned = dict(zip(candidates, (h[:100] for h in holders), strict=False))
    until = now + timedelta(seconds=SLOT_LEASE_SECONDS)
    by_json = json_by_key(assigned) if conn.dialect.name == "mysql" and len(assigned) > 1 else None
    if by_json is not None:
        taken = await conn.execute(_TAKE_SLOTS_BY_JSON, {"b_network": network, "slots": list(assigned),
                                                         "holders": by_json, "b_until": until, "now": now})
    else:
        taken = await conn.execute(_TAKE_SLOT, [{"b_network": network, "b_slot": slot, "b_holder": holder,
                                                 "b_until": until, "now": now} for slot, holder in assigned.items()])
    if taken.rowcount != len(assigned):
        held = dict((await conn.execute(_HELD_BY, {"network": network, "holders": list(assigned.values())})).all())
        return [held.get(h[:100]) for h in holders]
    slot_of = {h: s for s, h in assigned.items()}
    return [slot_of.get(h[:100]) for h in holders]


async def _free_slots(conn: AsyncConnection, holders: Sequence[str]) -> None:
    await conn.execute(_FREE_BY_HOLDER, {"holders": [h[:100] for h in holders]})


async def _create_missing_slots(conn: AsyncConnection, network: str, cap: int) -> bool:
    """Create the slot rows 0..cap-1 of `network` that do not exist yet (first use, or a raised cap).

    Runs when fewer free slots were found than asked for, once per network and cap in a process
    (busy networks would otherwise pay a read for it on every admission). Returns whether rows were
    added (then it is worth looking again).
    """
    complete = _COMPLETE_SLOTS.setdefault(conn.sync_engine, set())
    if (network, cap) in complete:
        return False
    have = set((await conn.execute(
        sa.select(pacing_slots.c.slot).where(pacing_slots.c.network == network, pacing_slots.c.slot < cap)
    )).scalars())
    missing = [{"network": network, "slot": n, "holder": None, "until": None} for n in range(cap) if n not in have]
    if missing:
        await conn.execute(_insert_ignore(conn.dialect.name, pacing_slots, ("network", "slot")), missing)
    else:
        complete.add((network, cap))  # (rows added now are only sure once this transaction commits)
    return bool(missing)


# Per database (engine): the (network, cap) whose slot rows are known to exist.
_COMPLETE_SLOTS: weakref.WeakKeyDictionary[Any, set[tuple[str, int]]] = weakref.WeakKeyDictionary()


@functools.cache
def _insert_ignore(dialect: str, table: sa.Table, keys: tuple[str, ...]) -> sa.Insert:
    """INSERT that leaves existing rows alone, without ending the caller's transaction on a conflict.
    Executed with a list of rows (one multi-row INSERT on MySQL, per row in one call on SQLite) and
    built once: a VALUES list of each batch's length was compiled again for every batch of first
    posts."""
    if dialect in ("sqlite", "postgresql"):
        on_conflict = sqlite_dialect.insert if dialect == "sqlite" else postgresql_dialect.insert
        return on_conflict(table).on_conflict_do_nothing(index_elements=list(keys))
    statement = mysql_dialect.insert(table)
    # ON DUPLICATE KEY UPDATE k = k: a no-op on conflict (INSERT IGNORE would also hide other errors).
    return statement.on_duplicate_key_update({keys[0]: statement.inserted[keys[0]]})
