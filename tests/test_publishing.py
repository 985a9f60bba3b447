"""Publishing end to end: the API, the embedded worker and the sandbox networks over real HTTP.

Exactly once: every test that publishes checks what the sandbox network received.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.db.queue_tables import jobs
from ouipost.db.tables import events, post_targets, posts, social_accounts
from ouipost.jobs.queue import Job, RetryJob
from tests.test_accounts import connect
from workers import publish_post
from workers.worker import JobContext

# Only publish jobs: periodic jobs (token refresh, dispatch) may be queued beside them.
QUEUED_PUBLISH = (jobs.c.status == "queued", jobs.c.kind == "publish_post")


async def create_post(client: Any, key: Any, platforms: list[str], content: str = "Hello from Oui Post") -> dict:
    resp = await client.post("/api/posts", json={"content": content, "platforms": platforms}, headers=key.headers())
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["post"]


async def publish(client: Any, key: Any, post_id: str) -> tuple[int, dict]:
    resp = await client.post(f"/api/posts/{post_id}/publish", headers=key.headers())
    return resp.status, await resp.json()


def publications(sandbox: Any, network: str) -> list[Any]:
    return [p for p in sandbox.publications if p.network == network and not p.deleted]


async def wait_for_status(client: Any, key: Any, post_id: str, statuses: set[str], timeout: float = 15) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        post = (await (await client.get(f"/api/posts/{post_id}", headers=key.headers())).json())["data"]["post"]
        if post["status"] in statuses or asyncio.get_running_loop().time() > deadline:
            return post
        await asyncio.sleep(0.1)


async def test_publish_now_reaches_each_network_once(client: Any, key: Any, sandbox: Any, engine: Any) -> None:
    await connect(client, key, "twitter")
    await connect(client, key, "linkedin")
    await connect(client, key, "bluesky")
    post = await create_post(client, key, ["twitter", "linkedin", "bluesky"])
    status, body = await publish(client, key, post["id"])
    assert status == 200, body
    result = body["data"]["post"]
    assert result["status"] == "published" and result["published_at"].endswith("Z")
    assert {r["platform"]: r["status"] for r in result["platform_results"]} == {
        "twitter": "success", "linkedin": "success", "bluesky": "success"}
    assert all(r["post_id"] and r["url"].startswith("https://") for r in result["platform_results"])
    for network in ("twitter", "linkedin", "bluesky"):
        assert len(publications(sandbox, network)) == 1, network
        assert publications(sandbox, network)[0].text.startswith("Hello from Oui Post")
    shown = (await (await client.get(f"/api/posts/{post['id']}", headers=key.headers())).json())["data"]["post"]
    assert {p["post_id"] for p in shown["platform_posts"]} == {r["post_id"] for r in result["platform_results"]}
    async with engine.connect() as conn:
        types = (await conn.execute(sa.select(events.c.type).order_by(events.c.id))).scalars().all()
    assert "post.created" in types and types[-1] == "post.published"
    again, conflict = await publish(client, key, post["id"])
    assert again == 409 and conflict["error"]["code"] == "CONFLICT"


async def test_scheduled_post_is_published_when_due(client: Any, key: Any, sandbox: Any) -> None:
    await connect(client, key, "bluesky")
    post = await create_post(client, key, ["bluesky"])
    due = datetime.now(UTC) + timedelta(seconds=2)
    resp = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                             json={"scheduled_at": due.isoformat().replace("+00:00", "Z")})
    assert resp.status == 200, await resp.text()
    body = (await resp.json())["data"]["post"]
    assert body["status"] == "scheduled" and body["scheduled_timezone"] == "UTC"
    assert publications(sandbox, "bluesky") == []
    done = await wait_for_status(client, key, post["id"], {"published", "failed"})
    assert done["status"] == "published"
    assert len(publications(sandbox, "bluesky")) == 1
    published_at = datetime.fromisoformat(done["published_at"].replace("Z", "+00:00"))
    assert published_at >= due.replace(microsecond=0)


async def test_schedule_reads_naive_times_in_the_timezone_and_reschedules_one_job(
    client: Any, key: Any, engine: Any
) -> None:
    await connect(client, key, "twitter")
    post = await create_post(client, key, ["twitter"])
    first = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                              json={"scheduled_at": "2031-01-25T09:00:00", "timezone": "Europe/Paris"})
    body = (await first.json())["data"]["post"]
    assert (body["scheduled_at"], body["scheduled_timezone"]) == ("2031-01-25T08:00:00Z", "Europe/Paris")
    second = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                               json={"scheduled_at": "2031-07-01T09:00:00+02:00"})
    assert (await second.json())["data"]["post"]["scheduled_at"] == "2031-07-01T07:00:00Z"
    async with engine.connect() as conn:
        live = (await conn.execute(sa.select(jobs.c.run_at).where(*QUEUED_PUBLISH))).scalars().all()
    assert len(live) == 1 and live[0].replace(tzinfo=UTC) == datetime(2031, 7, 1, 7, tzinfo=UTC)
    resp = await client.post(f"/api/posts/{post['id']}/unschedule", headers=key.headers())
    assert resp.status == 200 and (await resp.json())["data"]["post"]["status"] == "draft"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(jobs).where(*QUEUED_PUBLISH)) == 0
    await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                      json={"scheduled_at": "2031-07-01T09:00:00Z"})
    assert (await client.delete(f"/api/posts/{post['id']}", headers=key.headers())).status == 200
    async with engine.connect() as conn:  # deleting a scheduled post cancels its job
        assert await conn.scalar(sa.select(sa.func.count()).select_from(jobs).where(*QUEUED_PUBLISH)) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
        ({"scheduled_at": "next tuesday"}, "scheduled_at"),
        ({"scheduled_at": "2031-01-01T00:00:00Z", "timezone": "Mars/Base"}, "timezone"),
        ({}, "scheduled_at"),
    ],
)
async def test_bad_schedules_are_422_and_change_nothing(client: Any, key: Any, body: dict, field: str) -> None:
    await connect(client, key, "twitter")
    post = await create_post(client, key, ["twitter"])
    resp = await client.post(f"/api/posts/{post['id']}/schedule", json=body, headers=key.headers())
    assert resp.status == 422
    assert field in (await resp.json())["error"]["details"]
    again = (await (await client.get(f"/api/posts/{post['id']}", headers=key.headers())).json())["data"]["post"]
    assert again["status"] == "draft"


async def test_targets_without_an_account_or_media_block_scheduling(client: Any, key: Any) -> None:
    await connect(client, key, "instagram")
    post = await create_post(client, key, ["linkedin", "instagram"])
    resp = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                             json={"scheduled_at": "2031-01-01T00:00:00Z"})
    assert resp.status == 422
    details = (await resp.json())["error"]["details"]
    assert "linkedin" in details and "instagram" in details  # no LinkedIn account; Instagram needs media


async def test_another_workspaces_post_cannot_be_scheduled_or_published(client: Any, make_key: Any) -> None:
    mine, theirs = await make_key(), await make_key()
    post = await create_post(client, theirs, ["twitter"])
    for action, body in (("schedule", {"scheduled_at": "2031-01-01T00:00:00Z"}), ("publish", None),
                         ("unschedule", None)):
        resp = await client.post(f"/api/posts/{post['id']}/{action}", json=body, headers=mine.headers())
        assert resp.status == 404, action


async def test_expired_access_token_is_refreshed_and_the_post_published(client: Any, key: Any, sandbox: Any) -> None:
    await connect(client, key, "twitter")
    sandbox.expire_tokens("twitter")
    post = await create_post(client, key, ["twitter"])
    status, body = await publish(client, key, post["id"])
    assert status == 200 and body["data"]["post"]["status"] == "published"
    assert len(publications(sandbox, "twitter")) == 1


async def test_refused_refresh_marks_the_account_expired_and_fails_the_target(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    [account] = await connect(client, key, "twitter")
    sandbox.expire_tokens("twitter")
    for info in sandbox.tokens.values():
        info.revoked = True
    post = await create_post(client, key, ["twitter"])
    status, body = await publish(client, key, post["id"])
    assert status == 200
    [result] = body["data"]["post"]["platform_results"]
    assert body["data"]["post"]["status"] == "failed"
    assert result["status"] == "failed" and result["error"]["code"] == "TOKEN_EXPIRED"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(social_accounts.c.status).where(social_accounts.c.id == account["id"])) \
            == "expired"
        types = (await conn.execute(sa.select(events.c.type))).scalars().all()
    assert "account.expired" in types and "post.failed" in types
    assert publications(sandbox, "twitter") == []


async def test_dropped_connection_after_sending_is_never_sent_again(client: Any, key: Any, sandbox: Any) -> None:
    await connect(client, key, "bluesky")
    sandbox.add_fault("bluesky", "drop_after", path_contains="createRecord")
    post = await create_post(client, key, ["bluesky"])
    status, body = await publish(client, key, post["id"])
    assert status == 200
    [result] = body["data"]["post"]["platform_results"]
    assert result["status"] == "failed" and result["error"]["code"] == "OUTCOME_UNKNOWN"
    await asyncio.sleep(0.5)
    assert len(publications(sandbox, "bluesky")) == 1  # it did reach the network, once


async def test_partial_failure_then_retry_resends_only_the_failed_target(client: Any, key: Any, sandbox: Any) -> None:
    await connect(client, key, "twitter")
    await connect(client, key, "bluesky")
    first = await create_post(client, key, ["twitter"], content="Same words twice")
    assert (await publish(client, key, first["id"]))[0] == 200
    second = await create_post(client, key, ["twitter", "bluesky"], content="Same words twice")
    status, body = await publish(client, key, second["id"])
    assert status == 200 and body["data"]["post"]["status"] == "partially_published"
    results = {r["platform"]: r for r in body["data"]["post"]["platform_results"]}
    assert results["bluesky"]["status"] == "success" and results["twitter"]["status"] == "failed"
    status, body = await publish(client, key, second["id"])  # an explicit retry
    assert status == 200 and body["data"]["post"]["status"] == "partially_published"
    assert len(publications(sandbox, "bluesky")) == 1
    assert len(publications(sandbox, "twitter")) == 1


async def test_disconnecting_returns_a_scheduled_post_to_draft(client: Any, key: Any, engine: Any) -> None:
    [account] = await connect(client, key, "twitter")
    post = await create_post(client, key, [account["id"]])
    await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                      json={"scheduled_at": "2031-01-01T00:00:00Z"})
    resp = await client.delete(f"/api/accounts/{account['id']}", headers=key.headers())
    assert (await resp.json())["data"]["cancelled_posts"] == 1
    again = (await (await client.get(f"/api/posts/{post['id']}", headers=key.headers())).json())["data"]["post"]
    assert again["status"] == "draft" and again["scheduled_at"] is None


# --- the handler itself, run directly where waiting for the worker's backoff would be slow -----------


def job_context(engine: Any, settings: Any, session: aiohttp.ClientSession, post_id: str, attempts: int = 1) -> Any:
    from ouipost.core.clock import Clock
    from tests.resources import resources_for

    job = Job(id=1, queue="publish", kind="publish_post", payload={"post_id": post_id}, attempts=attempts,
              max_attempts=8, run_at=datetime.now(UTC), unique_key=f"publish:{post_id}", locked_by="test")
    clock = Clock()
    return JobContext(job, engine, clock, resources_for(settings, engine, clock, session))


async def _prepare_publishing(client: Any, key: Any, engine: Any, network: str) -> dict:
    """A post whose publish request is committed but not yet run (no worker in these tests)."""
    from ouipost.posts import service
    from ouipost.publishing import service as publishing

    await connect(client, key, network)
    post = await create_post(client, key, [network])
    async with engine.begin() as conn:
        row = await service.get_post(conn, key.workspace_id, post["id"])
        await publishing.request_publish(conn, row, datetime.now(UTC))
        await conn.execute(jobs.delete())  # keep the embedded worker out of it
    return post


@pytest.fixture
def no_worker_settings(settings: Any) -> Any:
    return settings.with_overrides(workers=0)


@pytest.fixture
async def quiet_client(aiohttp_client: Any, no_worker_settings: Any, engine: Any) -> Any:
    from ouipost.app import create_app

    return await aiohttp_client(create_app(no_worker_settings, engine=engine))


async def test_5xx_leaves_the_target_pending_and_the_retry_publishes_once(
    quiet_client: Any, key: Any, engine: Any, sandbox: Any, no_worker_settings: Any
) -> None:
    post = await _prepare_publishing(quiet_client, key, engine, "bluesky")
    sandbox.add_fault("bluesky", "server_error", path_contains="createRecord")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RetryJob):
            await publish_post.handle(job_context(engine, no_worker_settings, session, post["id"]))
        async with engine.connect() as conn:
            assert await conn.scalar(sa.select(post_targets.c.status)) == "pending"
        assert publications(sandbox, "bluesky") == []
        await publish_post.handle(job_context(engine, no_worker_settings, session, post["id"], attempts=2))
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(posts.c.status)) == "published"
    assert len(publications(sandbox, "bluesky")) == 1


async def test_rate_limit_retries_after_the_networks_reset(
    quiet_client: Any, key: Any, engine: Any, sandbox: Any, no_worker_settings: Any
) -> None:
    post = await _prepare_publishing(quiet_client, key, engine, "twitter")
    sandbox.add_fault("twitter", "rate_limit", path_contains="/2/tweets")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RetryJob) as info:
            await publish_post.handle(job_context(engine, no_worker_settings, session, post["id"]))
    assert info.value.retry_after is not None and 800 < info.value.retry_after <= 901  # x-rate-limit-reset: 15 min
    assert publications(sandbox, "twitter") == []


async def test_a_target_left_publishing_by_a_crash_is_not_sent_again(
    quiet_client: Any, key: Any, engine: Any, sandbox: Any, no_worker_settings: Any
) -> None:
    post = await _prepare_publishing(quiet_client, key, engine, "bluesky")
    async with engine.begin() as conn:  # what a worker killed mid-call leaves behind
        await conn.execute(post_targets.update().values(status="publishing"))
    async with aiohttp.ClientSession() as session:
        await publish_post.handle(job_context(engine, no_worker_settings, session, post["id"], attempts=2))
    async with engine.connect() as conn:
        target = (await conn.execute(sa.select(post_targets))).mappings().one()
        assert await conn.scalar(sa.select(posts.c.status)) == "failed"
    assert target["status"] == "failed" and target["error_code"] == "OUTCOME_UNKNOWN"
    assert publications(sandbox, "bluesky") == []


async def test_giving_up_after_the_last_attempt_fails_the_post(
    quiet_client: Any, key: Any, engine: Any, sandbox: Any, no_worker_settings: Any
) -> None:
    post = await _prepare_publishing(quiet_client, key, engine, "bluesky")
    sandbox.add_fault("bluesky", "server_error", path_contains="createRecord")
    async with aiohttp.ClientSession() as session:
        await publish_post.handle(job_context(engine, no_worker_settings, session, post["id"], attempts=8))
    async with engine.connect() as conn:
        target = (await conn.execute(sa.select(post_targets))).mappings().one()
        assert await conn.scalar(sa.select(posts.c.status)) == "failed"
    assert target["error_code"] == "RETRIES_EXHAUSTED"



async def test_reconnecting_an_expired_account_publishes_what_it_blocked(
    client: Any, key: Any, sandbox: Any, engine: Any
) -> None:
    await connect(client, key, "twitter")
    sandbox.expire_tokens("twitter")
    for info in sandbox.tokens.values():
        info.revoked = True
    post = await create_post(client, key, ["twitter"])
    status, body = await publish(client, key, post["id"])
    assert status == 200 and body["data"]["post"]["status"] == "failed"
    await connect(client, key, "twitter")  # the user reconnects the same X account
    done = await wait_for_status(client, key, post["id"], {"published"})
    assert done["status"] == "published"
    assert len(publications(sandbox, "twitter")) == 1


async def test_a_refresh_made_elsewhere_meanwhile_is_used_not_mistaken_for_expiry(
    client: Any, key: Any, engine: Any, sandbox: Any, settings: Any
) -> None:
    """X rotates refresh tokens and revokes the whole grant when a used one comes back: a publisher
    holding tokens that another process has refreshed meanwhile must take the stored ones, not refresh
    again (which would kill the grant) nor expire the account."""
    from ouipost.accounts import service as accounts
    from ouipost.core.crypto import Cipher
    from ouipost.platforms import make_adapter
    from ouipost.platforms.http import PlatformHttp

    [account] = await connect(client, key, "twitter")
    async with engine.connect() as conn:
        stale = await accounts.get_account(conn, key.workspace_id, account["id"])
    cipher = Cipher(settings.secret_key)
    async with aiohttp.ClientSession() as session:
        adapter = make_adapter("twitter", PlatformHttp(session, base_url=settings.effective_platform_base_url),
                               settings)
        stale_auth = accounts.auth_of(stale, cipher)
        winner = await adapter.refresh_token(stale_auth)  # what the refresh job did in another process
        async with engine.begin() as conn:
            await accounts.store_tokens(conn, stale["id"], winner, cipher, datetime.now(UTC))
        sandbox.tokens[stale_auth.access_token].expires_at = 0  # the copy this publisher holds is expired
        stats = await accounts.call_with_refresh(engine, adapter, stale, cipher, datetime.now(UTC),
                                                 adapter.account_stats)
    assert stats.followers is not None
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(social_accounts.c.status).where(social_accounts.c.id == stale["id"])) \
            == "active"
