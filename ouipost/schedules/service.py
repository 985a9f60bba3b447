"""Schedules: named queries, the queue of posts that fills their slots, and the views the API shows.

Vocabulary:
- a *slot* is a weekly (day, HH:MM) of the schedule's zone with the platforms it publishes to;
- an *entry* (`schedule_entries`) ties a post to a schedule and to one slot occurrence
  (slot_id + slot_time in UTC); one post per occurrence (a unique index guards it);
- a post is *queued* while it has an entry and its status is `scheduled`. Entries stay after the post
  is published: they feed `stats`. A paused schedule (`is_active` false) keeps its entries with
  `held` set; nothing may be published from them until it is resumed (see `is_held`).

What callers outside this module use (always inside a transaction, `engine.begin()`):
- `queue_post(conn, schedule, post, networks, now)`: put a post into the earliest free fitting slot.
- `unqueue_post(conn, post_id)`: take it out; the others keep their slots.
- `replan(conn, schedule_id, now)`: give every queued post the next free fitting slot, in queue order;
  answers the moves, so the caller can move the publish jobs.
- `remove_account_from_slots(conn, account_id, now)`: on account disconnection.
- `is_held(conn, post_id)` / `held_posts(conn, ids)`: whether queued posts are held (publishing asks
  before starting them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.core import errors
from ouipost.core.clock import isoformat
from ouipost.core.ids import new_id
from ouipost.db.batch import expanding
from ouipost.db.pages import fetch_page
from ouipost.db.rows import EntryRow, PostRow, ScheduleRow, SlotRow, record, records
from ouipost.db.schedule_tables import schedule_entries, schedule_slots, schedules
from ouipost.db.tables import posts, social_accounts, workspaces
from ouipost.platforms.registry import NETWORKS
from ouipost.posts import statuses
from ouipost.schedules import slots as slot_rules
from ouipost.schedules.slots import HORIZON, Slot


class Move(NamedTuple):
    """A queued post whose slot changed: `slot_time` is the new instant (UTC), or None when no slot
    fits any more and the post went back to draft (its publish job must be cancelled)."""

    post_id: str
    slot_time: datetime | None


# ------------------------------------------------------------------------------------------------
# Schedules and their slots


async def get_schedule(
    conn: AsyncConnection, workspace_id: str, schedule_id: str, *, for_update: bool = False
) -> ScheduleRow:
    """The schedule of this workspace; NOT_FOUND otherwise (another workspace's schedule included)."""
    query = sa.select(schedules).where(schedules.c.id == schedule_id, schedules.c.workspace_id == workspace_id)
    if for_update and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise errors.NotFound("Schedule not found")
    return record(ScheduleRow, row)


async def _lock_schedule(conn: AsyncConnection, schedule_id: str) -> ScheduleRow | None:
    """Read the schedule and, on MariaDB, lock its row until the transaction ends, so that two
    requests filling the same schedule take turns. (SQLite serialises writers by itself.)"""
    query = sa.select(schedules).where(schedules.c.id == schedule_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return record(ScheduleRow, row) if row else None


async def list_schedules(
    conn: AsyncConnection, workspace_id: str, *, page: int, limit: int,
) -> tuple[list[ScheduleRow], int]:
    """One page of the workspace's schedules, oldest first (ids are time-ordered, so pages are
    stable), and how many it has."""
    rows, total = await fetch_page(conn, schedules, where=[schedules.c.workspace_id == workspace_id],
                                   order_by=[schedules.c.id], page=page, limit=limit)
    return records(ScheduleRow, rows), total


def _slot(row: RowMapping) -> Slot:
    return Slot(row["id"], row["day"], row["time"], tuple(row["platforms"]), row["position"])


async def slots_of(conn: AsyncConnection, schedule_ids: Sequence[str]) -> dict[str, list[Slot]]:
    """The slots of each schedule, in their given order."""
    found: dict[str, list[Slot]] = {sid: [] for sid in schedule_ids}
    if not schedule_ids:
        return found
    rows = await conn.execute(
        sa.select(schedule_slots).where(schedule_slots.c.schedule_id.in_(schedule_ids))
        .order_by(schedule_slots.c.schedule_id, schedule_slots.c.position)
    )
    for r in rows.mappings():
        found[r["schedule_id"]].append(_slot(r))
    return found


async def check_slot_platforms(conn: AsyncConnection, workspace_id: str, slots: Sequence[Mapping[str, Any]]) -> None:
    """Every platform of every slot must be a network name or an account id of this workspace.

    Raises VALIDATION_ERROR with details `{"slots": {index: {"platforms": [...]}}}`; an account id of
    another workspace is reported exactly like one that does not exist.
    """
    wanted = {p for slot in slots for p in slot["platforms"] if p not in NETWORKS}
    known: set[str] = set()
    if wanted:
        rows = await conn.execute(
            sa.select(social_accounts.c.id).where(
                social_accounts.c.workspace_id == workspace_id, social_accounts.c.id.in_(wanted)
            )
        )
        known = {r.id for r in rows}
    problems: dict[int, dict[str, list[str]]] = {}
    for index, slot in enumerate(slots):
        messages = []
        for entry in slot["platforms"]:
            if entry in NETWORKS or entry in known:
                continue
            if entry.startswith("acc_"):
                messages.append(f"Unknown account {entry}")
            else:
                messages.append(f"Unknown network {entry!r}; use one of {', '.join(NETWORKS)} or an account id")
        if messages:
            problems[index] = {"platforms": messages}
    if problems:
        raise errors.ValidationError("Some slot platforms are not valid", details={"slots": problems})


async def workspace_timezone(conn: AsyncConnection, workspace_id: str) -> str:
    """The workspace's default zone (settings.timezone), UTC when it has none."""
    settings = await conn.scalar(sa.select(workspaces.c.settings).where(workspaces.c.id == workspace_id))
    return (settings or {}).get("timezone") or "UTC"


async def create_schedule(
    conn: AsyncConnection, *, workspace_id: str, fields: Mapping[str, Any], now: datetime
) -> tuple[ScheduleRow, list[Slot]]:
    """Insert a schedule and its slots. `fields` is validated input; platforms are checked here
    (VALIDATION_ERROR). The zone defaults to the workspace's."""
    await check_slot_platforms(conn, workspace_id, fields["slots"])
    row: ScheduleRow = {
        "id": new_id("sched"),
        "workspace_id": workspace_id,
        "name": fields["name"],
        "description": fields.get("description"),
        "timezone": fields.get("timezone") or await workspace_timezone(conn, workspace_id),
        "is_active": fields.get("is_active", True),
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(schedules.insert().values(**row))
    return row, await _insert_slots(conn, row["id"], fields["slots"])


async def _insert_slots(conn: AsyncConnection, schedule_id: str, slots: Sequence[Mapping[str, Any]]) -> list[Slot]:
    made = [
        Slot(new_id("slot"), s["day"], s["time"], tuple(dict.fromkeys(s["platforms"])), position)
        for position, s in enumerate(slots)
    ]
    rows: list[SlotRow] = [
        {"id": s.id, "schedule_id": schedule_id, "day": s.day, "time": s.time, "platforms": list(s.platforms),
         "position": s.position}
        for s in made
    ]
    await conn.execute(schedule_slots.insert(), rows)
    return made


async def update_schedule(
    conn: AsyncConnection, schedule: ScheduleRow, changes: Mapping[str, Any], now: datetime
) -> tuple[ScheduleRow, list[Slot], list[Move]]:
    """Apply a partial update and answer (row, slots, moves).

    - `slots` replaces every slot (new ids); the queued posts are re-planned in order into them.
    - a new `timezone` re-plans too (the same wall-clock slots are other instants).
    - `is_active` false holds the queued posts where they are; true again re-plans them into the
      next free slots from `now`.
    A queued post that no longer fits any slot within 56 days goes back to draft (Move with None).
    VALIDATION_ERROR for unknown slot platforms (nothing changed).
    """
    schedule_id = schedule["id"]
    if "slots" in changes:
        await check_slot_platforms(conn, schedule["workspace_id"], changes["slots"])
    await _lock_schedule(conn, schedule_id)
    values: dict[str, Any] = {
        k: v for k, v in changes.items() if k in ("name", "description", "timezone", "is_active")
    }
    values["updated_at"] = now
    await conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(**values))
    row = record(ScheduleRow, {**schedule, **values})

    if "slots" in changes:
        await conn.execute(schedule_slots.delete().where(schedule_slots.c.schedule_id == schedule_id))
        await _insert_slots(conn, schedule_id, changes["slots"])
    resumed = row["is_active"] and not schedule["is_active"]
    rezoned = row["timezone"] != schedule["timezone"]
    await conn.execute(
        schedule_entries.update().where(schedule_entries.c.schedule_id == schedule_id)
        .values(held=not row["is_active"])
    )
    moves: list[Move] = []
    if "slots" in changes or rezoned or resumed:
        moves = await replan(conn, schedule_id, now)
    slots = (await slots_of(conn, [schedule_id]))[schedule_id]
    return row, slots, moves


async def delete_schedule(conn: AsyncConnection, schedule: ScheduleRow, now: datetime) -> list[str]:
    """Delete the schedule, its slots and its entries; its queued posts go back to draft (no
    scheduled_at). Answers the ids of those posts, whose publish jobs must be cancelled."""
    await _lock_schedule(conn, schedule["id"])
    rows = await conn.execute(
        sa.select(schedule_entries.c.post_id)
        .join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(schedule_entries.c.schedule_id == schedule["id"], posts.c.status == "scheduled")
        .order_by(schedule_entries.c.slot_time, schedule_entries.c.position)
    )
    post_ids = [r.post_id for r in rows]
    if post_ids:
        await _back_to_draft(conn, post_ids, now)
    await conn.execute(schedules.delete().where(schedules.c.id == schedule["id"]))
    return post_ids


async def _back_to_draft(conn: AsyncConnection, post_ids: Sequence[str], now: datetime) -> None:
    await conn.execute(
        posts.update().where(posts.c.id.in_(post_ids), posts.c.status == "scheduled")
        .values(status="draft", scheduled_at=None, scheduled_timezone=None, updated_at=now)
    )


# ------------------------------------------------------------------------------------------------
# The queue


async def _account_networks(conn: AsyncConnection, entries: Iterable[str]) -> dict[str, str]:
    """The network of each account id among `entries` (network names are skipped)."""
    ids = {e for e in entries if e not in NETWORKS}
    if not ids:
        return {}
    rows = await conn.execute(
        sa.select(social_accounts.c.id, social_accounts.c.platform).where(social_accounts.c.id.in_(ids))
    )
    return {r.id: r.platform for r in rows}


async def _drop_stale_entries(conn: AsyncConnection, schedule_id: str) -> None:
    """Forget entries of posts that went back to draft without leaving the queue (unscheduled or
    cancelled elsewhere): they no longer hold their slot occurrence."""
    rows = await conn.execute(
        sa.select(schedule_entries.c.post_id).join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(schedule_entries.c.schedule_id == schedule_id, posts.c.status == "draft")
    )
    stale = [r.post_id for r in rows]
    if stale:
        await conn.execute(schedule_entries.delete().where(schedule_entries.c.post_id.in_(stale)))


async def _taken(conn: AsyncConnection, schedule_id: str, now: datetime, *, besides: str | None = None
                 ) -> set[tuple[str, datetime]]:
    """The future slot occurrences of this schedule that a post (not a stale draft) occupies."""
    query = (
        sa.select(schedule_entries.c.slot_id, schedule_entries.c.slot_time)
        .join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(
            schedule_entries.c.schedule_id == schedule_id, schedule_entries.c.slot_id.is_not(None),
            schedule_entries.c.slot_time > now, posts.c.status != "draft",
        )
    )
    if besides is not None:
        query = query.where(schedule_entries.c.post_id != besides)
    return {(r.slot_id, r.slot_time) for r in await conn.execute(query)}


def _why_nothing_fits(
    slots: Sequence[Slot], needed: Sequence[str], account_networks: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    missing = slot_rules.not_covered_by_any(slots, needed, account_networks)
    if missing:
        return (
            f"No slot of this schedule publishes to {', '.join(missing)}; add it to a slot's platforms",
            {"platforms": list(needed), "not_covered": missing},
        )
    if not any(slot_rules.covers(s.platforms, needed, account_networks) for s in slots):
        return (
            f"No single slot of this schedule publishes to all of {', '.join(needed)}; "
            "a post takes one slot, which must list every one of its platforms",
            {"platforms": list(needed), "not_covered": []},
        )
    days = HORIZON.days
    return (
        f"Every slot of this schedule that fits this post is taken for the next {days} days",
        {"platforms": list(needed), "horizon_days": days},
    )


async def queue_post(
    conn: AsyncConnection,
    schedule: ScheduleRow,
    post: PostRow,
    networks: Sequence[str] | None,
    now: datetime,
) -> EntryRow:
    """Give `post` the earliest free future slot occurrence of `schedule` whose platforms cover all of
    `networks` (the post's `platforms` entries: network names and/or account ids; None means
    `post["platforms"]`), one post per occurrence, within 56 days of `now`.

    The post becomes `scheduled` with scheduled_at = the slot time (UTC) and scheduled_timezone = the
    schedule's zone; a post already queued (in this or another schedule) leaves its old slot first.
    In a paused schedule the entry is planned but held. Answers the entry row.

    Errors: NOT_FOUND when the schedule is not of the post's workspace; CONFLICT when the post is not
    a draft or scheduled, or when no slot fits (the message says whether the platforms are not
    covered by any slot, not by any single slot, or every fitting slot is taken). Nothing is written
    before these checks pass. The caller validates the post's targets and enqueues the publish job.
    """
    if schedule["workspace_id"] != post["workspace_id"]:
        raise errors.NotFound("Schedule not found")
    if post["status"] not in statuses.SCHEDULABLE:
        raise errors.Conflict(
            f"A {post['status']} post cannot be queued; only draft and scheduled posts can",
            details={"status": post["status"]},
        )
    current = await _lock_schedule(conn, schedule["id"])
    if current is None:
        raise errors.NotFound("Schedule not found")
    await _drop_stale_entries(conn, current["id"])
    needed = list(dict.fromkeys(networks if networks is not None else post["platforms"]))
    slots = (await slots_of(conn, [current["id"]]))[current["id"]]
    account_networks = await _account_networks(conn, needed)
    taken = await _taken(conn, current["id"], now, besides=post["id"])
    found = slot_rules.next_free_slot(
        slots, current["timezone"], now, taken, needed, account_networks=account_networks
    )
    if found is None:
        message, details = _why_nothing_fits(slots, needed, account_networks)
        raise errors.Conflict(message, details={"schedule_id": current["id"], **details})

    await unqueue_post(conn, post["id"])
    position = int(
        await conn.scalar(
            sa.select(sa.func.coalesce(sa.func.max(schedule_entries.c.position), 0))
            .where(schedule_entries.c.schedule_id == current["id"])
        ) or 0
    ) + 1
    entry: EntryRow = {
        "post_id": post["id"], "schedule_id": current["id"], "slot_id": found.slot_id, "slot_time": found.utc,
        "position": position, "held": not current["is_active"], "created_at": now, "updated_at": now,
    }
    await conn.execute(schedule_entries.insert().values(**entry))
    await conn.execute(
        posts.update().where(posts.c.id == post["id"])
        .values(status="scheduled", scheduled_at=found.utc, scheduled_timezone=current["timezone"], updated_at=now)
    )
    return entry


async def unqueue_post(conn: AsyncConnection, post_id: str) -> str | None:
    """Take the post out of its schedule's queue (its slot becomes free; the others keep theirs).
    Answers the schedule id it was in, or None. The post's own status is the caller's to change."""
    schedule_id = await conn.scalar(
        sa.select(schedule_entries.c.schedule_id).where(schedule_entries.c.post_id == post_id)
    )
    if schedule_id is not None:
        await conn.execute(schedule_entries.delete().where(schedule_entries.c.post_id == post_id))
    return schedule_id


async def is_held(conn: AsyncConnection, post_id: str) -> bool:
    """True when the post is queued in a paused schedule: it must not be published now."""
    return post_id in await held_posts(conn, [post_id])


_HELD = (
    sa.select(schedule_entries.c.post_id)
    .join(schedules, schedule_entries.c.schedule_id == schedules.c.id)
    .where(schedule_entries.c.post_id.in_(expanding()), schedules.c.is_active.is_(False))
)


async def held_posts(conn: AsyncConnection, post_ids: Sequence[str]) -> set[str]:
    """The posts among `post_ids` queued in a paused schedule (one query for any number)."""
    if not post_ids:
        return set()
    return set((await conn.execute(_HELD, {"ids": list(post_ids)})).scalars())


async def replan(conn: AsyncConnection, schedule_id: str, now: datetime, *, keep_fitting: bool = False) -> list[Move]:
    """Give the schedule's queued posts, in queue order (current slot time, then arrival), the next
    free future slot occurrences that cover their platforms, and move their scheduled_at.

    With `keep_fitting`, a post whose slot still exists, still covers it and is still ahead keeps it,
    and only the others move. A post for which nothing fits within 56 days goes back to draft.
    Entries of posts that went back to draft by other means are dropped; published or publishing
    posts are left alone. Answers the moves (post_id, new slot_time UTC or None), in queue order.
    """
    schedule = await _lock_schedule(conn, schedule_id)
    if schedule is None:
        return []
    slots = (await slots_of(conn, [schedule_id]))[schedule_id]
    by_id = {s.id: s for s in slots}
    rows = (await conn.execute(
        sa.select(
            schedule_entries.c.post_id, schedule_entries.c.slot_id, schedule_entries.c.slot_time,
            posts.c.status, posts.c.platforms,
        )
        .join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(schedule_entries.c.schedule_id == schedule_id)
        .order_by(schedule_entries.c.slot_time.is_(None), schedule_entries.c.slot_time, schedule_entries.c.position)
    )).all()
    stale = [r.post_id for r in rows if r.status == "draft"]
    if stale:
        await conn.execute(schedule_entries.delete().where(schedule_entries.c.post_id.in_(stale)))
    queued = [r for r in rows if r.status == "scheduled"]
    account_networks = await _account_networks(conn, {p for r in queued for p in r.platforms})

    taken = {
        (r.slot_id, r.slot_time) for r in rows
        if r.status not in ("draft", "scheduled") and r.slot_id is not None and r.slot_time is not None
        and r.slot_time > now
    }
    to_plan = []
    for r in queued:
        slot = by_id.get(r.slot_id) if r.slot_id else None
        if (
            keep_fitting and slot is not None and r.slot_time is not None and r.slot_time > now
            and slot_rules.covers(slot.platforms, r.platforms, account_networks)
            and (r.slot_id, r.slot_time) not in taken
        ):
            taken.add((r.slot_id, r.slot_time))
        else:
            to_plan.append(r)
    if not to_plan:
        return []
    # Free the old occurrences first, so that moving posts past each other never trips the
    # one-post-per-occurrence index.
    await conn.execute(
        schedule_entries.update().where(schedule_entries.c.post_id.in_([r.post_id for r in to_plan]))
        .values(slot_id=None, slot_time=None)
    )
    moves: list[Move] = []
    unfit: list[str] = []
    for r in to_plan:
        found = slot_rules.next_free_slot(
            slots, schedule["timezone"], now, taken, r.platforms, account_networks=account_networks
        )
        if found is None:
            unfit.append(r.post_id)
            moves.append(Move(r.post_id, None))
            continue
        taken.add((found.slot_id, found.utc))
        await conn.execute(
            schedule_entries.update().where(schedule_entries.c.post_id == r.post_id)
            .values(slot_id=found.slot_id, slot_time=found.utc, held=not schedule["is_active"], updated_at=now)
        )
        await conn.execute(
            posts.update().where(posts.c.id == r.post_id)
            .values(scheduled_at=found.utc, scheduled_timezone=schedule["timezone"], updated_at=now)
        )
        if found.utc != r.slot_time:
            moves.append(Move(r.post_id, found.utc))
    if unfit:
        await conn.execute(schedule_entries.delete().where(schedule_entries.c.post_id.in_(unfit)))
        await _back_to_draft(conn, unfit, now)
    return moves


async def remove_account_from_slots(conn: AsyncConnection, account_id: str, now: datetime) -> list[Move]:
    """Account disconnection: drop `account_id` from every slot that lists it; a slot left with no
    platform is deleted. The posts queued in the touched schedules that no longer fit their slot
    move to the next free fitting one (the others keep theirs). Answers the moves, as `replan`."""
    text = sa.cast(schedule_slots.c.platforms, sa.Text)
    rows = (await conn.execute(
        sa.select(schedule_slots.c.id, schedule_slots.c.schedule_id, schedule_slots.c.platforms)
        .where(text.contains(account_id, autoescape=True))
    )).all()
    touched: list[str] = []
    for r in rows:
        if account_id not in r.platforms:
            continue
        remaining = [p for p in r.platforms if p != account_id]
        if remaining:
            await conn.execute(schedule_slots.update().where(schedule_slots.c.id == r.id).values(platforms=remaining))
        else:
            await conn.execute(schedule_slots.delete().where(schedule_slots.c.id == r.id))
        if r.schedule_id not in touched:
            touched.append(r.schedule_id)
    moves: list[Move] = []
    for schedule_id in touched:
        moves.extend(await replan(conn, schedule_id, now, keep_fitting=True))
    return moves


# ------------------------------------------------------------------------------------------------
# What GET /api/schedules/{id} shows


async def upcoming_posts(conn: AsyncConnection, schedule: ScheduleRow) -> list[dict[str, Any]]:
    """The queue in order: slot_time with the schedule's offset, post_id, the post's platforms."""
    rows = await conn.execute(
        sa.select(schedule_entries.c.post_id, schedule_entries.c.slot_time, posts.c.platforms)
        .join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(
            schedule_entries.c.schedule_id == schedule["id"], posts.c.status == "scheduled",
            schedule_entries.c.slot_time.is_not(None),
        )
        .order_by(schedule_entries.c.slot_time, schedule_entries.c.position)
    )
    zone = ZoneInfo(schedule["timezone"])
    return [
        {"slot_time": slot_rules.format_local(r.slot_time, zone), "post_id": r.post_id, "platforms": r.platforms}
        for r in rows
    ]


async def queued_counts(conn: AsyncConnection, schedule_ids: Sequence[str]) -> dict[str, int]:
    """How many posts wait in each schedule's queue (one grouped query, for list pages)."""
    if not schedule_ids:
        return {}
    rows = await conn.execute(
        sa.select(schedule_entries.c.schedule_id, sa.func.count())
        .join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(schedule_entries.c.schedule_id.in_(list(schedule_ids)), posts.c.status == "scheduled")
        .group_by(schedule_entries.c.schedule_id)
    )
    return {schedule_id: int(count) for schedule_id, count in rows}


async def queue_with_posts(
    conn: AsyncConnection, schedule: ScheduleRow, *, limit: int
) -> list[dict[str, Any]]:
    """The first `limit` posts of the queue in the order of `upcoming_posts`, with their text:
    slot_time (UTC), post_id, content, platforms."""
    rows = await conn.execute(
        sa.select(schedule_entries.c.post_id, schedule_entries.c.slot_time, posts.c.content, posts.c.platforms)
        .join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(
            schedule_entries.c.schedule_id == schedule["id"], posts.c.status == "scheduled",
            schedule_entries.c.slot_time.is_not(None),
        )
        .order_by(schedule_entries.c.slot_time, schedule_entries.c.position)
        .limit(limit)
    )
    return [dict(r) for r in rows.mappings()]


async def schedule_stats(
    conn: AsyncConnection, schedule: ScheduleRow, slots: Sequence[Slot], now: datetime
) -> dict[str, Any]:
    """total_published (posts of this schedule published or partially published), this_week (of
    those, published in the current ISO week of the schedule's zone), next_slot (with offset)."""
    zone = ZoneInfo(schedule["timezone"])
    published = sa.and_(
        schedule_entries.c.schedule_id == schedule["id"], posts.c.status.in_(statuses.PUBLISHED_SOMEWHERE)
    )
    base = sa.select(sa.func.count()).select_from(
        schedule_entries.join(posts, posts.c.id == schedule_entries.c.post_id)
    )
    total = await conn.scalar(base.where(published))
    start = slot_rules.week_start(now, zone)
    end = slot_rules.week_start(start + timedelta(days=7, hours=12), zone)
    this_week = await conn.scalar(
        base.where(published, posts.c.published_at >= start, posts.c.published_at < end)
    )
    following = slot_rules.next_occurrence(slots, zone, now)
    return {
        "total_published": int(total or 0),
        "this_week": int(this_week or 0),
        "next_slot": following.local.isoformat(timespec="seconds") if following else None,
    }


def slot_view(slot: Slot) -> dict[str, Any]:
    return {"id": slot.id, "day": slot.day, "time": slot.time, "platforms": list(slot.platforms)}


def schedule_view(
    row: ScheduleRow, slots: Sequence[Slot], *, upcoming: list[dict[str, Any]] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The schedule as the API shows it; the detail view adds upcoming_posts and stats."""
    view: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "timezone": row["timezone"],
        "is_active": bool(row["is_active"]),
        "slots": [slot_view(s) for s in slots],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }
    if upcoming is not None:
        view["upcoming_posts"] = upcoming
    if stats is not None:
        view["stats"] = stats
    return view
