"""The periodic token refresh: expiring accounts refreshed (rotated refresh tokens kept), refusals
marking the account expired with an event, networks that cannot refresh skipped, one live chain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import sqlalchemy as sa

from ouipost.core.clock import Clock
from ouipost.core.crypto import Cipher
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import events, social_accounts
from tests.publishing.conftest import job_context
from tests.test_accounts import connect
from workers import refresh_tokens
from workers.periodic import REFRESH_TOKENS_KIND, ensure_periodic_jobs, periodic_key

KIND = REFRESH_TOKENS_KIND


async def _expire_soon(engine: Any, account_id: str, minutes: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(social_accounts.update().where(social_accounts.c.id == account_id).values(
            token_expires_at=Clock().now() + timedelta(minutes=minutes)))


async def _account(engine: Any, account_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return dict((await conn.execute(sa.select(social_accounts).where(social_accounts.c.id == account_id)))
                    .mappings().one())


async def _run(engine: Any, settings: Any) -> None:
    async with aiohttp.ClientSession() as session:
        await refresh_tokens.handle(job_context(engine, settings, session, REFRESH_TOKENS_KIND, {}))


async def test_an_expiring_account_is_refreshed_and_its_rotated_refresh_token_kept(
    quiet_client: Any, key: Any, engine: Any, quiet_settings: Any, sandbox: Any
) -> None:
    [soon] = await connect(quiet_client, key, "twitter")
    [later] = await connect(quiet_client, key, "bluesky")
    await _expire_soon(engine, soon["id"], 10)  # inside X's 30-minute window
    await _expire_soon(engine, later["id"], 90)  # outside Bluesky's
    before, untouched = await _account(engine, soon["id"]), await _account(engine, later["id"])

    await _run(engine, quiet_settings)

    after = await _account(engine, soon["id"])
    cipher = Cipher(quiet_settings.secret_key)
    assert after["status"] == "active"
    assert after["access_token"] != before["access_token"]
    assert after["token_expires_at"] > Clock().now() + timedelta(hours=1)
    new_refresh = cipher.decrypt(after["refresh_token"], context=soon["id"])
    old_refresh = cipher.decrypt(before["refresh_token"], context=soon["id"])
    assert new_refresh != old_refresh  # X rotates: the new one replaces the old
    assert sandbox.token("twitter", new_refresh, kind="refresh") is not None
    assert await _account(engine, later["id"]) == untouched
    async with engine.connect() as conn:  # the chain goes on: the next run is queued 5 minutes out
        [next_run] = (await conn.execute(sa.select(jobs).where(jobs.c.live_key == periodic_key(KIND)))).all()
    assert next_run.status == "queued" and next_run.kind == KIND


async def test_a_refused_refresh_marks_the_account_expired_and_records_the_event(
    quiet_client: Any, key: Any, engine: Any, quiet_settings: Any, sandbox: Any
) -> None:
    [account] = await connect(quiet_client, key, "twitter")
    await _expire_soon(engine, account["id"], 5)
    for info in sandbox.tokens.values():
        info.revoked = True  # the user revoked the app at X

    await _run(engine, quiet_settings)

    row = await _account(engine, account["id"])
    assert row["status"] == "expired" and "refresh refused" in row["last_error"]
    async with engine.connect() as conn:
        recorded = (await conn.execute(sa.select(events.c.type, events.c.payload)
                                       .where(events.c.type == "account.expired"))).all()
    assert len(recorded) == 1 and recorded[0].payload["account"]["id"] == account["id"]
    assert recorded[0].payload["account"]["status"] == "expired"


async def test_temporary_failures_leave_the_account_for_the_next_run(
    quiet_client: Any, key: Any, engine: Any, quiet_settings: Any, sandbox: Any
) -> None:
    [account] = await connect(quiet_client, key, "twitter")
    await _expire_soon(engine, account["id"], 5)
    before = await _account(engine, account["id"])
    sandbox.add_fault("twitter", "server_error", path_contains="oauth2/token")

    await _run(engine, quiet_settings)

    assert await _account(engine, account["id"]) == before  # still active, same tokens: tried again later
    await _run(engine, quiet_settings)
    assert (await _account(engine, account["id"]))["access_token"] != before["access_token"]


async def test_networks_that_cannot_refresh_and_accounts_without_refresh_tokens_are_skipped(
    quiet_client: Any, key: Any, engine: Any, quiet_settings: Any, sandbox: Any
) -> None:
    pages = await connect(quiet_client, key, "facebook")  # Page tokens: no refresh at all
    [x] = await connect(quiet_client, key, "twitter")
    for page in pages:
        await _expire_soon(engine, page["id"], 1)
    await _expire_soon(engine, x["id"], 1)
    async with engine.begin() as conn:  # granted without offline.access: nothing to refresh with
        await conn.execute(social_accounts.update().where(social_accounts.c.id == x["id"]).values(refresh_token=None))
    before = [await _account(engine, a["id"]) for a in [*pages, x]]
    requests_before = len(sandbox.requests)

    assert await refresh_tokens.expiring_accounts(engine, Clock().now(), quiet_settings.pacing) == []
    await _run(engine, quiet_settings)

    assert [await _account(engine, a["id"]) for a in [*pages, x]] == before
    assert len(sandbox.requests) == requests_before  # nothing was asked of any network
    assert "facebook" not in refresh_tokens.refreshable_networks()


async def test_one_live_refresh_chain_however_many_workers_start(quiet_client: Any, key: Any, engine: Any) -> None:
    clock = Clock()
    assert await ensure_periodic_jobs(engine, clock) == []  # no account whose token expires: no chain
    await connect(quiet_client, key, "twitter")
    assert await ensure_periodic_jobs(engine, clock) == [KIND]
    assert await ensure_periodic_jobs(engine, clock) == []
    assert await ensure_periodic_jobs(engine, clock, kinds={"noop"}) == []
    async with engine.connect() as conn:
        live = (await conn.execute(sa.select(jobs.c.kind).where(jobs.c.live_key.is_not(None)))).scalars().all()
    assert live == [KIND]
