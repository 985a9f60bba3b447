"""Analytics: keeping what the networks say about published posts and accounts, and reading it back.

Writing (workers and the publish flow):
- `on_targets_published` (called by publishing when targets are marked published, in that
  transaction) creates each target's rollup row with zeros and enqueues its first `sync_analytics`
  job a minute later.
- `store_snapshot` keeps one insights answer as history (`insight_snapshots`) and makes it the
  target's latest totals (`target_insights`); `schedule_next_sync` enqueues the next sync along
  SYNC_SCHEDULE (offsets from publication), so a target is synced often while young and stops after
  the last offset. One live sync job per target (unique key `analytics:<target id>`).
- `store_account_snapshot` keeps a daily account answer (followers, demographics).
- The rollups of `target_insights` by hour and day (see ouipost/db/analytics_tables.py) change in the
  same transactions, by the same amounts: a publication adds its targets, a snapshot the difference
  from the figures it replaces, `forget_post` (called by post deletion) takes the post's targets out.
  A deleted workspace's rollup rows cascade with it; disconnecting an account changes no published
  target, hence no rollup.

Reading (handlers): `post_totals` (post lists and views, one grouped query per page),
`post_analytics` (one post), `workspace_analytics` (a workspace, or every workspace for the admin).
Workspace periods select targets by their publication time and show their latest totals, so the
timeline's buckets add up to the summary and a period with no publication is all zeros. A workspace's
period reads the rollups for its whole UTC days (per-network totals) and whole UTC hours (timeline),
and `target_insights` only for the partial days and hours at its ends and, in zones whose offset is
not whole hours, for the UTC hours that hold a local midnight: the same sums, from a few hundred rows.

What can go wrong: `resolve_period` raises 422 VALIDATION_ERROR (from after to, too many points);
`request_refresh` raises 409 CONFLICT for a post with nothing published. Database errors propagate.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.accounts.statuses import AccountStatus
from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.db.analytics_tables import (
    account_snapshots,
    daily_network_insights,
    hourly_insights,
    hourly_network_insights,
    insight_snapshots,
    target_insights,
)
from ouipost.db.batch import expanding
from ouipost.db.rows import AccountRow, TargetRow, record, records
from ouipost.db.tables import post_targets, posts, social_accounts
from ouipost.jobs import queue
from ouipost.platforms.base import AccountStats, Insights

log = logging.getLogger("ouipost.analytics.service")

SYNC_KIND = "sync_analytics"
ACCOUNTS_KIND = "sync_accounts"
QUEUE = "analytics"  # its own queue name: standalone workers can serve publishing and analytics apart
PRIORITY = 150  # after publish jobs (10, 50) and the default (100): insights can always wait a little
SYNC_MAX_ATTEMPTS = 6
# When a published target is synced, counted from its publication. Young posts move fast, old ones
# barely; after the last offset the target keeps its latest totals (a refresh still syncs it).
SYNC_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=6),
    timedelta(hours=24), timedelta(hours=72), timedelta(days=7),
)
ACCOUNTS_JOB_KEY = "analytics:accounts"
ACCOUNTS_INTERVAL = timedelta(hours=24)
ACCOUNTS_MAX_ATTEMPTS = 3

GRANULARITIES = ("hour", "day", "week", "month")
DEFAULT_PERIOD = timedelta(days=30)
MAX_SPAN = {"hour": timedelta(days=731), "day": timedelta(days=3660), "week": timedelta(days=3660),
            "month": timedelta(days=3660)}
ADMIN_PERIODS = {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90),
                 "1y": timedelta(days=365)}
TOP_POSTS = 5
PERIOD_INDEX = "ix_target_insights_workspace_period"
COMMON = ("impressions", "reach", "engagement", "clicks")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sync_job_key(target_id: str) -> str:
    return f"analytics:{target_id}"


def engagement_rate(engagement: float, impressions: float) -> float:
    """engagement / impressions x 100, two decimals; 0 when there are no impressions."""
    return round(engagement * 100 / impressions, 2) if impressions else 0.0


# --- writing: publication, snapshots, the sync schedule -------------------------------------------


def next_sync_at(published_at: datetime, now: datetime) -> datetime | None:
    """The first point of SYNC_SCHEDULE after `now`, or None when the schedule is over."""
    for offset in SYNC_SCHEDULE:
        due = published_at + offset
        if due > now:
            return due
    return None


_PUBLISHED_TARGETS = (
    sa.select(post_targets.c.id, post_targets.c.post_id, post_targets.c.workspace_id, post_targets.c.network,
              post_targets.c.account_id, post_targets.c.published_at)
    .where(post_targets.c.id.in_(expanding())).order_by(post_targets.c.id)
)
_SIBLINGS = (sa.select(target_insights.c.target_id, target_insights.c.post_id, target_insights.c.network)
             .where(target_insights.c.post_id.in_(expanding())))


async def on_target_published(conn: AsyncConnection, target_id: str, now: datetime) -> None:
    """The target was just marked published: see `on_targets_published`."""
    await on_targets_published(conn, [target_id], now)


async def on_targets_published(conn: AsyncConnection, target_ids: Sequence[str], now: datetime) -> None:
    """The targets were just marked published: give each a rollup row (zeros until its first
    snapshot) and enqueue its first sync, with a few statements for any number of targets.
    Idempotent: a target that already has its row changes nothing."""
    if not target_ids:
        return
    targets = (await conn.execute(_PUBLISHED_TARGETS, {"ids": list(target_ids)})).all()
    if not targets:
        return
    siblings = (await conn.execute(_SIBLINGS, {"ids": sorted({t.post_id for t in targets})})).all()
    have = {s.target_id for s in siblings}
    posts_seen = {s.post_id for s in siblings}
    networks_seen = {(s.post_id, s.network) for s in siblings}
    rows, sync_jobs = [], []
    for target in targets:
        if target.id in have:
            continue
        published_at = target.published_at or now
        rows.append({
            "target_id": target.id, "workspace_id": target.workspace_id, "post_id": target.post_id,
            "network": target.network, "account_id": target.account_id, "published_at": published_at,
            "first_of_post": 0 if target.post_id in posts_seen else 1,
            "first_of_network": 0 if (target.post_id, target.network) in networks_seen else 1,
            "impressions": 0, "reach": 0, "engagement": 0, "clicks": 0, "metrics": {}, "snapshots": 0,
            "synced_at": None,
        })
        posts_seen.add(target.post_id)
        networks_seen.add((target.post_id, target.network))
        sync_jobs.append((queue.NewJob(SYNC_KIND, {"target_id": target.id}, QUEUE, published_at + SYNC_SCHEDULE[0],
                                       PRIORITY, SYNC_MAX_ATTEMPTS), sync_job_key(target.id)))
    if rows:
        await conn.execute(sa.insert(target_insights), rows)
        await add_to_rollups(conn, [{**row, "targets": 1} for row in rows])
        await queue.enqueue_unique_many(conn, sync_jobs, now=now)


async def _enqueue_sync(conn: AsyncConnection, target_id: str, run_at: datetime, now: datetime) -> int | None:
    return await queue.enqueue(
        conn, kind=SYNC_KIND, payload={"target_id": target_id}, now=now, queue=QUEUE, run_at=run_at,
        priority=PRIORITY, unique_key=sync_job_key(target_id), max_attempts=SYNC_MAX_ATTEMPTS,
    )


class SyncTarget(TargetRow):
    """A published target and its account row (None once the account is disconnected)."""

    account: AccountRow | None


async def target_for_sync(conn: AsyncConnection, target_id: str) -> SyncTarget | None:
    """The published target with what a sync needs (remote id, account row), or None when the target
    is gone (post deleted) or not published."""
    row = (await conn.execute(
        sa.select(post_targets).where(post_targets.c.id == target_id, post_targets.c.status == "published")
    )).mappings().first()
    if row is None or not row["remote_id"]:
        return None
    account = None
    if row["account_id"]:
        account = (await conn.execute(
            sa.select(social_accounts).where(social_accounts.c.id == row["account_id"])
        )).mappings().first()
    return record(SyncTarget, {**row, "account": record(AccountRow, account) if account else None})


async def store_snapshot(
    conn: AsyncConnection, target: TargetRow, insights: Insights, taken_at: datetime
) -> None:
    """Keep one insights answer of a published target and make it the target's latest totals, the
    rollups changing by the difference.

    An answer older than the totals already kept (a late retry) is kept as history only.
    """
    metrics = {str(k): float(v) for k, v in (insights.metrics or {}).items()}
    common = {"impressions": int(insights.impressions), "reach": int(insights.reach),
              "engagement": int(insights.engagement), "clicks": int(insights.clicks)}
    await conn.execute(sa.insert(insight_snapshots).values(
        workspace_id=target["workspace_id"], post_id=target["post_id"], target_id=target["id"],
        network=target["network"], account_id=target["account_id"], taken_at=taken_at, metrics=metrics, **common,
    ))
    # The figures being replaced, locked until commit: the rollups move by exactly their difference
    # (on SQLite the INSERT above already holds the database's write lock).
    current = (await conn.execute(_for_update(conn, _CURRENT_TOTALS), {"target_id": target["id"]})).first()
    if current is None:
        # Published before analytics existed (or its row was lost): create it (zeros), then update it.
        await on_target_published(conn, target["id"], taken_at)
        current = (await conn.execute(_CURRENT_TOTALS, {"target_id": target["id"]})).first()
        if current is None:  # the target is gone meanwhile: nothing to show it in
            return
    if current.synced_at is not None and current.synced_at > taken_at:
        return
    await conn.execute(target_insights.update().where(target_insights.c.target_id == target["id"])
                       .values(metrics=metrics, snapshots=target_insights.c.snapshots + 1, synced_at=taken_at,
                               **common))
    await add_to_rollups(conn, [{
        "workspace_id": current.workspace_id, "network": current.network, "published_at": current.published_at,
        **{name: common[name] - int(getattr(current, name)) for name in COMMON},
    }])


_CURRENT_TOTALS = sa.select(
    target_insights.c.workspace_id, target_insights.c.network, target_insights.c.published_at,
    target_insights.c.synced_at, *(target_insights.c[name] for name in COMMON),
).where(target_insights.c.target_id == sa.bindparam("target_id"))


def _for_update(conn: AsyncConnection, query: sa.Select[Any]) -> sa.Select[Any]:
    return query if conn.dialect.name == "sqlite" else query.with_for_update()


async def forget_post(conn: AsyncConnection, post_id: str) -> None:
    """The post is being deleted (its targets' rows cascade away with it): take its published targets
    out of the rollups, and drop the rollup rows left with no target. Call it in the deleting
    transaction, before the DELETE."""
    rows = (await conn.execute(_for_update(conn, sa.select(
        target_insights.c.workspace_id, target_insights.c.network, target_insights.c.published_at,
        target_insights.c.first_of_post, target_insights.c.first_of_network,
        *(target_insights.c[name] for name in COMMON),
    ).where(target_insights.c.post_id == post_id)))).all()
    if not rows:
        return
    await add_to_rollups(conn, [{
        "workspace_id": row.workspace_id, "network": row.network, "published_at": row.published_at,
        "targets": -1, "first_of_post": -row.first_of_post, "first_of_network": -row.first_of_network,
        **{name: -int(getattr(row, name)) for name in COMMON},
    } for row in rows])
    workspace_id = rows[0].workspace_id  # a post's targets are all of its workspace
    hours = sorted({_utc_hour(row.published_at) for row in rows})
    for table, column, values in (
        (hourly_insights, "utc_hour", hours), (hourly_network_insights, "utc_hour", hours),
        (daily_network_insights, "utc_day", sorted({hour // 24 for hour in hours})),
    ):
        await conn.execute(table.delete().where(
            table.c.workspace_id == workspace_id, table.c[column].in_(values), table.c.targets == 0,
        ))


def _utc_hour(instant: datetime) -> int:
    """Whole hours since the epoch (the rollups' time key); the database computes the same in the
    migration's backfill (TIMESTAMPDIFF(HOUR, ...) / strftime('%s') / 3600)."""
    return (instant - EPOCH) // timedelta(hours=1)


_ROLLUP_FIGURES = ("targets", "posts", *COMMON)


async def add_to_rollups(conn: AsyncConnection, changes: Sequence[Mapping[str, Any]]) -> None:
    """Add changes of target_insights rows to the three rollups: one upsert per rollup, rows in key
    order (concurrent writers lock shared rows in the same order).

    Each change has workspace_id, network, published_at and the amounts by which the rows move:
    `targets`, `first_of_post`, `first_of_network` and the four figures (absent: 0; negative to take
    away). A change of nothing writes nothing.
    """
    levels: list[tuple[sa.Table, dict[tuple[Any, ...], dict[str, int]]]] = [
        (hourly_insights, {}), (hourly_network_insights, {}), (daily_network_insights, {}),
    ]
    for change in changes:
        amounts = {name: int(change.get(name) or 0) for name in ("targets", *COMMON)}
        if not any(amounts.values()) and not change.get("first_of_post") and not change.get("first_of_network"):
            continue
        hour = _utc_hour(change["published_at"])
        keys = ((change["workspace_id"], hour), (change["workspace_id"], change["network"], hour),
                (change["workspace_id"], hour // 24, change["network"]))
        posts_by_level = (int(change.get("first_of_post") or 0),) + (int(change.get("first_of_network") or 0),) * 2
        for (_table, sums), key, posts_added in zip(levels, keys, posts_by_level, strict=True):
            row = sums.setdefault(key, dict.fromkeys(_ROLLUP_FIGURES, 0))
            row["posts"] += posts_added
            for name, amount in amounts.items():
                row[name] += amount
    for table, sums in levels:
        if not sums:
            continue
        key_names = [column.name for column in table.primary_key.columns]
        values = [{**dict(zip(key_names, key, strict=True)), **sums[key]} for key in sorted(sums)]
        # One statement given every row (the MySQL driver sends them as one multi-row INSERT; SQLite
        # runs it per row in one call), compiled once: a VALUES list of the batch's length was
        # compiled again for each batch, a sixth of a publishing worker's CPU.
        await conn.execute(_upsert_adding(conn.dialect.name, table), values)


@functools.cache
def _upsert_adding(dialect: str, table: sa.Table) -> sa.Insert:
    """INSERT of one row, for executemany; a row whose key exists gets the amounts added to its own."""
    if dialect in ("sqlite", "postgresql"):
        on_conflict = (sqlite_dialect if dialect == "sqlite" else postgresql_dialect).insert(table)
        return on_conflict.on_conflict_do_update(
            index_elements=[column.name for column in table.primary_key.columns],
            set_={name: table.c[name] + on_conflict.excluded[name] for name in _ROLLUP_FIGURES},
        )
    on_mysql = mysql_dialect.insert(table)
    return on_mysql.on_duplicate_key_update(
        {name: table.c[name] + on_mysql.inserted[name] for name in _ROLLUP_FIGURES}
    )


async def schedule_next_sync(
    conn: AsyncConnection, job: queue.Job, target: TargetRow, now: datetime
) -> datetime | None:
    """Enqueue the target's next sync along SYNC_SCHEDULE; returns when, or None when it is over.

    `job` is the running sync job: it hands its unique key to the next one (queue.release_unique_key)."""
    await queue.release_unique_key(conn, job)
    due = next_sync_at(target["published_at"] or now, now)
    if due is not None:
        await _enqueue_sync(conn, target["id"], due, now)
    return due


async def request_refresh(conn: AsyncConnection, workspace_id: str, post_id: str, now: datetime) -> list[str]:
    """Sync every published target of the post now: its queued sync job moves to now, or a new one is
    enqueued (a running one already is the refresh). Returns the target ids. 409 CONFLICT when the
    post has no published target; the caller has already checked that the post is the workspace's."""
    target_ids = (await conn.execute(
        sa.select(post_targets.c.id).where(
            post_targets.c.post_id == post_id, post_targets.c.workspace_id == workspace_id,
            post_targets.c.status == "published",
        ).order_by(post_targets.c.id)
    )).scalars().all()
    if not target_ids:
        raise errors.Conflict("This post has nothing published to sync analytics from")
    for target_id in target_ids:
        if not await queue.reschedule_queued(conn, sync_job_key(target_id), now):
            await _enqueue_sync(conn, target_id, now, now)
    return list(target_ids)


async def ensure_accounts_job(conn: AsyncConnection, now: datetime) -> None:
    """Make sure the daily `sync_accounts` job exists (at most one live, by its unique key)."""
    if not await queue.has_live_job(conn, ACCOUNTS_JOB_KEY):  # spares a doomed insert; the unique index decides
        await queue.enqueue(conn, kind=ACCOUNTS_KIND, payload={}, now=now, queue=QUEUE, run_at=now,
                            priority=PRIORITY, unique_key=ACCOUNTS_JOB_KEY, max_attempts=ACCOUNTS_MAX_ATTEMPTS)


async def schedule_next_accounts_sync(conn: AsyncConnection, job: queue.Job, now: datetime) -> None:
    """Hand the running `sync_accounts` job's unique key to tomorrow's run."""
    await queue.release_unique_key(conn, job)
    await queue.enqueue(conn, kind=ACCOUNTS_KIND, payload={}, now=now, queue=QUEUE, run_at=now + ACCOUNTS_INTERVAL,
                        priority=PRIORITY, unique_key=ACCOUNTS_JOB_KEY, max_attempts=ACCOUNTS_MAX_ATTEMPTS)


async def accounts_to_sync(conn: AsyncConnection) -> list[AccountRow]:
    """Every active account, oldest first."""
    rows = await conn.execute(
        sa.select(social_accounts)
        .where(social_accounts.c.status == AccountStatus.ACTIVE)
        .order_by(social_accounts.c.id)
    )
    return records(AccountRow, rows)


async def store_account_snapshot(
    conn: AsyncConnection, account: AccountRow, stats: AccountStats, taken_at: datetime
) -> None:
    """Keep one day's account answer (followers, following, posts, demographics when the network
    gives them)."""
    await conn.execute(sa.insert(account_snapshots).values(
        workspace_id=account["workspace_id"], account_id=account["id"], network=account["platform"],
        taken_at=taken_at, followers=stats.followers, following=stats.following, posts_total=stats.posts_total,
        demographics=dict(stats.demographics) if stats.demographics else None,
    ))


# --- reading: posts ---------------------------------------------------------------------------------


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 4)


async def post_totals(conn: AsyncConnection, post_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Latest totals of each post and per network, for post lists and views: one grouped query.

    {post_id: {"impressions", "reach", "engagement", "clicks", "by_platform": {network: {...}}}};
    posts with nothing published are absent.
    """
    if not post_ids:
        return {}
    rows = await conn.execute(
        sa.select(target_insights.c.post_id, target_insights.c.network,
                  *(sa.func.sum(target_insights.c[name]).label(name) for name in COMMON))
        .where(target_insights.c.post_id.in_(list(post_ids)))
        .group_by(target_insights.c.post_id, target_insights.c.network)
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = found.setdefault(row.post_id, {**dict.fromkeys(COMMON, 0), "by_platform": {}})
        values = {name: int(getattr(row, name) or 0) for name in COMMON}
        entry["by_platform"][row.network] = values
        for name in COMMON:
            entry[name] += values[name]
    return found


async def post_analytics(conn: AsyncConnection, post_id: str) -> dict[str, Any]:
    """Summary, per-network latest totals with the network's own metrics, and the timeline: after each
    snapshot, the post's totals as then known (every target's latest answer so far, added up)."""
    targets = (await conn.execute(
        sa.select(target_insights).where(target_insights.c.post_id == post_id).order_by(target_insights.c.target_id)
    )).mappings().all()
    by_platform: dict[str, dict[str, Any]] = {}
    summary = dict.fromkeys(COMMON, 0)
    for target in targets:
        entry = by_platform.setdefault(target["network"], {
            **dict.fromkeys(COMMON, 0), "metrics": {}, "synced_at": None,
        })
        for name in COMMON:
            entry[name] += int(target[name])
            summary[name] += int(target[name])
        for metric, value in (target["metrics"] or {}).items():
            entry["metrics"][metric] = entry["metrics"].get(metric, 0) + float(value)
        if target["synced_at"] is not None and (entry["synced_at"] is None or target["synced_at"] > entry["synced_at"]):
            entry["synced_at"] = target["synced_at"]
    shown: dict[str, dict[str, Any]] = {}
    for network, entry in sorted(by_platform.items()):
        own = {k: _number(v) for k, v in sorted(entry["metrics"].items()) if k not in COMMON}
        shown[network] = {
            **{name: entry[name] for name in COMMON},
            "engagement_rate": engagement_rate(entry["engagement"], entry["impressions"]),
            **own,
            "last_synced_at": isoformat(entry["synced_at"]),
        }
    return {
        "summary": {
            **{f"total_{name}": summary[name] for name in COMMON},
            "engagement_rate": engagement_rate(summary["engagement"], summary["impressions"]),
        },
        "by_platform": shown,
        "timeline": await _post_timeline(conn, post_id),
    }


async def _post_timeline(conn: AsyncConnection, post_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(insight_snapshots.c.target_id, insight_snapshots.c.taken_at,
                  *(insight_snapshots.c[name] for name in COMMON))
        .where(insight_snapshots.c.post_id == post_id)
        .order_by(insight_snapshots.c.taken_at, insight_snapshots.c.id)
    )
    latest: dict[str, dict[str, int]] = {}
    points: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row.target_id] = {name: int(getattr(row, name)) for name in COMMON}
        stamp = isoformat(row.taken_at) or ""
        # Snapshots in the same second are one point: the totals after all of them.
        points[stamp] = {"timestamp": stamp, **{name: sum(v[name] for v in latest.values()) for name in COMMON}}
    return list(points.values())


# --- reading: periods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """An inclusive UTC range, bucketed by `granularity` in `zone`."""

    start: datetime
    end: datetime
    granularity: str
    zone: ZoneInfo


def _instant(value: date | datetime, zone: ZoneInfo, *, end_of_day: bool) -> datetime:
    """A datetime with offset as given; a naive one in `zone`; a bare date is its whole day in `zone`."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=zone)).astimezone(UTC)
    if end_of_day:
        next_day = datetime.combine(value + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
        return next_day - timedelta(microseconds=1)
    return datetime.combine(value, time(0), tzinfo=zone).astimezone(UTC)


def resolve_period(
    start: date | datetime | None, end: date | datetime | None, granularity: str, zone_name: str, now: datetime
) -> Period:
    """The period a query asks for. Defaults: `to` now, `from` 30 days before `to`; both inclusive.

    422 VALIDATION_ERROR when from is after to, or the period has too many points for its granularity
    (hour: at most 731 days; the others: 10 years).
    """
    zone = ZoneInfo(zone_name)
    until = _instant(end, zone, end_of_day=True) if end is not None else now
    since = _instant(start, zone, end_of_day=False) if start is not None else until - DEFAULT_PERIOD
    if since > until:
        raise errors.ValidationError("from must not be after to", details={"from": ["must not be after to"]})
    limit = MAX_SPAN[granularity]
    if until - since > limit:
        raise errors.ValidationError(
            f"Too many points: {granularity} granularity covers at most {limit.days} days; choose a shorter "
            f"period or a coarser granularity",
            details={"granularity": [f"{granularity} covers at most {limit.days} days"]},
        )
    return Period(since, until, granularity, zone)


def bucket_key(instant: datetime, granularity: str, zone: ZoneInfo) -> str:
    """The timeline key of an instant: hour -> local ISO datetime with offset, day -> YYYY-MM-DD,
    week -> its Monday, month -> YYYY-MM (all in `zone`)."""
    local = instant.astimezone(zone)
    if granularity == "hour":
        return local.replace(minute=0, second=0, microsecond=0).isoformat()
    if granularity == "day":
        return local.date().isoformat()
    if granularity == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    return local.strftime("%Y-%m")


def _whole_hour_zone(zone: ZoneInfo, start: datetime, end: datetime) -> bool:
    """True when every UTC offset of `zone` over the period is whole hours (local boundaries fall on
    UTC hours); else the database groups by quarter hours (India +5:30, Nepal +5:45, ...)."""
    instant = start
    while True:
        offset = instant.astimezone(zone).utcoffset() or timedelta(0)
        if offset.total_seconds() % 3600:
            return False
        if instant >= end:
            return True
        instant = min(end, instant + timedelta(days=1))


def bucket_keys(period: Period, step: int) -> list[str]:
    """Every bucket of the period in order, empty ones included."""
    zone, granularity = period.zone, period.granularity
    first, last = period.start.astimezone(zone).date(), period.end.astimezone(zone).date()
    keys: list[str] = []
    if granularity == "day":
        day = first
        while day <= last:
            keys.append(day.isoformat())
            day += timedelta(days=1)
    elif granularity == "week":
        day = first - timedelta(days=first.weekday())
        while day <= last:
            keys.append(day.isoformat())
            day += timedelta(days=7)
    elif granularity == "month":
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            keys.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    else:
        # Walk UTC in steps aligned with local hour boundaries; a DST change adds or drops a local hour.
        instant = EPOCH + timedelta(seconds=int((period.start - EPOCH).total_seconds()) // step * step)
        while instant <= period.end:
            key = bucket_key(instant, granularity, zone)
            if not keys or keys[-1] != key:
                keys.append(key)
            instant += timedelta(seconds=step)
    return keys


def _bucket_column(conn: AsyncConnection, column: sa.ColumnElement[Any], step: int) -> sa.ColumnElement[Any]:
    """Whole `step`-second buckets since the epoch of a UTC datetime column, in SQL. Constants are
    inline so that the SELECT and GROUP BY expressions are the same text (ONLY_FULL_GROUP_BY)."""
    if conn.dialect.name == "sqlite":
        seconds = sa.cast(sa.func.strftime(sa.literal_column("'%s'"), column), sa.Integer)
        return (seconds / sa.literal_column(str(step))).label("bucket")
    if conn.dialect.name == "postgresql":  # EXTRACT(EPOCH) of a timestamp ignores the session time zone
        buckets = sa.func.floor(sa.extract("epoch", column) / sa.literal_column(str(step)))
        return sa.cast(buckets, sa.BigInteger).label("bucket")
    # TIMESTAMPDIFF on a DATETIME ignores the session time zone (UNIX_TIMESTAMP would not).
    minutes = sa.func.timestampdiff(sa.literal_column("MINUTE"), sa.literal_column("'1970-01-01 00:00:00'"), column)
    return minutes.op("DIV")(sa.literal_column(str(step // 60))).label("bucket")


def _period_clauses(
    workspace_id: str | None, period: Period, platform: str | None
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = [target_insights.c.published_at.between(period.start, period.end)]
    if workspace_id is not None:
        clauses.append(target_insights.c.workspace_id == workspace_id)
    if platform is not None:
        clauses.append(target_insights.c.network == platform)
    return clauses


async def workspace_analytics(
    conn: AsyncConnection, workspace_id: str | None, period: Period, platform: str | None = None
) -> dict[str, Any]:
    """Summary, by_platform, timeline (every bucket, zeros included), top_posts and audience of the
    targets published in the period (workspace_id None: every workspace, for the admin)."""
    clauses = _period_clauses(workspace_id, period, platform)
    network_sums = await _network_sums(conn, workspace_id, period, platform)
    by_platform = {
        network: {
            **values, "engagement_rate": engagement_rate(values["engagement"], values["impressions"]),
        }
        for network, values in sorted(network_sums.items())
    }
    timeline = await _timeline(conn, workspace_id, period, platform)

    totals = {name: sum(p[name] for p in by_platform.values()) for name in COMMON}
    summary = {
        "total_posts": sum(p["posts"] for p in timeline.values()),
        **{f"total_{name}": totals[name] for name in COMMON},
        "avg_engagement_rate": engagement_rate(totals["engagement"], totals["impressions"]),
        "best_performing_platform": best_platform(by_platform),
    }
    return {
        "summary": summary,
        "by_platform": by_platform,
        "timeline": [
            {"date": p["date"], "impressions": p["impressions"], "engagement": p["engagement"], "posts": p["posts"],
             "reach": p["reach"], "clicks": p["clicks"]}
            for p in timeline.values()
        ],
        "top_posts": await _top_posts(conn, clauses, with_workspace=workspace_id is None),
        "audience": await audience(conn, workspace_id, period, platform),
    }


HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _whole_units(period: Period, unit: timedelta) -> tuple[int, int]:
    """[first, last): the `unit`s since the epoch that lie wholly inside the period (first >= last:
    none). The period's end is inclusive to the microsecond."""
    first = -(-(period.start - EPOCH) // unit)
    last = (period.end + timedelta(microseconds=1) - EPOCH) // unit
    return first, last


def _target_clauses(
    workspace_id: str | None, platform: str | None, ranges: Sequence[tuple[datetime, datetime]]
) -> list[sa.ColumnElement[bool]]:
    """target_insights published in any of the half-open ranges [from, until)."""
    t = target_insights
    clauses: list[sa.ColumnElement[bool]] = [
        sa.or_(*(sa.and_(t.c.published_at >= since, t.c.published_at < until) for since, until in ranges))
    ]
    if workspace_id is not None:
        clauses.append(t.c.workspace_id == workspace_id)
    if platform is not None:
        clauses.append(t.c.network == platform)
    return clauses


def _outside(period: Period, first: int, last: int, unit: timedelta) -> list[tuple[datetime, datetime]]:
    """The parts of the period outside the whole units [first, last), as half-open ranges."""
    until = period.end + timedelta(microseconds=1)
    if first >= last:
        return [(period.start, until)]
    ranges = [(period.start, EPOCH + first * unit), (EPOCH + last * unit, until)]
    return [(since, end) for since, end in ranges if since < end]


def _figures(row: Any) -> dict[str, int]:
    return {"posts": int(row.posts or 0), **{name: int(getattr(row, name) or 0) for name in COMMON}}


def _add(into: dict[str, int], values: Mapping[str, int]) -> None:
    for name, value in values.items():
        into[name] = into.get(name, 0) + value


async def _network_sums(
    conn: AsyncConnection, workspace_id: str | None, period: Period, platform: str | None
) -> dict[str, dict[str, int]]:
    """{network: {posts, impressions, reach, engagement, clicks}} of the targets published in the
    period; a network is present when it has at least one. A workspace's whole UTC days come from
    daily_network_insights, the rest (and the admin's every workspace) from target_insights."""
    sums: dict[str, dict[str, int]] = {}
    first, last = _whole_units(period, DAY) if workspace_id is not None else (0, 0)
    if first < last:
        d = daily_network_insights
        query = (
            sa.select(d.c.network, sa.func.sum(d.c.posts).label("posts"),
                      *(sa.func.sum(d.c[name]).label(name) for name in COMMON))
            .where(d.c.workspace_id == workspace_id, d.c.utc_day >= first, d.c.utc_day < last)
            .group_by(d.c.network).having(sa.func.sum(d.c.targets) > 0)
        )
        if platform is not None:
            query = query.where(d.c.network == platform)
        for row in await conn.execute(query):
            _add(sums.setdefault(row.network, {}), _figures(row))
    ranges = _outside(period, first, last, DAY)
    if ranges:
        t = target_insights
        query = (
            sa.select(t.c.network, sa.func.sum(t.c.first_of_network).label("posts"),
                      *(sa.func.sum(t.c[name]).label(name) for name in COMMON))
            .where(*_target_clauses(workspace_id, platform, ranges)).group_by(t.c.network)
        )
        if workspace_id is not None and platform is None:
            # MariaDB likes the (workspace, network, ...) index for GROUP BY network, which reads every
            # target of the workspace; the period's range of the other index is a fraction of that.
            query = query.with_hint(t, f"USE INDEX ({PERIOD_INDEX})", dialect_name="mysql")
        for row in await conn.execute(query):
            _add(sums.setdefault(row.network, {}), _figures(row))
    return sums


async def _timeline(
    conn: AsyncConnection, workspace_id: str | None, period: Period, platform: str | None
) -> dict[str, dict[str, Any]]:
    """{key: {date, posts, impressions, reach, engagement, clicks}} for every bucket of the period, in
    order. A workspace's whole UTC hours come from hourly_insights (hourly_network_insights with a
    platform filter), grouped into local days (or hours) in SQL, except the hours that straddle two
    local days (zones whose offset is not whole hours); those and the partial hours at the period's
    ends come from target_insights, as does everything when no plan fits (see `_rollup_plan`)."""
    first, last = _whole_units(period, HOUR) if workspace_id is not None else (0, 0)
    plan = _rollup_plan(period, first, last) if first < last else None
    if plan is None:
        first = last = 0
    step = 3600 if _whole_hour_zone(period.zone, period.start, period.end) else 900
    timeline: dict[str, dict[str, Any]] = {
        key: {"date": key, "posts": 0, **dict.fromkeys(COMMON, 0)} for key in bucket_keys(period, step)
    }

    def add(key: str, row: Any) -> None:
        point = timeline.get(key)
        if point is None:  # cannot happen for rows inside the period; never invent a bucket
            return
        for name, value in _figures(row).items():
            point[name] += value

    ranges = _outside(period, first, last, HOUR)
    if plan is not None:
        offsets, straddling = plan
        table = hourly_insights if platform is None else hourly_network_insights
        hour = table.c.utc_hour
        by_day = period.granularity != "hour"
        bucket = (_local_day(conn, hour, offsets) if by_day else hour).label("bucket")
        query = (
            sa.select(bucket, sa.func.sum(table.c.posts).label("posts"),
                      *(sa.func.sum(table.c[name]).label(name) for name in COMMON))
            .where(table.c.workspace_id == workspace_id, hour >= first, hour < last).group_by(sa.text("bucket"))
        )
        if platform is not None:
            query = query.where(table.c.network == platform)
        if straddling:
            query = query.where(hour.not_in(straddling))
            ranges = _merged([*ranges, *((EPOCH + h * HOUR, EPOCH + (h + 1) * HOUR) for h in straddling)])
        for row in await conn.execute(query):
            if by_day:
                add(_day_key(date(1970, 1, 1) + timedelta(days=int(row.bucket)), period.granularity), row)
            else:
                add(bucket_key(EPOCH + int(row.bucket) * HOUR, "hour", period.zone), row)
    if ranges:
        t = target_insights
        counted = t.c.first_of_network if platform is not None else t.c.first_of_post
        rows = await conn.execute(
            sa.select(_bucket_column(conn, t.c.published_at, step), sa.func.sum(counted).label("posts"),
                      *(sa.func.sum(t.c[name]).label(name) for name in COMMON))
            .where(*_target_clauses(workspace_id, platform, ranges)).group_by(sa.text("bucket"))
        )
        for row in rows:
            add(bucket_key(EPOCH + timedelta(seconds=int(row.bucket) * step), period.granularity, period.zone), row)
    return timeline


def _merged(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Half-open ranges in order, touching ones joined."""
    merged: list[tuple[datetime, datetime]] = []
    for since, until in sorted(ranges):
        if merged and since <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(until, merged[-1][1]))
        else:
            merged.append((since, until))
    return merged


# Hours left to target_insights in a zone whose offset is not whole hours: one a day (the hour holding
# local midnight). Beyond this many (about a year by day), the whole timeline reads target_insights.
MAX_STRADDLING_HOURS = 400


def _rollup_plan(period: Period, first: int, last: int) -> tuple[list[tuple[int, int]], list[int]] | None:
    """How the UTC hours [first, last) of the hourly rollups map to the period's local buckets:
    (offsets, straddling). `offsets` are the zone's UTC offsets in seconds [(from hour, offset), ...];
    `straddling` the hours that hold a local midnight or an offset change (only target_insights can
    split them). None when the rollups cannot serve the timeline: hour granularity in a zone whose
    offset is not whole hours (every UTC hour then straddles two local hours), or too many straddling
    hours.
    """
    offsets, changing = _offset_changes(period.zone, first, last)
    if period.granularity == "hour":
        return None if changing or any(offset % 3600 for _, offset in offsets) else (offsets, [])
    straddling = set(changing)
    for index, (since, offset) in enumerate(offsets):
        if offset % 3600 == 0:
            continue  # local midnights are whole UTC hours: no hour holds one
        until = offsets[index + 1][0] if index + 1 < len(offsets) else last
        # The hour whose local span crosses midnight: its local start is in the day's last hour.
        crossing = next(h for h in range(since, since + 24) if (h * 3600 + offset) % 86400 > 82800)
        straddling.update(range(crossing, until, 24))
    if len(straddling) > MAX_STRADDLING_HOURS:
        return None
    return offsets, sorted(straddling)


def _offset_changes(zone: ZoneInfo, first: int, last: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The zone's UTC offset in seconds over the UTC hours [first, last): [(from hour, offset), ...],
    the first from `first`, each later one from the first whole hour on which it holds; and the hours
    inside which an offset changes (not at their start), whose hour-level figures cannot be split.

    Offsets are sampled once a day and each change is found by bisection, so a zone is assumed not to
    change its offset twice within a day (none does).
    """
    def offset_at(instant: datetime) -> int:
        return int((instant.astimezone(zone).utcoffset() or timedelta(0)).total_seconds())

    previous_hour, previous = first, offset_at(EPOCH + first * HOUR)
    offsets, changing = [(first, previous)], []
    hour = first
    while hour < last - 1:
        hour = min(last - 1, hour + 24)
        current = offset_at(EPOCH + hour * HOUR)
        if current != previous:
            low, high = previous_hour, hour  # offset(low) is the old one, offset(high) the new one
            while high - low > 1:
                middle = (low + high) // 2
                if offset_at(EPOCH + middle * HOUR) == previous:
                    low = middle
                else:
                    high = middle
            if offset_at(EPOCH + high * HOUR - timedelta(microseconds=1)) != previous:
                changing.append(high - 1)  # changed inside the hour before
            offsets.append((high, offset_at(EPOCH + high * HOUR)))
            previous = offsets[-1][1]
        previous_hour = hour
    return offsets, changing


def _local_day(conn: AsyncConnection, hour: sa.ColumnElement[Any], offsets: Sequence[tuple[int, int]]
               ) -> sa.ColumnElement[Any]:
    """The local day (days since 1970-01-01) of the start of a UTC hour column: (hour x 3600 + its
    offset) DIV 86400, the offset a CASE over the period's changes. Constants are inline: the GROUP BY
    repeats the text."""
    def number(value: int) -> sa.ColumnElement[Any]:
        return sa.literal_column(str(int(value)))

    if len(offsets) == 1:
        offset: sa.ColumnElement[Any] = number(offsets[0][1])
    else:
        offset = sa.case(
            *((hour < number(offsets[i + 1][0]), number(value)) for i, (_, value) in enumerate(offsets[:-1])),
            else_=number(offsets[-1][1]),
        )
    local = (hour * number(3600) + offset).self_group()  # a custom operator would not parenthesize it
    if conn.dialect.name in ("sqlite", "postgresql"):
        return local.op("/")(number(86400))  # integer operands: integer division
    return local.op("DIV")(number(86400))


def _day_key(day: date, granularity: str) -> str:
    """The timeline key of a local day: day -> YYYY-MM-DD, week -> its Monday, month -> YYYY-MM."""
    if granularity == "day":
        return day.isoformat()
    if granularity == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day.year:04d}-{day.month:02d}"


def best_platform(by_platform: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The network with the highest engagement rate among those that report impressions (ties: more
    engagement); when none reports impressions, the one with the most engagement; None without data."""
    with_impressions = [(p["engagement_rate"], p["engagement"], n) for n, p in by_platform.items() if p["impressions"]]
    if with_impressions:
        return max(with_impressions, key=lambda x: (x[0], x[1], _reverse(x[2])))[2]
    engaged = [(p["engagement"], n) for n, p in by_platform.items() if p["engagement"]]
    return max(engaged, key=lambda x: (x[0], _reverse(x[1])))[1] if engaged else None


def _reverse(name: str) -> tuple[int, ...]:
    # Ties go to the alphabetically first network, so the answer never depends on row order.
    return tuple(-ord(c) for c in name)


async def _top_posts(
    conn: AsyncConnection, clauses: Sequence[sa.ColumnElement[bool]], *, with_workspace: bool
) -> list[dict[str, Any]]:
    """The publications (a post on one network) with the most impressions, then engagement (ties: the
    newest target first). One query: the inner SELECT walks ix_target_insights_top backwards on
    MariaDB and stops after `TOP_POSTS` rows of the period; only those few are joined to their posts
    for the text (joined before the LIMIT, SQLite would look up the post of every row it sorts)."""
    t = target_insights
    order = (t.c.impressions.desc(), t.c.engagement.desc(), t.c.target_id.desc())
    top = (
        sa.select(t.c.target_id, t.c.post_id, t.c.workspace_id, t.c.network, t.c.impressions, t.c.engagement,
                  t.c.reach, t.c.clicks, t.c.published_at)
        .where(*clauses).order_by(*order).limit(TOP_POSTS).subquery("top")
    )
    rows = (await conn.execute(
        sa.select(top, posts.c.content).join(posts, posts.c.id == top.c.post_id)
        .order_by(top.c.impressions.desc(), top.c.engagement.desc(), top.c.target_id.desc())
    )).all()
    found = []
    for row in rows:
        item: dict[str, Any] = {
            "id": row.post_id, "content": row.content, "platform": row.network,
            "impressions": int(row.impressions), "engagement": int(row.engagement), "reach": int(row.reach),
            "clicks": int(row.clicks),
            "engagement_rate": engagement_rate(int(row.engagement), int(row.impressions)),
            "published_at": isoformat(row.published_at),
        }
        if with_workspace:
            item["workspace_id"] = row.workspace_id
        found.append(item)
    return found


# --- reading: audience ------------------------------------------------------------------------------


async def _latest_snapshots(
    conn: AsyncConnection, account_filter: Sequence[sa.ColumnElement[bool]], *, at_or_before: datetime,
    since: datetime | None = None, earliest: bool = False,
) -> dict[str, dict[str, Any]]:
    """Per connected account, its latest snapshot at or before `at_or_before` (or, with `earliest`,
    its first one in [since, at_or_before])."""
    s = account_snapshots
    inner = account_snapshots.alias("inner_snapshots")
    window = [inner.c.account_id == social_accounts.c.id, inner.c.taken_at <= at_or_before]
    if since is not None:
        window.append(inner.c.taken_at >= since)
    # Each account's instant is one step into the (account_id, taken_at) index (ORDER BY ... LIMIT 1
    # stops at the first entry; MIN/MAX would read every snapshot up to the instant).
    pick = (
        sa.select(inner.c.taken_at).where(*window)
        .order_by(inner.c.taken_at.asc() if earliest else inner.c.taken_at.desc()).limit(1)
    )
    chosen = (
        sa.select(social_accounts.c.id.label("account_id"), pick.scalar_subquery().label("at"))
        .where(*account_filter).subquery()
    )
    rows = await conn.execute(
        sa.select(s.c.account_id, s.c.network, s.c.followers, s.c.demographics)
        .join(chosen, sa.and_(s.c.account_id == chosen.c.account_id, s.c.taken_at == chosen.c.at))
        .order_by(s.c.id)
    )
    return {row.account_id: dict(row._mapping) for row in rows}


async def audience(
    conn: AsyncConnection, workspace_id: str | None, period: Period, platform: str | None = None
) -> dict[str, Any]:
    """Followers of the connected accounts at the end of the period (their latest daily snapshot), the
    growth since its start (each account from its latest snapshot before the start, else its first in
    the period), and the demographics the networks give, weighted by followers."""
    account_filter: list[sa.ColumnElement[bool]] = []
    if workspace_id is not None:
        account_filter.append(social_accounts.c.workspace_id == workspace_id)
    if platform is not None:
        account_filter.append(social_accounts.c.platform == platform)
    at_end = await _latest_snapshots(conn, account_filter, at_or_before=period.end)
    at_start = await _latest_snapshots(conn, account_filter, at_or_before=period.start)
    missing = set(at_end) - set(at_start)
    if missing:
        first_in = await _latest_snapshots(conn, account_filter, at_or_before=period.end, since=period.start,
                                           earliest=True)
        at_start.update({k: v for k, v in first_in.items() if k in missing})
    total = sum(int(v["followers"] or 0) for v in at_end.values())
    before = sum(int(at_start[k]["followers"] or 0) for k in at_end if k in at_start)
    growth = total - before
    return {
        "total_followers": total,
        "follower_growth": growth,
        "growth_rate": round(growth * 100 / before, 2) if before else 0.0,
        "demographics": merge_demographics(at_end.values()),
    }


def merge_demographics(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """age_groups and top_locations (percentages) averaged over accounts weighted by followers; any
    other figure a network gives is kept per network (numbers added up across its accounts)."""
    ages: dict[str, float] = {}
    places: dict[str, float] = {}
    weight = 0
    by_platform: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        demo = snap.get("demographics") or {}
        followers = int(snap.get("followers") or 0)
        if demo.get("age_groups") or demo.get("top_locations"):
            weight += followers
            for group, share in (demo.get("age_groups") or {}).items():
                ages[group] = ages.get(group, 0.0) + float(share) * followers
            for place in demo.get("top_locations") or []:
                country = str(place.get("country"))
                places[country] = places.get(country, 0.0) + float(place.get("percentage") or 0) * followers
        extra = {k: v for k, v in demo.items() if k not in ("age_groups", "top_locations")}
        if extra:
            mine = by_platform.setdefault(snap["network"], {})
            for name, value in extra.items():
                if isinstance(value, int | float) and isinstance(mine.get(name, 0), int | float):
                    mine[name] = mine.get(name, 0) + value
                else:
                    mine[name] = value
    result: dict[str, Any] = {
        "age_groups": {g: round(v / weight, 2) for g, v in ages.items()} if weight else {},
        "top_locations": [
            {"country": c, "percentage": round(v / weight, 2)}
            for c, v in sorted(places.items(), key=lambda item: (-item[1], item[0]))[:5]
        ] if weight else [],
    }
    if by_platform:
        result["by_platform"] = by_platform
    return result
