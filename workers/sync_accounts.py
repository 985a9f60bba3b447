"""`sync_accounts`: once a day, every active account's followers (and demographics where given).

One live job at a time (unique key analytics.ACCOUNTS_JOB_KEY); each run enqueues the next one a day
later. The first is enqueued by the first analytics sync (analytics.ensure_accounts_job).

An account whose network fails (rate limit, 5xx, expired token, no credentials) is skipped for the
day and logged; the others are still recorded. The job itself only fails on database errors, which
the queue retries.
"""

from __future__ import annotations

import logging

from ouipost.accounts import service as accounts
from ouipost.analytics import service as analytics
from ouipost.platforms import NetworkNotConfigured, make_adapter
from ouipost.platforms.base import PlatformError
from workers.worker import JobContext

KIND = analytics.ACCOUNTS_KIND
log = logging.getLogger(__name__)


async def handle(context: JobContext) -> None:
    """Record one snapshot per active account, then plan tomorrow's run."""
    engine, clock, resources = context.engine, context.clock, context.resources
    settings, http, cipher = resources.settings, resources.platform_http(), resources.cipher
    async with engine.connect() as conn:
        rows = await analytics.accounts_to_sync(conn)
    skipped = 0
    for account in rows:
        try:
            adapter = make_adapter(account["platform"], http, settings, clock)
            stats = await accounts.call_with_refresh(engine, adapter, account, cipher, clock.now(),
                                                     adapter.account_stats)
        except (PlatformError, NetworkNotConfigured) as exc:
            skipped += 1
            log.info("account %s not synced today: %s", account["id"], exc)
            continue
        async with engine.begin() as conn:
            now = clock.now()
            await analytics.store_account_snapshot(conn, account, stats, now)
            await accounts.store_stats(conn, account["id"], {k: v for k, v in vars(stats).items() if v is not None},
                                       now)
    if skipped:
        log.warning("sync_accounts: %d of %d account(s) skipped", skipped, len(rows))
    async with engine.begin() as conn:
        await analytics.schedule_next_accounts_sync(conn, context.job, clock.now())
