"""/admin/webhooks and ouipost.webhooks.service: signed deliveries to a local receiver, retries, disabling,
the private-address guard at creation and at connection time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from standardwebhooks import Webhook

from ouipost.app import create_app
from ouipost.db.admin_tables import webhooks as webhooks_table
from ouipost.webhooks import service as webhooks


@dataclass
class Receiver:
    url: str
    received: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn; 200 when empty


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    box = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        box.received.append((await request.text(), dict(request.headers), request.path))
        status = box.statuses.pop(0) if box.statuses else 200
        if status == 302:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=status, text="thanks")

    app = web.Application()
    app.router.add_post("/hook", handle)
    app.router.add_post("/elsewhere", handle)
    server = await aiohttp_server(app)
    box.url = f"http://127.0.0.1:{server.port}/hook"
    return box


@pytest.fixture
async def private_client(aiohttp_client: Any, settings: Any, engine: Any, clock: Any) -> Any:
    """The app with OUIPOST_WEBHOOK_ALLOW_PRIVATE on (the local receiver is on 127.0.0.1)."""
    return await aiohttp_client(create_app(settings.with_overrides(webhook_allow_private=True), engine=engine,
                                           clock=clock))


async def _create(client: Any, admin: Any, url: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post("/admin/webhooks", json={"url": url, "events": ["post.published"], **extra},
                             headers=admin.headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["webhook"]


async def _snapshot(engine: Any) -> list[Any]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.select(webhooks_table))).all()]


async def test_test_ping_is_delivered_signed_and_verifiable(
    private_client: Any, admin: Any, receiver: Receiver, engine: Any
) -> None:
    hook = await _create(private_client, admin, receiver.url)
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    resp = await private_client.post(f"/admin/webhooks/{hook['id']}/test", headers=admin.headers)
    assert resp.status == 200
    delivery = (await resp.json())["data"]["delivery"]
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    assert delivery["response_status"] == 200 and isinstance(delivery["latency_ms"], int)
    assert delivery["next_attempt_at"] is None and delivery["event"] == "webhook.test"

    body, headers, _ = receiver.received[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "webhook.test" and payload["timestamp"].endswith("Z")
    assert payload["data"]["webhook"]["id"] == hook["id"]
    assert headers["webhook-id"] == delivery["id"]
    with pytest.raises(Exception):  # noqa: B017 - any verification failure
        Webhook(webhooks.generate_secret()).verify(body, headers)

    listed = (await (await private_client.get("/admin/webhooks", headers=admin.headers)).json())["data"]
    entry = listed["webhooks"][0]
    assert "secret" not in entry and secret not in json.dumps(listed)
    assert entry["stats"] == {"total_deliveries": 1, "successful_deliveries": 1, "failed_deliveries": 0}
    assert entry["last_triggered_at"] is not None
    deliveries = await private_client.get(f"/admin/webhooks/{hook['id']}/deliveries", headers=admin.headers)
    assert [d["id"] for d in (await deliveries.json())["data"]["deliveries"]] == [delivery["id"]]
    # Encrypted at rest.
    async with engine.connect() as conn:
        stored = await conn.scalar(sa.select(webhooks_table.c.secret_encrypted))
    assert secret not in stored and secret[6:] not in stored


async def test_a_given_secret_is_used_and_not_echoed(private_client: Any, admin: Any, receiver: Receiver) -> None:
    secret = webhooks.generate_secret()
    hook = await _create(private_client, admin, receiver.url, secret=secret)
    assert "secret" not in hook
    await private_client.post(f"/admin/webhooks/{hook['id']}/test", headers=admin.headers)
    body, headers, _ = receiver.received[0]
    assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"secret": "your_webhook_secret"}, "secret"),
        ({"secret": "whsec_not base64!!"}, "secret"),
        ({"secret": "whsec_c2hvcnQ="}, "secret"),
        ({"events": ["post.deleted"]}, "events"),
        ({"events": []}, "events"),
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "https://user:pass@example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_webhook_input_is_422_and_creates_nothing(
    private_client: Any, admin: Any, engine: Any, change: dict[str, Any], field: str
) -> None:
    body = {"url": "https://hooks.example.com/in", "events": ["post.published"], **change}
    resp = await private_client.post("/admin/webhooks", json=body, headers=admin.headers)
    assert resp.status == 422, await resp.text()
    assert field in (await resp.json())["error"]["details"]
    assert await _snapshot(engine) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",  # plain http needs the private setting
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
    ],
)
async def test_private_targets_and_http_are_refused_without_the_setting(
    client: Any, admin: Any, engine: Any, url: str
) -> None:
    resp = await client.post("/admin/webhooks", json={"url": url, "events": ["post.failed"]}, headers=admin.headers)
    assert resp.status == 422
    assert "url" in (await resp.json())["error"]["details"]
    assert await _snapshot(engine) == []


async def test_the_connector_refuses_private_addresses_at_send_time(
    engine: Any, settings: Any, clock: Any, receiver: Receiver
) -> None:
    # Saved while the setting was on (or by a DNS answer that changed since): the send is refused.
    async with engine.begin() as conn:
        row, _ = await webhooks.create_webhook(
            conn, url=receiver.url.replace("127.0.0.1", "localhost"), events=["post.published"], secret=None,
            description=None, created_by=None, secret_key=settings.secret_key, now=clock.now(),
        )
        delivery = await webhooks.create_delivery(conn, row["id"], "post.published", {"post": {}}, now=clock.now())
    result = await webhooks.deliver(engine, delivery["id"], secret_key=settings.secret_key, allow_private=False,
                                    clock=clock)
    assert receiver.received == []
    assert result is not None and result["status"] == "pending" and result["response_status"] is None
    assert "Refused" in result["error"]
    # An IP literal is refused too.
    async with engine.begin() as conn:
        await conn.execute(webhooks_table.update().values(url=receiver.url))
    result = await webhooks.deliver(engine, delivery["id"], secret_key=settings.secret_key, allow_private=False,
                                    clock=clock)
    assert receiver.received == [] and "Refused" in result["error"]


async def _pending(engine: Any, settings: Any, clock: Any, url: str) -> tuple[str, str]:
    async with engine.begin() as conn:
        row, _ = await webhooks.create_webhook(
            conn, url=url, events=["post.published"], secret=None, description=None, created_by=None,
            secret_key=settings.secret_key, now=clock.now(),
        )
        delivery = await webhooks.create_delivery(
            conn, row["id"], "post.published", {"post": {"id": "post_1"}}, now=clock.now(), event_id="evt_1"
        )
    return row["id"], delivery["id"]


async def test_a_500_schedules_retries_on_the_backoff_schedule_until_failed(
    engine: Any, settings: Any, frozen_clock: Any, receiver: Receiver
) -> None:
    _, delivery_id = await _pending(engine, settings, frozen_clock, receiver.url)
    receiver.statuses[:] = [500] * 8
    kwargs = {"secret_key": settings.secret_key, "allow_private": True, "clock": frozen_clock}
    result = await webhooks.deliver(engine, delivery_id, **kwargs)
    assert result["status"] == "pending" and result["attempts"] == 1 and result["response_status"] == 500
    assert result["next_attempt_at"] == frozen_clock.now() + timedelta(seconds=5)
    # Not due yet: nothing is sent.
    assert (await webhooks.deliver_due_attempt(engine, delivery_id, **kwargs))["attempts"] == 1
    assert len(receiver.received) == 1
    for attempt, wait in enumerate(webhooks.RETRY_SCHEDULE, start=2):
        frozen_clock.advance(seconds=wait.total_seconds())
        async with engine.connect() as conn:
            assert await webhooks.due_delivery_ids(conn, frozen_clock.now()) == [delivery_id]
        result = await webhooks.deliver_due_attempt(engine, delivery_id, **kwargs)
        assert result["attempts"] == attempt
    assert result["status"] == "failed" and result["next_attempt_at"] is None
    assert len(receiver.received) == 8
    assert len({h["webhook-id"] for _, h, _ in receiver.received}) == 1  # one message, many attempts


async def test_a_retry_after_a_500_succeeds(engine: Any, settings: Any, frozen_clock: Any, receiver: Receiver) -> None:
    webhook_id, delivery_id = await _pending(engine, settings, frozen_clock, receiver.url)
    receiver.statuses[:] = [500]
    kwargs = {"secret_key": settings.secret_key, "allow_private": True, "clock": frozen_clock}
    await webhooks.deliver(engine, delivery_id, **kwargs)
    frozen_clock.advance(seconds=5)
    result = await webhooks.deliver_due_attempt(engine, delivery_id, **kwargs)
    assert result["status"] == "succeeded" and result["attempts"] == 2 and result["response_status"] == 200
    async with engine.connect() as conn:
        stats = await webhooks.stats_by_webhook(conn, [webhook_id])
        hook = await webhooks.get_webhook(conn, webhook_id)
    assert stats[webhook_id] == {"total_deliveries": 1, "successful_deliveries": 1, "failed_deliveries": 0}
    assert hook["failing_since"] is None


async def test_410_disables_the_endpoint_and_it_shows(
    private_client: Any, admin: Any, engine: Any, settings: Any, clock: Any, receiver: Receiver
) -> None:
    webhook_id, delivery_id = await _pending(engine, settings, clock, receiver.url)
    receiver.statuses[:] = [410]
    kwargs = {"secret_key": settings.secret_key, "allow_private": True, "clock": clock}
    result = await webhooks.deliver(engine, delivery_id, **kwargs)
    assert result["status"] == "failed" and result["next_attempt_at"] is None
    listed = (await (await private_client.get("/admin/webhooks", headers=admin.headers)).json())["data"]["webhooks"]
    assert listed[0]["is_active"] is False and "410" in listed[0]["disabled_reason"]
    # Pending deliveries of a disabled endpoint fail without being sent.
    async with engine.begin() as conn:
        other = await webhooks.create_delivery(conn, webhook_id, "post.failed", {"post": {}}, now=clock.now())
    result = await webhooks.deliver_due_attempt(engine, other["id"], **kwargs)
    assert result["status"] == "failed" and len(receiver.received) == 1
    # Re-enabling clears the reason.
    resp = await private_client.put(f"/admin/webhooks/{webhook_id}", json={"is_active": True}, headers=admin.headers)
    hook = (await resp.json())["data"]["webhook"]
    assert hook["is_active"] is True and hook["disabled_reason"] is None


async def test_an_endpoint_failing_for_5_days_is_disabled(
    engine: Any, settings: Any, frozen_clock: Any, receiver: Receiver
) -> None:
    webhook_id, delivery_id = await _pending(engine, settings, frozen_clock, receiver.url)
    async with engine.begin() as conn:
        await conn.execute(webhooks_table.update().values(failing_since=frozen_clock.now() - timedelta(days=5)))
    receiver.statuses[:] = [503]
    result = await webhooks.deliver(engine, delivery_id, secret_key=settings.secret_key, allow_private=True,
                                    clock=frozen_clock)
    assert result["status"] == "failed"
    async with engine.connect() as conn:
        hook = await webhooks.get_webhook(conn, webhook_id)
    assert hook["is_active"] is False and "5 days" in hook["disabled_reason"]


async def test_redirects_are_failures_and_not_followed(
    engine: Any, settings: Any, clock: Any, receiver: Receiver
) -> None:
    _, delivery_id = await _pending(engine, settings, clock, receiver.url)
    receiver.statuses[:] = [302]
    result = await webhooks.deliver(engine, delivery_id, secret_key=settings.secret_key, allow_private=True,
                                    clock=clock)
    assert result["status"] == "pending" and result["response_status"] == 302
    assert [path for _, _, path in receiver.received] == ["/hook"]


async def test_one_event_is_delivered_once_per_endpoint(engine: Any, settings: Any, clock: Any) -> None:
    webhook_id, _ = await _pending(engine, settings, clock, "https://hooks.example.com/in")
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await webhooks.create_delivery(conn, webhook_id, "post.published", {}, now=clock.now(), event_id="evt_1")


async def test_update_and_delete_webhook(private_client: Any, admin: Any, receiver: Receiver, engine: Any) -> None:
    hook = await _create(private_client, admin, receiver.url)
    resp = await private_client.put(
        f"/admin/webhooks/{hook['id']}", json={"events": ["post.failed", "account.expired"], "is_active": False},
        headers=admin.headers,
    )
    updated = (await resp.json())["data"]["webhook"]
    assert updated["events"] == ["post.failed", "account.expired"] and updated["is_active"] is False
    before = await _snapshot(engine)
    for body in ({"events": ["nope"]}, {"secret": "plain"}, {}, {"url": "ftp://x"}):
        resp = await private_client.put(f"/admin/webhooks/{hook['id']}", json=body, headers=admin.headers)
        assert resp.status == 422, body
    assert await _snapshot(engine) == before
    assert (await private_client.delete(f"/admin/webhooks/{hook['id']}", headers=admin.headers)).status == 200
    assert (await private_client.delete(f"/admin/webhooks/{hook['id']}", headers=admin.headers)).status == 404
    assert (await private_client.post(f"/admin/webhooks/{hook['id']}/test", headers=admin.headers)).status == 404


async def test_test_ping_to_a_failing_endpoint_records_the_failure_without_retry(
    private_client: Any, admin: Any, receiver: Receiver
) -> None:
    hook = await _create(private_client, admin, receiver.url)
    receiver.statuses[:] = [500]
    resp = await private_client.post(f"/admin/webhooks/{hook['id']}/test", headers=admin.headers)
    delivery = (await resp.json())["data"]["delivery"]
    assert delivery["status"] == "failed" and delivery["response_status"] == 500
    assert delivery["next_attempt_at"] is None
