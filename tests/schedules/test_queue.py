"""The queue: posts filling slots in order, refusals that say why, re-planning, pause and resume,
deletion returning posts to draft, account disconnection, upcoming_posts and stats.

Posts are made through POST /api/posts; they are queued with `service.queue_post`, which
POST /api/posts/{id}/schedule calls with a schedule_id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.core import errors
from ouipost.db.schedule_tables import schedule_entries, schedule_slots
from ouipost.db.tables import posts
from ouipost.posts import service as posts_service
from ouipost.schedules import service
from tests.schedules.helpers import add_account, create_post, create_schedule, get_schedule

PARIS_SLOTS = [
    {"day": "monday", "time": "09:00", "platforms": ["facebook", "twitter"]},
    {"day": "wednesday", "time": "09:00", "platforms": ["facebook", "linkedin"]},
]


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def queue(engine: Any, clock: Any, key: Any, schedule_id: str, post_id: str) -> dict[str, Any]:
    async with engine.begin() as conn:
        schedule = await service.get_schedule(conn, key.workspace_id, schedule_id, for_update=True)
        post = await posts_service.get_post(conn, key.workspace_id, post_id, for_update=True)
        return await service.queue_post(conn, schedule, post, None, clock.now())


async def post_row(engine: Any, post_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return dict((await conn.execute(sa.select(posts).where(posts.c.id == post_id))).mappings().one())


async def entries(engine: Any) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        return {r["post_id"]: dict(r) for r in (await conn.execute(sa.select(schedule_entries))).mappings()}


@pytest.fixture
async def paris(client: Any, key: Any) -> dict[str, Any]:
    return await create_schedule(client, key, timezone="Europe/Paris", slots=PARIS_SLOTS)


async def test_posts_fill_consecutive_fitting_slots_in_order(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(3)]
    twitter = await create_post(client, key, ["twitter"], "tweet")
    for post in [*made, twitter]:
        await queue(engine, clock, key, paris["id"], post["id"])

    sched = await get_schedule(client, key, paris["id"])
    assert sched["upcoming_posts"] == [
        {"slot_time": "2024-01-29T09:00:00+01:00", "post_id": made[0]["id"], "platforms": ["facebook"]},
        {"slot_time": "2024-01-31T09:00:00+01:00", "post_id": made[1]["id"], "platforms": ["facebook"]},
        {"slot_time": "2024-02-05T09:00:00+01:00", "post_id": made[2]["id"], "platforms": ["facebook"]},
        # Only the Monday slot publishes to twitter, and the next two Mondays are taken.
        {"slot_time": "2024-02-12T09:00:00+01:00", "post_id": twitter["id"], "platforms": ["twitter"]},
    ]
    shown = await post_row(engine, made[0]["id"])
    assert shown["status"] == "scheduled"
    assert shown["scheduled_at"] == z("2024-01-29T08:00:00Z")
    assert shown["scheduled_timezone"] == "Europe/Paris"
    monday = next(s["id"] for s in sched["slots"] if s["day"] == "monday")
    assert (await entries(engine))[made[0]["id"]]["slot_id"] == monday


async def test_a_post_no_slot_covers_is_refused_with_409_saying_why(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    pinterest = await create_post(client, key, ["facebook", "pinterest"])
    with pytest.raises(errors.Conflict) as refused:
        await queue(engine, clock, key, paris["id"], pinterest["id"])
    assert refused.value.status == 409 and refused.value.code == "CONFLICT"
    assert "pinterest" in refused.value.message and "facebook" not in refused.value.message
    assert refused.value.details["not_covered"] == ["pinterest"]

    both = await create_post(client, key, ["twitter", "linkedin"])
    with pytest.raises(errors.Conflict, match="No single slot"):
        await queue(engine, clock, key, paris["id"], both["id"])

    for post in (pinterest, both):
        row = await post_row(engine, post["id"])
        assert row["status"] == "draft" and row["scheduled_at"] is None
    assert await entries(engine) == {}


async def test_when_every_fitting_slot_of_the_next_56_days_is_taken_the_post_is_refused(
    client: Any, key: Any, engine: Any, clock: Any
) -> None:
    weekly = await create_schedule(
        client, key, timezone="Europe/Paris", slots=[{"day": "friday", "time": "18:00", "platforms": ["facebook"]}]
    )
    for i in range(8):  # eight Fridays in the next 56 days
        post = await create_post(client, key, ["facebook"], f"post {i}")
        await queue(engine, clock, key, weekly["id"], post["id"])
    extra = await create_post(client, key, ["facebook"], "one too many")
    with pytest.raises(errors.Conflict, match="taken for the next 56 days"):
        await queue(engine, clock, key, weekly["id"], extra["id"])
    sched = await get_schedule(client, key, weekly["id"])
    assert len(sched["upcoming_posts"]) == 8
    assert sched["upcoming_posts"][-1]["slot_time"] == "2024-03-15T18:00:00+01:00"


async def test_unqueueing_frees_a_slot_and_the_others_keep_theirs(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(3)]
    for post in made:
        await queue(engine, clock, key, paris["id"], post["id"])
    before = (await get_schedule(client, key, paris["id"]))["upcoming_posts"]
    async with engine.begin() as conn:
        assert await service.unqueue_post(conn, made[1]["id"]) == paris["id"]
        assert await service.unqueue_post(conn, made[1]["id"]) is None
        await conn.execute(posts.update().where(posts.c.id == made[1]["id"]).values(status="draft", scheduled_at=None))
    after = (await get_schedule(client, key, paris["id"]))["upcoming_posts"]
    assert after == [before[0], before[2]]
    late = await create_post(client, key, ["facebook"], "late")
    entry = await queue(engine, clock, key, paris["id"], late["id"])
    assert entry["slot_time"] == z("2024-01-31T08:00:00Z")  # the freed Wednesday


async def test_a_post_sent_back_to_draft_elsewhere_no_longer_holds_its_slot(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    first = await create_post(client, key, ["facebook"], "first")
    entry = await queue(engine, clock, key, paris["id"], first["id"])
    async with engine.begin() as conn:  # unscheduled without leaving the queue
        await conn.execute(posts.update().where(posts.c.id == first["id"]).values(status="draft", scheduled_at=None))
    second = await create_post(client, key, ["facebook"], "second")
    assert (await queue(engine, clock, key, paris["id"], second["id"]))["slot_time"] == entry["slot_time"]
    assert set(await entries(engine)) == {second["id"]}


async def test_queueing_again_moves_the_post_out_of_its_old_slot(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    post = await create_post(client, key, ["facebook"])
    first = await queue(engine, clock, key, paris["id"], post["id"])
    other = await create_schedule(
        client, key, timezone="UTC", slots=[{"day": "thursday", "time": "07:15", "platforms": ["facebook"]}]
    )
    second = await queue(engine, clock, key, other["id"], post["id"])
    assert first["schedule_id"] == paris["id"] and second["schedule_id"] == other["id"]
    assert (await get_schedule(client, key, paris["id"]))["upcoming_posts"] == []
    assert (await post_row(engine, post["id"]))["scheduled_at"] == z("2024-01-25T07:15:00Z")


async def test_queueing_refuses_other_workspaces_and_published_posts(
    client: Any, key: Any, make_key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    other = await make_key(tier="enterprise")
    foreign = await create_schedule(client, other)
    post = await create_post(client, key, ["facebook"])
    async with engine.begin() as conn:
        with pytest.raises(errors.NotFound):
            await service.get_schedule(conn, key.workspace_id, foreign["id"])
        schedule = await service.get_schedule(conn, other.workspace_id, foreign["id"])
        row = await posts_service.get_post(conn, key.workspace_id, post["id"])
        with pytest.raises(errors.NotFound):
            await service.queue_post(conn, schedule, row, None, clock.now())
    async with engine.begin() as conn:
        await conn.execute(posts.update().where(posts.c.id == post["id"]).values(status="published"))
    with pytest.raises(errors.Conflict, match="published"):
        await queue(engine, clock, key, paris["id"], post["id"])


async def test_new_slots_replan_the_queue_in_order(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(3)]
    linkedin = await create_post(client, key, ["linkedin"], "linkedin only")
    for post in [*made, linkedin]:
        await queue(engine, clock, key, paris["id"], post["id"])
    resp = await client.put(
        f"/api/schedules/{paris['id']}",
        json={"slots": [{"day": "thursday", "time": "10:00", "platforms": ["facebook"]},
                        {"day": "tuesday", "time": "10:00", "platforms": ["facebook"]}]},
        headers=key.headers(),
    )
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]
    assert data["unscheduled_posts"] == [linkedin["id"]]  # no new slot publishes to linkedin
    assert [(u["post_id"], u["slot_time"]) for u in data["schedule"]["upcoming_posts"]] == [
        (made[0]["id"], "2024-01-25T10:00:00+01:00"),
        (made[1]["id"], "2024-01-30T10:00:00+01:00"),
        (made[2]["id"], "2024-02-01T10:00:00+01:00"),
    ]
    new_ids = {s["id"] for s in data["schedule"]["slots"]}
    stored = await entries(engine)
    assert {stored[p["id"]]["slot_id"] for p in made} <= new_ids
    assert (await post_row(engine, made[2]["id"]))["scheduled_at"] == z("2024-02-01T09:00:00Z")
    dropped = await post_row(engine, linkedin["id"])
    assert dropped["status"] == "draft" and dropped["scheduled_at"] is None
    assert linkedin["id"] not in stored


async def test_replan_answers_the_moves_for_the_caller_to_move_jobs(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(2)]
    for post in made:
        await queue(engine, clock, key, paris["id"], post["id"])
    async with engine.begin() as conn:
        assert await service.replan(conn, paris["id"], clock.now()) == []  # nothing to move
        await conn.execute(
            schedule_slots.update().where(schedule_slots.c.schedule_id == paris["id"], schedule_slots.c.day == "monday")
            .values(time="08:00")
        )
        moves = await service.replan(conn, paris["id"], clock.now())
    assert moves == [service.Move(made[0]["id"], z("2024-01-29T07:00:00Z"))]


async def test_a_new_timezone_replans_the_same_wall_clock_slots(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    post = await create_post(client, key, ["facebook"])
    await queue(engine, clock, key, paris["id"], post["id"])
    resp = await client.put(f"/api/schedules/{paris['id']}", json={"timezone": "Asia/Tokyo"}, headers=key.headers())
    upcoming = (await resp.json())["data"]["schedule"]["upcoming_posts"]
    assert upcoming[0]["slot_time"] == "2024-01-29T09:00:00+09:00"
    assert (await post_row(engine, post["id"]))["scheduled_at"] == z("2024-01-29T00:00:00Z")


async def test_pause_holds_the_queue_and_resume_replans_it_from_now(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(3)]
    for post in made:
        await queue(engine, clock, key, paris["id"], post["id"])
    resp = await client.put(f"/api/schedules/{paris['id']}", json={"is_active": False}, headers=key.headers())
    paused = (await resp.json())["data"]["schedule"]
    assert paused["is_active"] is False
    assert [u["slot_time"] for u in paused["upcoming_posts"]] == [
        "2024-01-29T09:00:00+01:00", "2024-01-31T09:00:00+01:00", "2024-02-05T09:00:00+01:00",
    ]
    async with engine.connect() as conn:
        assert all([await service.is_held(conn, p["id"]) for p in made])
    assert all(e["held"] for e in (await entries(engine)).values())
    assert (await post_row(engine, made[0]["id"]))["status"] == "scheduled"

    # A post queued while paused is planned but held too.
    late = await create_post(client, key, ["facebook"], "late")
    assert (await queue(engine, clock, key, paris["id"], late["id"]))["held"] is True

    clock.advance(days=6)  # Tuesday 2024-01-30 12:00 UTC: the Monday slot went by while paused
    resp = await client.put(f"/api/schedules/{paris['id']}", json={"is_active": True}, headers=key.headers())
    resumed = (await resp.json())["data"]["schedule"]
    assert resumed["is_active"] is True
    assert [(u["post_id"], u["slot_time"]) for u in resumed["upcoming_posts"]] == [
        (made[0]["id"], "2024-01-31T09:00:00+01:00"),
        (made[1]["id"], "2024-02-05T09:00:00+01:00"),
        (made[2]["id"], "2024-02-07T09:00:00+01:00"),
        (late["id"], "2024-02-12T09:00:00+01:00"),
    ]
    async with engine.connect() as conn:
        assert not any([await service.is_held(conn, p["id"]) for p in made])
    assert (await post_row(engine, made[0]["id"]))["scheduled_at"] == z("2024-01-31T08:00:00Z")


async def test_delete_returns_queued_posts_to_draft(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(2)]
    for post in made:
        await queue(engine, clock, key, paris["id"], post["id"])
    published = await create_post(client, key, ["facebook"], "already out")
    await queue(engine, clock, key, paris["id"], published["id"])
    async with engine.begin() as conn:
        await conn.execute(posts.update().where(posts.c.id == published["id"]).values(
            status="published", published_at=clock.now()))
    resp = await client.delete(f"/api/schedules/{paris['id']}", headers=key.headers())
    assert resp.status == 200
    for post in made:
        shown = await post_row(engine, post["id"])
        assert shown["status"] == "draft" and shown["scheduled_at"] is None and shown["scheduled_timezone"] is None
    assert (await post_row(engine, published["id"]))["status"] == "published"
    assert await entries(engine) == {}


async def test_stats_count_published_posts_and_this_iso_week_in_the_schedules_zone(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    # Now: Wednesday 2024-01-24 12:00 UTC. The week began Monday 00:00 in Paris = 2024-01-21 23:00 UTC.
    outcomes = [
        ("published", "2024-01-21T23:30:00Z"),  # Monday 00:30 in Paris: this week
        ("published", "2024-01-21T22:30:00Z"),  # Sunday 23:30 in Paris: last week
        ("partially_published", "2024-01-24T08:00:00Z"),  # this week
        ("failed", None),
    ]
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(len(outcomes) + 1)]
    for post in made:
        await queue(engine, clock, key, paris["id"], post["id"])
    outside = await create_post(client, key, ["facebook"], "not from the schedule")
    async with engine.begin() as conn:
        for post, (status, at) in zip(made, outcomes, strict=False):
            await conn.execute(posts.update().where(posts.c.id == post["id"]).values(
                status=status, published_at=z(at) if at else None))
        await conn.execute(posts.update().where(posts.c.id == outside["id"]).values(
            status="published", published_at=clock.now()))
    sched = await get_schedule(client, key, paris["id"])
    assert sched["stats"] == {"total_published": 3, "this_week": 2, "next_slot": "2024-01-29T09:00:00+01:00"}
    # Only the post still scheduled is upcoming.
    assert [u["post_id"] for u in sched["upcoming_posts"]] == [made[-1]["id"]]


async def test_queue_across_the_spring_forward_change(client: Any, key: Any, engine: Any, clock: Any) -> None:
    clock.current = z("2024-03-25T12:00:00Z")
    night = await create_schedule(
        client, key, timezone="Europe/Paris",
        slots=[{"day": "sunday", "time": "02:30", "platforms": ["facebook"]},
               {"day": "sunday", "time": "09:00", "platforms": ["facebook"]}],
    )
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(3)]
    for post in made:
        await queue(engine, clock, key, night["id"], post["id"])
    upcoming = (await get_schedule(client, key, night["id"]))["upcoming_posts"]
    assert [u["slot_time"] for u in upcoming] == [
        "2024-03-31T03:00:00+02:00",  # 02:30 does not exist that night
        "2024-03-31T09:00:00+02:00",
        "2024-04-07T02:30:00+02:00",
    ]
    assert (await post_row(engine, made[0]["id"]))["scheduled_at"] == z("2024-03-31T01:00:00Z")


async def test_disconnecting_an_account_removes_it_from_slots_and_moves_its_posts(
    client: Any, key: Any, engine: Any, clock: Any
) -> None:
    account = await add_account(engine, key.workspace_id, "facebook", clock.now())
    sched = await create_schedule(
        client, key, timezone="Europe/Paris",
        slots=[{"day": "monday", "time": "09:00", "platforms": [account]},
               {"day": "wednesday", "time": "09:00", "platforms": ["facebook", "twitter"]},
               {"day": "friday", "time": "09:00", "platforms": [account, "twitter"]}],
    )
    tweet = await create_post(client, key, ["twitter"], "tweet")
    page = await create_post(client, key, [account], "page post")
    await queue(engine, clock, key, sched["id"], tweet["id"])  # Friday 26th
    await queue(engine, clock, key, sched["id"], page["id"])  # Monday 29th (Friday is taken)
    async with engine.begin() as conn:
        moves = await service.remove_account_from_slots(conn, account, clock.now())
    # The page post's Monday slot is gone; the Wednesday slot publishes to facebook, its network.
    assert moves == [service.Move(page["id"], z("2024-01-31T08:00:00Z"))]
    after = await get_schedule(client, key, sched["id"])
    assert [(s["day"], s["platforms"]) for s in after["slots"]] == [
        ("wednesday", ["facebook", "twitter"]), ("friday", ["twitter"]),
    ]
    assert [(u["post_id"], u["slot_time"]) for u in after["upcoming_posts"]] == [
        (tweet["id"], "2024-01-26T09:00:00+01:00"),
        (page["id"], "2024-01-31T09:00:00+01:00"),
    ]


async def test_one_post_per_slot_occurrence_is_a_database_rule(
    client: Any, key: Any, engine: Any, clock: Any, paris: dict[str, Any]
) -> None:
    made = [await create_post(client, key, ["facebook"], f"post {i}") for i in range(2)]
    first = await queue(engine, clock, key, paris["id"], made[0]["id"])
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(schedule_entries.insert().values(
                **{**first, "post_id": made[1]["id"], "position": 99}))
    assert clock.now() + timedelta(days=5) > first["slot_time"]
