"""`refresh_tokens`: a periodic job that refreshes tokens before they expire.

Every 5 minutes (see workers/periodic.py) it takes the active accounts whose token expires within
their network's window (ouipost/publishing/pacing.py DEFAULT_REFRESH_WINDOWS, OUIPOST_REFRESH_WINDOWS) and
asks the network for a new token set:

- success: the new tokens are stored (a rotated refresh token replaces the old one at once: X,
  TikTok and Bluesky kill the old one, and replaying it can revoke the whole grant);
- the network refuses (TokenExpiredError): the account is marked `expired` and `account.expired`
  is recorded in the same transaction, unless the account changed meanwhile (reconnected);
- a temporary failure (RetryableError, a lost answer, a network not configured): the account is
  left alone; the next run, 5 minutes later, tries again while the window lasts.

Skipped: networks whose adapter cannot refresh (Facebook Page tokens never expire), and accounts
without a refresh token on networks that need one (LinkedIn apps outside the partner programme):
refreshing those could only fail, and would mark a still-working account expired days early.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ouipost.accounts import service as accounts
from ouipost.accounts.statuses import AccountStatus
from ouipost.core.crypto import Cipher, DecryptionError
from ouipost.db.rows import AccountRow, record, records
from ouipost.db.tables import social_accounts
from ouipost.platforms import NetworkNotConfigured, adapter_class, make_adapter
from ouipost.platforms.base import PlatformError, TokenExpiredError
from ouipost.platforms.http import PlatformHttp
from ouipost.platforms.registry import NETWORKS
from ouipost.publishing.pacing import PacingConfig
from ouipost.webhooks.events import record_event
from workers.periodic import REFRESH_TOKENS_KIND, schedule_next_run
from workers.worker import JobContext

KIND = REFRESH_TOKENS_KIND
log = logging.getLogger(__name__)

BATCH = 500  # accounts per run, soonest expiry first; the rest wait 5 minutes
CONCURRENCY = 8  # refreshes at once
# Networks whose refresh exchanges the (still valid) access token itself, not a refresh token.
REFRESH_WITH_ACCESS_TOKEN = frozenset({"instagram", "threads"})


async def handle(context: JobContext) -> None:
    """Refresh what expires soon. Per-account failures are handled (see the module doc); database
    errors propagate and the job is retried, its successor already scheduled."""
    engine, clock, resources = context.engine, context.clock, context.resources
    await schedule_next_run(engine, context.job, clock.now())
    due = await expiring_accounts(engine, clock.now(), resources.settings.pacing)
    if not due:
        return
    cipher, http = resources.cipher, resources.platform_http()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(account: AccountRow) -> str:
        async with limit:
            return await refresh_account(context, account, http, cipher)

    outcomes = await asyncio.gather(*(one(a) for a in due))
    counts = {o: outcomes.count(o) for o in set(outcomes)}
    log.info("token refresh: %s", ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))


def refreshable_networks() -> list[str]:
    """Networks whose adapter can refresh a token (Facebook cannot: its Page tokens do not expire)."""
    return [n for n in NETWORKS if adapter_class(n).supports_refresh]


async def expiring_accounts(engine: Any, now: datetime, config: PacingConfig) -> list[AccountRow]:
    """Active accounts of refreshable networks whose token expires within the network's window."""
    clauses = []
    for network in refreshable_networks():
        clause = sa.and_(
            social_accounts.c.platform == network,
            social_accounts.c.token_expires_at <= now + timedelta(seconds=config.refresh_window(network)),
        )
        if network not in REFRESH_WITH_ACCESS_TOKEN:
            clause = sa.and_(clause, social_accounts.c.refresh_token.is_not(None))
        clauses.append(clause)
    if not clauses:
        return []
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(social_accounts)
            .where(social_accounts.c.status == AccountStatus.ACTIVE, social_accounts.c.token_expires_at.is_not(None),
                   sa.or_(*clauses))
            .order_by(social_accounts.c.token_expires_at).limit(BATCH)
        )
        return records(AccountRow, rows)


async def refresh_account(context: JobContext, account: AccountRow, http: PlatformHttp, cipher: Cipher) -> str:
    """Refresh one account; returns what happened: refreshed, expired, skipped, or retry."""
    engine, clock = context.engine, context.clock
    network = account["platform"]
    try:
        adapter = make_adapter(network, http, context.resources.settings, clock)
        accounts.auth_of(account, cipher)  # tokens that cannot be decrypted are not worth a call
    except NetworkNotConfigured:
        return "skipped"
    except DecryptionError:
        log.warning("account %s: tokens cannot be decrypted (secret key changed?); not refreshed", account["id"])
        return "skipped"
    try:
        await accounts.refresh_stored_tokens(engine, adapter, account, cipher, clock.now())
    except TokenExpiredError as exc:
        await _mark_expired(engine, account, exc.message, clock.now())
        return "expired"
    except PlatformError as exc:  # RetryableError, UnknownOutcomeError, an odd answer: next run
        log.info("account %s (%s): refresh failed for now: %s", account["id"], network, exc.message)
        return "retry"
    return "refreshed"


async def _mark_expired(engine: Any, account: AccountRow, message: str, now: datetime) -> None:
    """Mark the account expired and record account.expired, unless it changed since we read it
    (the user reconnected it, or a publish refreshed it): then its new tokens are not ours to judge."""
    async with engine.begin() as conn:
        current = (await conn.execute(
            sa.select(social_accounts).where(social_accounts.c.id == account["id"]).with_for_update()
        )).mappings().first()
        if current is None or current["status"] != "active" or current["access_token"] != account["access_token"]:
            return
        await accounts.mark_account(conn, account["id"], "expired", f"Token refresh refused: {message}", now)
        view = accounts.account_view(record(AccountRow, {**current, "status": AccountStatus.EXPIRED}), now=now)
        await record_event(conn, "account.expired", {"account": view}, workspace_id=account["workspace_id"], now=now)
    log.warning("account %s (%s) expired: the network refused the refresh (%s)", account["id"],
                account["platform"], message)
