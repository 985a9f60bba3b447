"""Outbox events delivered to webhooks through the jobs queue: dispatch, signed attempts, retries on
the schedule, disabling, the private-address guard, and what survives re-runs and restarts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from standardwebhooks import Webhook

from ouipost.core.clock import FrozenClock
from ouipost.db.admin_tables import webhook_deliveries
from ouipost.db.admin_tables import webhooks as webhooks_table
from ouipost.db.tables import events
from ouipost.webhooks import dispatch as webhook_dispatch
from ouipost.webhooks import service as webhooks
from ouipost.webhooks.events import record_event
from tests.test_accounts import connect
from tests.test_publishing import create_post, publish
from tests.webhooks.conftest import add_webhook, eventually, live_jobs, run_due_jobs, sign_in
from workers import dispatch_events, periodic
from workers.registry import load_handlers
from workers.resources import worker_resources
from workers.worker import Worker

POST = {"post": {"id": "post_1", "status": "published", "platform_posts": []}}


async def record(engine: Any, clock: Any, event_type: str = "post.published", data: Any = POST) -> str:
    async with engine.begin() as conn:
        return await record_event(conn, event_type, data, workspace_id=None, now=clock.now())


async def deliveries(engine: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id))).mappings())


async def undispatched(engine: Any) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(events).where(events.c.dispatched_at.is_(None)))


async def create_hook(client: Any, admin: Any, url: str, events_: list[str]) -> dict[str, Any]:
    resp = await client.post("/admin/webhooks", json={"url": url, "events": events_}, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["webhook"]


# --- end to end: the API, the embedded worker, the sandbox -------------------------------------


async def test_publishing_sends_one_signed_post_published_and_nothing_to_others(
    client: Any, key: Any, engine: Any, clock: Any, make_receiver: Any
) -> None:
    admin = await sign_in(client, engine, clock, "hooks@example.com")
    published_rx, failed_rx = await make_receiver(), await make_receiver()
    hook = await create_hook(client, admin, published_rx.url, ["post.published"])
    other = await create_hook(client, admin, failed_rx.url, ["post.failed"])
    await connect(client, key, "twitter")
    post = await create_post(client, key, ["twitter"])
    status, body = await publish(client, key, post["id"])
    assert status == 200 and body["data"]["post"]["status"] == "published", body

    await eventually(lambda: len(published_rx.received) >= 1)
    # Let every job of the webhooks queue finish, then check nothing more was sent.
    await eventually(lambda: _webhook_work_done(engine))
    await asyncio.sleep(0.2)
    assert len(published_rx.received) == 1 and failed_rx.received == []

    raw, headers = published_rx.received[0]
    payload = Webhook(hook["secret"]).verify(raw, headers)
    assert payload["type"] == "post.published" and payload["timestamp"].endswith("Z")
    shown = (await (await client.get(f"/api/posts/{post['id']}", headers=key.headers())).json())["data"]["post"]
    assert set(payload["data"]) == {"post"}
    sent = payload["data"]["post"]
    # Everything but the analytics (live metrics, which GET reads from the analytics tables) is as shown.
    assert set(sent) == set(shown)
    assert {k: v for k, v in sent.items() if k != "analytics" and v != shown[k]} == {}, shown
    assert shown["platform_posts"] and shown["platform_posts"][0]["post_id"]
    assert headers["webhook-id"].startswith("dlv_")

    log = await (await client.get(f"/admin/webhooks/{hook['id']}/deliveries", headers=admin.headers)).json()
    [entry] = log["data"]["deliveries"]
    assert (entry["event"], entry["status"], entry["attempts"], entry["response_status"]) == (
        "post.published", "succeeded", 1, 200)
    listed = await (await client.get("/admin/webhooks", headers=admin.headers)).json()
    stats = {w["id"]: w["stats"] for w in listed["data"]["webhooks"]}
    assert stats[hook["id"]]["successful_deliveries"] == 1 and stats[other["id"]]["total_deliveries"] == 0


async def _webhook_work_done(engine: Any) -> bool:
    # The periodic safety run (the sweep) waits a minute for its next turn: it is not pending work.
    pending = [j for j in await live_jobs(engine) if j["kind"] == "deliver_webhook" or
               (j["kind"] == "dispatch_events" and j["unique_key"] != dispatch_events.SWEEP_KEY)]
    return not pending and await undispatched(engine) == 0


async def test_connecting_an_account_delivers_account_connected(
    client: Any, key: Any, engine: Any, clock: Any, receiver: Any
) -> None:
    admin = await sign_in(client, engine, clock, "hooks@example.com")
    hook = await create_hook(client, admin, receiver.url, ["account.connected"])
    [account] = await connect(client, key, "bluesky")
    await eventually(lambda: len(receiver.received) == 1)
    raw, headers = receiver.received[0]
    payload = Webhook(hook["secret"]).verify(raw, headers)
    assert payload["type"] == "account.connected"
    assert payload["data"]["account"]["id"] == account["id"]
    assert payload["data"]["account"]["platform"] == "bluesky"


# --- dispatch ----------------------------------------------------------------------------------


async def test_without_a_subscriber_no_job_is_made_and_the_event_is_done(
    engine: Any, settings: Any, clock: Any, receiver: Any
) -> None:
    await add_webhook(engine, settings, clock, receiver.url, ["post.failed"])
    await record(engine, clock, "post.published")
    assert await live_jobs(engine) == [] and await undispatched(engine) == 0
    await add_webhook(engine, settings, clock, receiver.url, ["post.published"])
    await record(engine, clock, "post.published")
    assert [(j["kind"], j["queue"], j["unique_key"]) for j in await live_jobs(engine)] == [
        ("dispatch_events", "webhooks", "dispatch_events")]
    await record(engine, clock, "post.published")  # a second event joins the queued run
    assert len(await live_jobs(engine)) == 1 and await undispatched(engine) == 2


async def test_one_run_dispatches_in_order_and_a_rerun_never_duplicates(
    engine: Any, settings: Any, clock: Any, receiver: Any
) -> None:
    first, _ = await add_webhook(engine, settings, clock, receiver.url, ["post.published", "post.created"])
    second, _ = await add_webhook(engine, settings, clock, receiver.url, ["post.published"])
    ids = [await record(engine, clock, t) for t in ("post.created", "post.published", "post.published")]
    assert await run_due_jobs(engine, clock, settings) == ["dispatch_events"] + ["deliver_webhook"] * 5
    made = await deliveries(engine)
    assert sorted((d["webhook_id"], d["event_id"]) for d in made) == sorted(
        [(first, ids[0]), (first, ids[1]), (second, ids[1]), (first, ids[2]), (second, ids[2])])
    assert all(d["status"] == "succeeded" for d in made) and len(receiver.received) == 5
    # Attempts went out in the order of the events.
    assert [p["type"] for p in receiver.payloads()] == ["post.created"] + ["post.published"] * 4

    # A re-run over the same events (as after a crash between the commit and the acknowledgement).
    async with engine.begin() as conn:
        await conn.execute(events.update().values(dispatched_at=None))
        assert await webhook_dispatch.dispatch_batch(conn, now=clock.now()) == (3, False)
    assert len(await deliveries(engine)) == 5 and await undispatched(engine) == 0
    assert [j for j in await live_jobs(engine) if j["kind"] == "deliver_webhook"] == []
    assert len(receiver.received) == 5


async def test_a_full_batch_queues_a_follow_up_run(engine: Any, settings: Any, clock: Any, receiver: Any,
                                                   monkeypatch: Any) -> None:
    await add_webhook(engine, settings, clock, receiver.url, ["post.published"])
    monkeypatch.setattr(webhook_dispatch, "BATCH_SIZE", 2)
    for _ in range(5):
        await record(engine, clock)
    ran = await run_due_jobs(engine, clock, settings)
    assert ran.count("dispatch_events") == 3 and ran.count("deliver_webhook") == 5
    assert await undispatched(engine) == 0 and len(receiver.received) == 5


async def test_an_event_recorded_while_a_run_is_claimed_is_not_left_behind(
    engine: Any, settings: Any, clock: Any, receiver: Any
) -> None:
    from ouipost.jobs import queue
    from workers.worker import JobContext

    await add_webhook(engine, settings, clock, receiver.url, ["post.published"])
    await record(engine, clock)
    [job] = await queue.claim_due_jobs(engine, "w1", ["webhooks"], 10, 30.0, clock.now())
    await record(engine, clock)  # deduplicated against the running job: it must pick this one up too
    assert len(await live_jobs(engine, "dispatch_events")) == 1
    async with worker_resources(settings, engine, clock) as resources:
        await dispatch_events.handle(JobContext(job, engine, clock, resources))
    await queue.complete_jobs(engine, [job.id], "w1", clock.now())
    assert await undispatched(engine) == 0 and len(await deliveries(engine)) == 2


async def test_events_from_before_an_endpoint_existed_are_not_sent_to_it(
    engine: Any, settings: Any, frozen_clock: FrozenClock, receiver: Any
) -> None:
    await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    old = await record(engine, frozen_clock)
    frozen_clock.advance(minutes=10)
    late, _ = await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    await run_due_jobs(engine, frozen_clock, settings)
    assert [(d["event_id"], d["webhook_id"] == late) for d in await deliveries(engine)] == [(old, False)]


# --- attempts, retries and disabling -----------------------------------------------------------


async def test_a_500_is_retried_at_the_scheduled_time_and_the_log_shows_both_attempts(
    engine: Any, settings: Any, frozen_clock: FrozenClock, receiver: Any, admin_client: Any, clock: Any
) -> None:
    webhook_id, secret = await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    receiver.statuses[:] = [500]
    await record(engine, frozen_clock)
    await run_due_jobs(engine, frozen_clock, settings)
    [delivery] = await deliveries(engine)
    assert (delivery["status"], delivery["attempts"], delivery["response_status"]) == ("pending", 1, 500)
    assert delivery["next_attempt_at"] == frozen_clock.now() + timedelta(seconds=5)
    [job] = await live_jobs(engine, "deliver_webhook")
    assert job["run_at"] == delivery["next_attempt_at"] and job["payload"]["attempt"] == 2
    assert job["queue"] == "webhooks"

    frozen_clock.advance(seconds=4)
    assert await run_due_jobs(engine, frozen_clock, settings) == [] and len(receiver.received) == 1
    frozen_clock.advance(seconds=1)
    assert await run_due_jobs(engine, frozen_clock, settings) == ["deliver_webhook"]
    assert len(receiver.received) == 2
    # Both attempts carry the same message id and verify.
    assert len({headers["webhook-id"] for _, headers in receiver.received}) == 1
    for raw, headers in receiver.received:
        assert Webhook(secret).verify(raw, headers)["type"] == "post.published"

    admin = await sign_in(admin_client, engine, clock, "hooks@example.com")
    log = await (await admin_client.get(f"/admin/webhooks/{webhook_id}/deliveries", headers=admin.headers)).json()
    [entry] = log["data"]["deliveries"]
    assert (entry["status"], entry["attempts"], entry["response_status"], entry["next_attempt_at"]) == (
        "succeeded", 2, 200, None)
    assert await live_jobs(engine, "deliver_webhook") == []


async def test_attempts_follow_the_whole_schedule_then_fail(
    engine: Any, settings: Any, frozen_clock: FrozenClock, receiver: Any
) -> None:
    await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    receiver.statuses[:] = [503] * 20
    await record(engine, frozen_clock)
    await run_due_jobs(engine, frozen_clock, settings)
    for wait in webhooks.RETRY_SCHEDULE:
        frozen_clock.advance(seconds=wait.total_seconds() - 1)
        await run_due_jobs(engine, frozen_clock, settings)  # one second early: nothing
        frozen_clock.advance(seconds=1)
        await run_due_jobs(engine, frozen_clock, settings)
    [delivery] = await deliveries(engine)
    assert (delivery["status"], delivery["attempts"]) == ("failed", webhooks.MAX_ATTEMPTS)
    assert len(receiver.received) == webhooks.MAX_ATTEMPTS
    assert await live_jobs(engine, "deliver_webhook") == []


async def test_410_disables_the_endpoint_and_nothing_more_is_sent(
    engine: Any, settings: Any, frozen_clock: FrozenClock, receiver: Any
) -> None:
    webhook_id, _ = await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    receiver.statuses[:] = [410]
    await record(engine, frozen_clock)
    await record(engine, frozen_clock)
    await run_due_jobs(engine, frozen_clock, settings)
    assert len(receiver.received) == 1
    async with engine.connect() as conn:
        hook = await webhooks.get_webhook(conn, webhook_id)
    assert hook["is_active"] is False and "410" in hook["disabled_reason"]
    assert sorted(d["status"] for d in await deliveries(engine)) == ["failed", "failed"]
    # Later events find no active subscriber: no delivery, no job, no attempt.
    await record(engine, frozen_clock)
    frozen_clock.advance(hours=30)
    await run_due_jobs(engine, frozen_clock, settings)
    assert len(receiver.received) == 1 and len(await deliveries(engine)) == 2
    assert await live_jobs(engine, "deliver_webhook") == []


async def test_no_attempt_after_the_endpoint_is_disabled_or_deleted(
    engine: Any, settings: Any, frozen_clock: FrozenClock, receiver: Any
) -> None:
    disabled, _ = await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    deleted, _ = await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    receiver.statuses[:] = [500, 500]
    await record(engine, frozen_clock)
    await run_due_jobs(engine, frozen_clock, settings)
    assert len(receiver.received) == 2 and len(await live_jobs(engine, "deliver_webhook")) == 2
    async with engine.begin() as conn:
        await conn.execute(webhooks_table.update().where(webhooks_table.c.id == disabled).values(is_active=False))
        await webhooks.delete_webhook(conn, deleted)
    frozen_clock.advance(seconds=5)
    assert await run_due_jobs(engine, frozen_clock, settings) == ["deliver_webhook"] * 2
    assert len(receiver.received) == 2
    [left] = await deliveries(engine)
    assert left["webhook_id"] == disabled and left["status"] == "failed" and left["attempts"] == 1


async def test_a_private_receiver_is_not_contacted_when_the_setting_is_off(
    engine: Any, settings: Any, clock: Any, receiver: Any
) -> None:
    strict = settings.with_overrides(webhook_allow_private=False)
    # Saved while the setting was on: the connection-time guard still refuses it.
    await add_webhook(engine, strict, clock, receiver.url, ["post.published"])
    await record(engine, clock)
    await run_due_jobs(engine, clock, strict)
    assert receiver.received == []
    [delivery] = await deliveries(engine)
    assert delivery["attempts"] == 1 and delivery["response_status"] is None
    assert delivery["error"].startswith("Refused") and "private" in delivery["error"]


# --- the safety run and restarts ---------------------------------------------------------------


async def test_the_safety_run_starts_with_a_worker_and_picks_up_what_was_missed(
    engine: Any, settings: Any, frozen_clock: FrozenClock, receiver: Any
) -> None:
    kinds = load_handlers()
    await periodic.ensure_periodic_jobs(engine, frozen_clock, kinds=kinds)
    assert await live_jobs(engine, "dispatch_events") == []  # no webhook: no periodic run at all
    webhook_id, _ = await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    # What a lost job leaves: an undispatched event without a dispatch job, and a due pending
    # delivery without a deliver job.
    async with engine.begin() as conn:
        await conn.execute(events.insert().values(id="evt_missed", type="post.published", workspace_id=None,
                                                  payload=POST, created_at=frozen_clock.now()))
        await webhooks.create_delivery(conn, webhook_id, "post.failed", {"post": {}}, now=frozen_clock.now())
    assert await live_jobs(engine) == []
    await periodic.ensure_periodic_jobs(engine, frozen_clock, kinds=kinds)
    await periodic.ensure_periodic_jobs(engine, frozen_clock, kinds=kinds)  # a second worker
    [sweep] = await live_jobs(engine, "dispatch_events")
    assert (sweep["unique_key"], sweep["queue"]) == ("periodic:dispatch_events", "webhooks")
    await run_due_jobs(engine, frozen_clock, settings)
    assert sorted(p["type"] for p in receiver.payloads()) == ["post.failed", "post.published"]
    assert await undispatched(engine) == 0
    # It keeps itself going, every minute, under the same key.
    [following] = await live_jobs(engine, "dispatch_events")
    assert following["unique_key"] == "periodic:dispatch_events"
    assert following["run_at"] == frozen_clock.now() + timedelta(minutes=1)
    frozen_clock.advance(minutes=1)
    assert await run_due_jobs(engine, frozen_clock, settings) == ["dispatch_events"]
    assert len(await live_jobs(engine, "dispatch_events")) == 1 and len(receiver.received) == 2
    # Without an active webhook the chain ends.
    async with engine.begin() as conn:
        await conn.execute(webhooks_table.update().values(is_active=False))
    frozen_clock.advance(minutes=1)
    assert await run_due_jobs(engine, frozen_clock, settings) == ["dispatch_events"]
    assert await live_jobs(engine, "dispatch_events") == []


async def test_a_delivery_waiting_for_its_retry_survives_a_worker_restart(
    engine: Any, settings: Any, frozen_clock: FrozenClock, receiver: Any
) -> None:
    await add_webhook(engine, settings, frozen_clock, receiver.url, ["post.published"])
    receiver.statuses[:] = [500]
    await record(engine, frozen_clock)

    async with worker_resources(settings, engine, frozen_clock) as resources:
        first = Worker(engine, load_handlers(), clock=frozen_clock, resources=resources, poll_interval=0.05)
        task = asyncio.create_task(first.run())
        await eventually(lambda: len(receiver.received) == 1)
        await eventually(lambda: _queued_attempt(engine, 2))
        first.stop()
        await asyncio.wait_for(task, timeout=15)
    assert [j["status"] for j in await live_jobs(engine, "deliver_webhook")] == ["queued"]

    frozen_clock.advance(seconds=5)
    async with worker_resources(settings, engine, frozen_clock) as resources:
        second = Worker(engine, load_handlers(), clock=frozen_clock, resources=resources, poll_interval=0.05)
        task = asyncio.create_task(second.run())
        try:
            await eventually(lambda: len(receiver.received) == 2)
            await eventually(lambda: _delivery_status(engine, "succeeded"))
        finally:
            second.stop()
            await asyncio.wait_for(task, timeout=15)
    [delivery] = await deliveries(engine)
    assert delivery["attempts"] == 2


async def _queued_attempt(engine: Any, attempt: int) -> bool:
    return any(j["status"] == "queued" and j["payload"]["attempt"] == attempt
               for j in await live_jobs(engine, "deliver_webhook"))


async def _delivery_status(engine: Any, status: str) -> bool:
    return [d["status"] for d in await deliveries(engine)] == [status]
