"""`sync_analytics`: fetch one published target's insights, keep them, and plan the next sync.

Payload `{"target_id": ...}`. Runs on the `analytics` queue, so a slow or rate-limited network never
delays publishing. Outcomes:
- answer: a snapshot is stored (and becomes the target's latest totals), the next sync is enqueued
  along analytics.SYNC_SCHEDULE, and the daily accounts job is made sure of;
- rate limited / 5xx / dropped: RetryJob with the network's retry-after (backoff otherwise); after the
  last attempt this round is skipped and the next one planned, so a bad hour loses one point only;
- token expired and not refreshable (the account is then marked expired): this round is skipped and
  the next planned, so syncing resumes once the account is reconnected;
- the post is gone from the network, or the network has no insights API: syncing this target stops;
- the target or its account is gone (post deleted, account disconnected): nothing to do.
"""

from __future__ import annotations

import logging
from typing import Any

from ouipost.accounts import service as accounts
from ouipost.accounts.statuses import AccountStatus
from ouipost.analytics import service as analytics
from ouipost.db.rows import AccountRow, TargetRow
from ouipost.jobs.queue import RetryJob
from ouipost.platforms import NetworkNotConfigured, make_adapter
from ouipost.platforms.base import (
    Insights,
    NotSupportedError,
    PermanentError,
    PlatformError,
    RetryableError,
    TokenExpiredError,
)
from workers.worker import JobContext

KIND = analytics.SYNC_KIND
log = logging.getLogger(__name__)


async def handle(context: JobContext) -> None:
    """Sync the target in the payload. Raises RetryJob while the network asks to wait."""
    engine, clock = context.engine, context.clock
    target_id = context.payload["target_id"]
    async with engine.connect() as conn:
        target = await analytics.target_for_sync(conn, target_id)
    if target is None or target["account"] is None:
        return
    account = target["account"]
    if account["status"] != AccountStatus.ACTIVE:
        await _plan_next(context, target)
        return
    resources = context.resources
    try:
        adapter = make_adapter(target["network"], resources.platform_http(), resources.settings, clock)
    except NetworkNotConfigured as exc:
        log.warning("analytics of %s not synced: %s", target_id, exc)
        return
    try:
        insights = await _fetch(context, adapter, target, account)
    except (RetryableError, TokenExpiredError) as exc:
        retryable = isinstance(exc, RetryableError)
        if retryable and context.attempts < context.job.max_attempts:
            raise RetryJob(f"{target['network']} asked to wait: {exc.message}",
                           retry_after=exc.retry_after) from exc  # type: ignore[union-attr]
        log.info("analytics of %s skipped this round: %s", target_id, exc.message)
        await _plan_next(context, target)
        return
    except (PermanentError, NotSupportedError) as exc:
        log.info("analytics of %s stopped: %s", target_id, exc.message)
        return
    except PlatformError as exc:  # an unclear outcome of a read is harmless: read again later
        if context.attempts < context.job.max_attempts:
            raise RetryJob(f"{target['network']}: {exc.message}") from exc
        await _plan_next(context, target)
        return
    async with engine.begin() as conn:
        now = clock.now()
        await analytics.store_snapshot(conn, target, insights, now)
        await analytics.schedule_next_sync(conn, context.job, target, now)
        await analytics.ensure_accounts_job(conn, now)


async def _fetch(context: JobContext, adapter: Any, target: TargetRow, account: AccountRow) -> Insights:
    remote_id = target["remote_id"]
    return await accounts.call_with_refresh(
        context.engine, adapter, account, context.resources.cipher, context.clock.now(),
        lambda auth: adapter.post_insights(auth, remote_id),
    )


async def _plan_next(context: JobContext, target: TargetRow) -> None:
    async with context.engine.begin() as conn:
        await analytics.schedule_next_sync(conn, context.job, target, context.clock.now())
