"""Pacing: the per-account GCRA and the per-network in-flight slots in the database, and a burst
of posts due at once to one account spread by the pacing interval, late but never failed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.core.clock import Clock
from ouipost.db.admin_tables import platform_calls
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import post_targets, posts
from ouipost.publishing import pacing
from ouipost.publishing.platform_calls import call_ok
from tests.test_accounts import connect
from tests.test_publishing import create_post, publications, publish

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def config(**account: pacing.AccountPace | None) -> pacing.PacingConfig:
    return pacing.PacingConfig(account=account, concurrency={"twitter": 2}, default_concurrency=None)


async def _admit(engine: Any, cfg: pacing.PacingConfig, at: datetime, *, network: str = "bluesky",
                 account: str = "acc_1", holder: str = "h") -> pacing.Admission | pacing.Hold:
    async with engine.begin() as conn:
        return await pacing.admit(conn, network=network, account_id=account, holder=holder, now=at, config=cfg)


async def test_an_account_sends_its_burst_then_one_per_interval(engine: Any) -> None:
    cfg = config(bluesky=pacing.AccountPace(interval=10.0, burst=2))
    assert isinstance(await _admit(engine, cfg, T0), pacing.Admission)
    assert isinstance(await _admit(engine, cfg, T0), pacing.Admission)
    held = await _admit(engine, cfg, T0)
    assert isinstance(held, pacing.Hold) and held.seconds == pytest.approx(10.0)
    assert isinstance(await _admit(engine, cfg, T0, account="acc_2"), pacing.Admission)  # accounts are apart
    assert isinstance(await _admit(engine, cfg, T0 + timedelta(seconds=5)), pacing.Hold)
    assert isinstance(await _admit(engine, cfg, T0 + timedelta(seconds=10)), pacing.Admission)
    again = await _admit(engine, cfg, T0 + timedelta(seconds=10))
    assert isinstance(again, pacing.Hold) and again.seconds == pytest.approx(10.0)


async def test_a_network_has_at_most_its_cap_in_flight_and_slots_come_back(engine: Any) -> None:
    cfg = config()  # twitter: 2 in flight, no account pacing
    first = await _admit(engine, cfg, T0, network="twitter", holder="a")
    second = await _admit(engine, cfg, T0, network="twitter", account="acc_2", holder="b")
    assert isinstance(first, pacing.Admission) and isinstance(second, pacing.Admission)
    assert {first.slot, second.slot} == {0, 1}
    assert isinstance(await _admit(engine, cfg, T0, network="twitter", account="acc_3", holder="c"), pacing.Hold)
    async with engine.begin() as conn:
        await pacing.release(conn, first)
    third = await _admit(engine, cfg, T0, network="twitter", account="acc_3", holder="c")
    assert isinstance(third, pacing.Admission) and third.slot == first.slot
    # A holder that died keeps its slot only until the lease passes.
    later = T0 + timedelta(seconds=pacing.SLOT_LEASE_SECONDS + 1)
    assert isinstance(await _admit(engine, cfg, later, network="twitter", account="acc_4", holder="d"),
                      pacing.Admission)


async def test_a_held_account_gives_its_network_slot_back(engine: Any) -> None:
    cfg = pacing.PacingConfig(account={"twitter": pacing.AccountPace(60.0, 1)}, concurrency={"twitter": 1})
    assert isinstance(await _admit(engine, cfg, T0, network="twitter", holder="a"), pacing.Admission)
    async with engine.connect() as conn:
        busy = await conn.scalar(sa.select(sa.func.count()).select_from(pacing.pacing_slots)
                                 .where(pacing.pacing_slots.c.holder.is_not(None)))
    assert busy == 1
    held = await _admit(engine, cfg, T0, network="twitter", account="acc_1", holder="b")
    assert isinstance(held, pacing.Hold)  # the slot is taken, so the network says wait
    async with engine.begin() as conn:
        await conn.execute(pacing.pacing_slots.update().values(holder=None, until=None))
    held = await _admit(engine, cfg, T0, network="twitter", account="acc_1", holder="c")
    assert isinstance(held, pacing.Hold) and held.seconds == pytest.approx(60.0)  # its account must wait
    async with engine.connect() as conn:
        busy = await conn.scalar(sa.select(sa.func.count()).select_from(pacing.pacing_slots)
                                 .where(pacing.pacing_slots.c.holder.is_not(None)))
    assert busy == 0  # the slot taken for it was given back in the same transaction


def test_defaults_keep_each_networks_published_limit() -> None:
    x = pacing.DEFAULT_ACCOUNT_PACE["twitter"]
    assert x.burst + 900 / x.interval <= 100  # 100 tweets per 15 minutes per user
    threads = pacing.DEFAULT_ACCOUNT_PACE["threads"]
    assert threads.burst + 86400 / threads.interval <= 250
    bluesky = pacing.DEFAULT_ACCOUNT_PACE["bluesky"]
    assert 3 * (bluesky.burst + 3600 / bluesky.interval) <= 5000 and 3 * (bluesky.burst + 86400 / bluesky.interval) \
        <= 35000
    cfg = pacing.load_pacing({"OUIPOST_PACING_ACCOUNT": "twitter=2.5/3,bluesky=off",
                              "OUIPOST_PACING_CONCURRENCY": "*=5,youtube=off", "OUIPOST_REFRESH_WINDOWS": "tiktok=60"})
    assert cfg.account_pace("twitter") == pacing.AccountPace(2.5, 3) and cfg.account_pace("bluesky") is None
    assert (cfg.network_concurrency("linkedin"), cfg.network_concurrency("youtube")) == (5, None)
    assert cfg.refresh_window("tiktok") == 60
    assert pacing.load_pacing({"OUIPOST_PACING": "off"}).account_pace("twitter") is None
    for bad in ({"OUIPOST_PACING_ACCOUNT": "myspace=1/1"}, {"OUIPOST_PACING_ACCOUNT": "twitter=fast"},
                {"OUIPOST_PACING_CONCURRENCY": "twitter=0"}, {"OUIPOST_PACING_ACCOUNT": "twitter=1/0"}):
        with pytest.raises(ValueError, match="OUIPOST_PACING"):
            pacing.load_pacing(bad)
    assert call_ok(201) and call_ok(400) and not call_ok(429) and not call_ok(503) and not call_ok(None)


@pytest.mark.slow  # waits for the account's pace (one post a second) in wall time
async def test_posts_due_at_once_to_one_account_are_spread_not_failed(
    aiohttp_client: Any, settings: Any, key: Any, engine: Any, sandbox: Any
) -> None:
    from ouipost.app import create_app

    interval = 1.0
    paced = settings.with_overrides(pacing=pacing.PacingConfig(
        account={"bluesky": pacing.AccountPace(interval=interval, burst=1)}))
    client = await aiohttp_client(create_app(paced, engine=engine))
    await connect(client, key, "bluesky")
    due = Clock().now() + timedelta(seconds=2)
    ids = []
    for n in range(4):
        post = await create_post(client, key, ["bluesky"], content=f"Burst post {n}")
        resp = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                                 json={"scheduled_at": due.isoformat().replace("+00:00", "Z")})
        assert resp.status == 200, await resp.text()
        ids.append(post["id"])

    async def all_final() -> bool:
        async with engine.connect() as conn:
            statuses = (await conn.execute(sa.select(posts.c.status).where(posts.c.id.in_(ids)))).scalars().all()
        return all(s in ("published", "failed", "partially_published") for s in statuses)

    from tests.queue.test_worker import wait_until

    await wait_until(all_final, timeout=30)
    async with engine.connect() as conn:
        statuses = (await conn.execute(sa.select(posts.c.status).where(posts.c.id.in_(ids)))).scalars().all()
        published = sorted((await conn.execute(sa.select(post_targets.c.published_at)
                                               .where(post_targets.c.post_id.in_(ids)))).scalars())
        attempts = (await conn.execute(sa.select(jobs.c.attempts).where(jobs.c.kind == "publish_post"))).scalars()
        attempts = list(attempts)
    assert statuses == ["published"] * 4
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(published)]
    assert all(gap >= interval * 0.9 for gap in gaps), gaps
    assert published[0] >= due - timedelta(seconds=1)
    assert max(attempts) == 1  # held runs ended and handed over to fresh jobs: no attempt was spent waiting
    assert len(publications(sandbox, "bluesky")) == 4


async def test_every_adapter_call_is_recorded_for_platform_health(client: Any, key: Any, engine: Any) -> None:
    await connect(client, key, "twitter")
    await connect(client, key, "bluesky")
    post = await create_post(client, key, ["twitter", "bluesky"])
    status, body = await publish(client, key, post["id"])
    assert status == 200 and body["data"]["post"]["status"] == "published"
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(platform_calls))).mappings().all()
    by_network = {r["network"] for r in rows}
    assert by_network == {"twitter", "bluesky"}
    assert all(r["ok"] and r["status"] in (200, 201) and r["latency_ms"] >= 0 for r in rows)


async def test_many_asks_at_once_take_slots_up_to_the_cap_and_an_accounts_turns_in_order(engine: Any) -> None:
    cfg = pacing.PacingConfig(account={"twitter": pacing.AccountPace(interval=10.0, burst=2)},
                              concurrency={"twitter": 3}, default_concurrency=None)
    asks = [pacing.Ask("twitter", "acc_1", "a1"), pacing.Ask("twitter", "acc_1", "a2"),
            pacing.Ask("twitter", "acc_1", "a3"), pacing.Ask("twitter", "acc_2", "b1")]
    async with engine.begin() as conn:
        first, second, third, fourth = await pacing.admit_many(conn, asks, now=T0, config=cfg)
    assert isinstance(first, pacing.Admission) and isinstance(second, pacing.Admission)
    assert {first.slot, second.slot} <= {0, 1, 2} and first.slot != second.slot
    # acc_1's burst of 2 is spent: its third post waits one interval, and gives its slot back.
    assert isinstance(third, pacing.Hold) and not third.busy and third.seconds == pytest.approx(10.0)
    # Three slots went to the first three asks: the fourth found the network full (a moment's wait).
    assert isinstance(fourth, pacing.Hold) and fourth.busy and fourth.seconds < 1
    async with engine.connect() as conn:
        holders = set((await conn.execute(sa.select(pacing.pacing_slots.c.holder)
                                          .where(pacing.pacing_slots.c.holder.is_not(None)))).scalars())
    assert holders == {"a1", "a2"}
    async with engine.begin() as conn:
        await pacing.release_many(conn, [first, second])
        again = await pacing.admit_many(conn, [pacing.Ask("twitter", "acc_2", "b2")], now=T0, config=cfg)
    assert isinstance(again[0], pacing.Admission)  # acc_2 was never counted while it was held


async def test_posts_beyond_a_networks_cap_wait_for_a_slot_and_all_publish_once(
    aiohttp_client: Any, settings: Any, key: Any, engine: Any, sandbox: Any
) -> None:
    import asyncio

    from ouipost.app import create_app

    capped = settings.with_overrides(pacing=pacing.PacingConfig(account={}, concurrency={"bluesky": 1}))
    client = await aiohttp_client(create_app(capped, engine=engine))
    await connect(client, key, "bluesky")
    sandbox.add_fault("bluesky", "slow", delay=0.2, count=None)  # each call holds the only slot a while
    ids = [(await create_post(client, key, ["bluesky"], content=f"Capped post {n}"))["id"] for n in range(5)]
    answers = await asyncio.gather(*(publish(client, key, post_id) for post_id in ids))
    assert all(status in (200, 202) for status, _ in answers)
    from tests.test_publishing import wait_for_status

    final = [await wait_for_status(client, key, post_id, {"published", "failed"}) for post_id in ids]
    assert [p["status"] for p in final] == ["published"] * 5
    assert len(publications(sandbox, "bluesky")) == 5  # each exactly once
    async with engine.connect() as conn:
        attempts = (await conn.execute(sa.select(jobs.c.attempts).where(jobs.c.kind == "publish_post"))).scalars()
        busy = await conn.scalar(sa.select(sa.func.count()).select_from(pacing.pacing_slots)
                                 .where(pacing.pacing_slots.c.holder.is_not(None)))
    assert set(attempts) == {1}  # waiting for the slot spent no attempt
    assert busy == 0  # every slot was given back
