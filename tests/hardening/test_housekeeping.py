"""Issue 15 item 8: housekeeping prunes every table past its retention, in bounded batches, and
never a row something live still reads; the periodic job keeps one live run across workers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.accounts import service as accounts
from ouipost.config import SettingsError, load_settings
from ouipost.core.clock import FrozenClock
from ouipost.core.crypto import Cipher
from ouipost.db.admin_tables import (
    admin_sessions,
    login_failures,
    platform_calls,
    rate_limit_counters,
    webhook_deliveries,
)
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import events, idempotency_keys, oauth_states
from ouipost.housekeeping import service as housekeeping
from ouipost.housekeeping.retention import DEFAULT_RETENTION, Retention, load_retention
from ouipost.http import idempotency
from ouipost.identity import admin_auth, users
from ouipost.jobs import queue
from ouipost.publishing.platform_calls import PlatformCallLog
from ouipost.webhooks import service as webhooks
from ouipost.webhooks.events import record_event
from tests.conftest import TEST_SECRET
from workers import housekeeping as housekeeping_job
from workers.periodic import HOUSEKEEPING_KIND, ensure_periodic_jobs, periodic_key
from workers.resources import worker_resources
from workers.worker import JobContext, Worker

DAY = timedelta(days=1)


async def count(engine: AsyncEngine, table: sa.Table, *where: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0)


async def prune_all(engine: AsyncEngine, clock: FrozenClock, retention: Retention | None = None) -> dict[str, int]:
    reports = await housekeeping.run_housekeeping(engine, clock.now(), retention or Retention())
    return {r.rule: r.deleted for r in reports if r.deleted}


async def record_calls(engine: AsyncEngine, clock: FrozenClock, n: int, network: str = "twitter") -> None:
    log = PlatformCallLog(clock.now)
    for _ in range(n):
        log.observe(network, "POST", "https://api.x.com/2/tweets", 201, 0.05)
    async with engine.begin() as conn:
        await log.flush(conn)


# --- one test per table ---------------------------------------------------------------------------


async def test_platform_calls_older_than_30_days_are_pruned(engine: AsyncEngine, frozen_clock: FrozenClock) -> None:
    await record_calls(engine, frozen_clock, 3)
    frozen_clock.advance(days=29)
    await record_calls(engine, frozen_clock, 2)
    frozen_clock.advance(days=2)

    assert await prune_all(engine, frozen_clock) == {"platform_calls": 3}
    assert await count(engine, platform_calls) == 2


async def test_finished_webhook_deliveries_are_pruned_after_30_days_and_pending_ones_never(
    engine: AsyncEngine, frozen_clock: FrozenClock
) -> None:
    async with engine.begin() as conn:
        webhook, _ = await webhooks.create_webhook(
            conn, url="https://example.com/hook", events=["post.published"], secret=None, description=None,
            created_by=None, secret_key=TEST_SECRET, now=frozen_clock.now(),
        )
        made = [await webhooks.create_delivery(conn, webhook["id"], "post.published", {"post": {}},
                                               now=frozen_clock.now()) for _ in range(3)]
        for delivery, status in zip(made, ("succeeded", "failed", "pending"), strict=True):
            await conn.execute(webhook_deliveries.update().where(webhook_deliveries.c.id == delivery["id"])
                               .values(status=status))
    frozen_clock.advance(days=20)
    async with engine.begin() as conn:
        fresh = await webhooks.create_delivery(conn, webhook["id"], "post.published", {"post": {}},
                                               now=frozen_clock.now())
        await conn.execute(webhook_deliveries.update().where(webhook_deliveries.c.id == fresh["id"])
                           .values(status="succeeded"))
    frozen_clock.advance(days=11)

    assert await prune_all(engine, frozen_clock) == {"webhook_deliveries": 2}
    async with engine.connect() as conn:
        left = set((await conn.execute(sa.select(webhook_deliveries.c.id))).scalars())
    assert left == {made[2]["id"], fresh["id"]}  # the pending one (its job reads it) and the fresh one


async def test_dispatched_events_are_pruned_after_7_days_and_undispatched_ones_never(
    engine: AsyncEngine, frozen_clock: FrozenClock
) -> None:
    async with engine.begin() as conn:
        # No webhook subscribes: the event is stored already dispatched.
        dispatched = await record_event(conn, "post.created", {"post": {}}, workspace_id=None, now=frozen_clock.now())
        await conn.execute(events.insert().values(id="evt_waiting", type="post.published", workspace_id=None,
                                                  payload={}, created_at=frozen_clock.now(), dispatched_at=None))
    frozen_clock.advance(days=6)
    async with engine.begin() as conn:
        recent = await record_event(conn, "post.created", {"post": {}}, workspace_id=None, now=frozen_clock.now())
    frozen_clock.advance(days=2)

    assert await prune_all(engine, frozen_clock) == {"events": 1}
    async with engine.connect() as conn:
        left = set((await conn.execute(sa.select(events.c.id))).scalars())
    assert dispatched not in left and left == {"evt_waiting", recent}


async def test_idempotency_records_are_kept_24_hours(
    engine: AsyncEngine, frozen_clock: FrozenClock, make_key: Any
) -> None:
    key = await make_key()
    await idempotency.begin(engine, key.id, "old", "print", frozen_clock.now())
    await idempotency.complete(engine, key.id, "old", idempotency.StoredAnswer(201, {"ok": True}))
    frozen_clock.advance(hours=23)
    await idempotency.begin(engine, key.id, "young", "print", frozen_clock.now())
    frozen_clock.advance(hours=2)

    assert await prune_all(engine, frozen_clock) == {"idempotency_keys": 1}
    async with engine.connect() as conn:
        assert list((await conn.execute(sa.select(idempotency_keys.c.key))).scalars()) == ["young"]
    # Within its 24 h the young key still replays (here: still in flight, so a twin is refused).
    with pytest.raises(Exception, match="still in progress"):
        await idempotency.begin(engine, key.id, "young", "print", frozen_clock.now())


async def test_oauth_states_are_pruned_an_hour_after_they_expire(
    engine: AsyncEngine, frozen_clock: FrozenClock, make_key: Any
) -> None:
    key = await make_key()
    cipher = Cipher(TEST_SECRET)

    async def save(state: str) -> None:
        async with engine.begin() as conn:
            await accounts.save_state(
                conn, state=state, workspace_id=key.workspace_id, platform="twitter", redirect_uri="https://x/cb",
                scopes=["tweet.write"], code_verifier="v" * 43, cipher=cipher, now=frozen_clock.now(),
                api_key_id=key.id,
            )

    await save("expired-long-ago")
    frozen_clock.advance(minutes=60)
    await save("expired-just-now")  # expires 10 minutes after this
    frozen_clock.advance(minutes=20)

    assert await prune_all(engine, frozen_clock) == {"oauth_states": 1}
    assert await count(engine, oauth_states) == 1


async def test_finished_jobs_are_pruned_done_after_7_days_failed_after_30_live_never(
    engine: AsyncEngine, frozen_clock: FrozenClock
) -> None:
    async def finished(status: str) -> None:
        async with engine.begin() as conn:
            await queue.enqueue(conn, kind="noop", payload={}, now=frozen_clock.now())
        [job] = await queue.claim_due_jobs(engine, "w", None, 1, 30.0, frozen_clock.now())
        if status == "done":
            await queue.complete_jobs(engine, [job.id], "w", frozen_clock.now())
        else:
            await queue.fail_or_retry(engine, job, "boom", frozen_clock.now(), retryable=False)

    await finished("done")
    await finished("failed")
    async with engine.begin() as conn:  # queued for a month: live, kept
        await queue.enqueue(conn, kind="noop", payload={}, now=frozen_clock.now(),
                            run_at=frozen_clock.now() + timedelta(days=40))
    frozen_clock.advance(days=8)

    assert await prune_all(engine, frozen_clock) == {"done_jobs": 1}
    frozen_clock.advance(days=23)
    assert await prune_all(engine, frozen_clock) == {"failed_jobs": 1}
    async with engine.connect() as conn:
        assert list((await conn.execute(sa.select(jobs.c.status))).scalars()) == ["queued"]


async def test_login_failures_are_pruned_after_their_window(engine: AsyncEngine, frozen_clock: FrozenClock) -> None:
    async with engine.begin() as conn:
        await conn.execute(login_failures.insert(), [
            {"email": "a@example.com", "ip_address": None, "at": frozen_clock.now() - admin_auth.FAILURE_RETENTION
             - timedelta(minutes=1), "locked_until": None},
            {"email": "a@example.com", "ip_address": None, "at": frozen_clock.now() - timedelta(minutes=5),
             "locked_until": None},
        ])

    assert await prune_all(engine, frozen_clock) == {"login_failures": 1}
    assert await count(engine, login_failures) == 1


async def test_admin_sessions_are_pruned_once_expired_revoked_or_not(
    engine: AsyncEngine, frozen_clock: FrozenClock
) -> None:
    async with engine.begin() as conn:
        user = await users.create_user(conn, email="admin@example.com", password="correct horse battery",
                                       name="Admin", role="admin", now=frozen_clock.now())
        first = await admin_auth.issue_token(conn, user, secret_key=TEST_SECRET, now=frozen_clock.now())
        revoked = await admin_auth.issue_token(conn, user, secret_key=TEST_SECRET, now=frozen_clock.now())
        await admin_auth.revoke_session(conn, revoked.jti, frozen_clock.now())
    frozen_clock.advance(hours=23)
    async with engine.begin() as conn:
        live = await admin_auth.issue_token(conn, user, secret_key=TEST_SECRET, now=frozen_clock.now())
    frozen_clock.advance(hours=2)

    assert await prune_all(engine, frozen_clock) == {"admin_sessions": 2}
    async with engine.connect() as conn:
        left = list((await conn.execute(sa.select(admin_sessions.c.jti))).scalars())
    assert left == [live.jti] and first.jti not in left


async def test_old_rate_limit_windows_are_pruned(
    engine: AsyncEngine, frozen_clock: FrozenClock, make_key: Any
) -> None:
    key = await make_key()
    now = int(frozen_clock.now().timestamp()) // 60 * 60
    async with engine.begin() as conn:
        await conn.execute(rate_limit_counters.insert(), [
            {"key_id": key.id, "window_start": now - 7200, "count": 5},
            {"key_id": key.id, "window_start": now, "count": 1},
        ])

    assert await prune_all(engine, frozen_clock) == {"rate_limit_counters": 1}
    assert await count(engine, rate_limit_counters) == 1


async def test_usage_rows_are_never_pruned() -> None:
    assert "api_key_usage" not in {r.table.name for r in housekeeping.RULES}


async def test_a_retention_set_off_keeps_the_rows(engine: AsyncEngine, frozen_clock: FrozenClock) -> None:
    await record_calls(engine, frozen_clock, 2)
    frozen_clock.advance(days=400)

    assert await prune_all(engine, frozen_clock, load_retention({"OUIPOST_RETENTION": "platform_calls=off"})) == {}
    assert await count(engine, platform_calls) == 2


# --- batches --------------------------------------------------------------------------------------


async def test_more_rows_than_a_batch_are_pruned_in_bounded_transactions_over_runs(
    engine: AsyncEngine, frozen_clock: FrozenClock
) -> None:
    await record_calls(engine, frozen_clock, 250)
    frozen_clock.advance(days=31)
    await record_calls(engine, frozen_clock, 7)  # fresh: kept
    calls = housekeeping.rule("platform_calls")
    cutoff = frozen_clock.now() - DEFAULT_RETENTION["platform_calls"]

    first = await housekeeping.prune(engine, calls, cutoff, batch_size=40, max_batches=3)
    assert (first.deleted, first.batches, first.more) == (120, 3, True)  # bounded per run, the rest next run
    assert await count(engine, platform_calls) == 250 - 120 + 7
    second = await housekeeping.prune(engine, calls, cutoff, batch_size=40, max_batches=3)
    third = await housekeeping.prune(engine, calls, cutoff, batch_size=40, max_batches=3)
    assert (second.deleted, third.deleted, third.more) == (120, 10, False)
    assert await count(engine, platform_calls) == 7


async def test_each_batch_deletes_by_primary_key_at_most_batch_size_rows(
    engine: AsyncEngine, frozen_clock: FrozenClock
) -> None:
    await record_calls(engine, frozen_clock, 95)
    frozen_clock.advance(days=31)
    deletes: list[int] = []

    def watch(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(context.rowcount if hasattr(context, "rowcount") else -1)

    sa.event.listen(engine.sync_engine, "after_cursor_execute", watch)
    try:
        report = await housekeeping.prune(engine, housekeeping.rule("platform_calls"),
                                          frozen_clock.now() - 30 * DAY, batch_size=30)
    finally:
        sa.event.remove(engine.sync_engine, "after_cursor_execute", watch)
    assert (report.deleted, report.batches) == (95, 4)
    assert deletes == [30, 30, 30, 5]  # one DELETE per transaction, never more than a batch


# --- the periodic job -----------------------------------------------------------------------------


async def test_the_job_starts_only_when_something_is_old_and_re_enqueues_itself_once(
    engine: AsyncEngine, frozen_clock: FrozenClock, settings: Any
) -> None:
    handlers = {HOUSEKEEPING_KIND: housekeeping_job.handle}
    await record_calls(engine, frozen_clock, 5)
    assert await ensure_periodic_jobs(engine, frozen_clock, kinds=handlers) == []  # nothing an hour old
    frozen_clock.advance(days=31)
    assert await ensure_periodic_jobs(engine, frozen_clock, kinds=handlers) == [HOUSEKEEPING_KIND]
    assert await ensure_periodic_jobs(engine, frozen_clock, kinds=handlers) == []  # a second worker

    [job] = await queue.claim_due_jobs(engine, "w1", None, 10, 30.0, frozen_clock.now())
    async with worker_resources(settings, engine, frozen_clock) as resources:
        context = JobContext(job, engine, frozen_clock, resources)
        await housekeeping_job.handle(context)
        await housekeeping_job.handle(context)  # the same run again (a retry after a crash): no second successor
    await queue.complete_jobs(engine, [job.id], "w1", frozen_clock.now())

    assert await count(engine, platform_calls) == 0
    async with engine.connect() as conn:
        live = (await conn.execute(sa.select(jobs).where(jobs.c.live_key.is_not(None)))).mappings().all()
    assert [(j["kind"], j["unique_key"]) for j in live] == [(HOUSEKEEPING_KIND, periodic_key(HOUSEKEEPING_KIND))]
    assert live[0]["run_at"] == frozen_clock.now() + timedelta(minutes=10)


async def test_two_workers_run_one_housekeeping_chain(
    engine: AsyncEngine, frozen_clock: FrozenClock, settings: Any
) -> None:
    await record_calls(engine, frozen_clock, 5)
    frozen_clock.advance(days=31)
    handlers = {HOUSEKEEPING_KIND: housekeeping_job.handle}
    async with worker_resources(settings, engine, frozen_clock) as resources:
        pair = [Worker(engine, handlers, clock=frozen_clock, resources=resources, poll_interval=0.05, concurrency=2)
                for _ in range(2)]
        runs = [asyncio.create_task(w.run()) for w in pair]
        try:
            for _ in range(200):
                if await count(engine, jobs, jobs.c.status == "done") >= 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            for w in pair:
                w.stop()
            await asyncio.gather(*runs)

    assert await count(engine, platform_calls) == 0
    assert await count(engine, jobs, jobs.c.kind == HOUSEKEEPING_KIND, jobs.c.status == "done") == 1
    assert await count(engine, jobs, jobs.c.kind == HOUSEKEEPING_KIND, jobs.c.status == "queued") == 1


# --- settings -------------------------------------------------------------------------------------


def test_retention_setting_is_read_and_validated(tmp_path: Any) -> None:
    env = {"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_RETENTION": "platform_calls=90d, events=48h,failed_jobs=off"}
    retention = load_settings(env).retention
    assert (retention.of("platform_calls"), retention.of("events"), retention.of("failed_jobs")) == (
        timedelta(days=90), timedelta(hours=48), None)
    assert retention.of("webhook_deliveries") == timedelta(days=30)  # the default

    for bad, said in [
        ("platform_calls=30", "is not an age"),
        ("calls=30d", "unknown name 'calls'"),
        ("idempotency_keys=12h", "idempotency_keys='12h' must be between 24h and 3650d"),
        ("events", "is not NAME=AGE"),
    ]:
        with pytest.raises(SettingsError, match="OUIPOST_RETENTION") as raised:
            load_settings({"OUIPOST_DATA_DIR": str(tmp_path), "OUIPOST_RETENTION": bad})
        assert said in str(raised.value)
