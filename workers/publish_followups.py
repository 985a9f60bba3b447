"""`publish_followups`: send a published target's follow-ups (its first comment and its thread's
parts), in order, each exactly once (the model is ouipost/posts/followups.py).

A run:

    load      the target (published), its post and account; its parts, written from the post's
              plan on the first run. A part still `publishing` was interrupted after the request
              may have left (a worker died mid-call): failed OUTCOME_UNKNOWN, never sent again.
    send      each pending part in `seq` order: claimed (pending -> publishing, committed), sent
              (a reply to the part before it, or a comment on the post), its answer committed.
              A reply whose parent part failed is not sent (THREAD_BROKEN); a comment does not
              depend on the thread. A retryable error puts the part back to pending and ends the
              run: the job runs again after the network's wait (or the backoff), from that part.
              A token the network refused fails every part still to send (TOKEN_EXPIRED).
    finish    once no part is left to send, the post gets its final status if every other step
              is done too (ouipost/publishing/service.py finish_posts), in a transaction of its
              own after the parts' answers are committed.

The job's unique key is the target's (`followups:{target_id}`): one run per target at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.accounts import service as accounts
from ouipost.accounts.statuses import AccountStatus
from ouipost.core.metrics import process_metrics
from ouipost.db.batch import run_transaction
from ouipost.db.rows import AccountRow, MediaRow, PartRow, PostRow, TargetRow, record
from ouipost.db.tables import post_targets, posts, social_accounts
from ouipost.jobs.queue import RetryJob
from ouipost.platforms import NetworkNotConfigured, make_adapter
from ouipost.platforms.base import PlatformAdapter, PlatformError, PostRef, PublishRequest, PublishResult
from ouipost.posts import followups
from ouipost.posts import service as posts_service
from ouipost.posts.followups import PartKind, PartSource, PartStatus
from ouipost.publishing import platform_calls
from ouipost.publishing import service as publishing
from workers.publish_post import EXHAUSTED_MESSAGE, media_file, refused
from workers.worker import JobContext

KIND = publishing.FOLLOWUPS_KIND
log = logging.getLogger(__name__)


async def handle(context: JobContext) -> None:
    """Send the target's follow-ups still to send; RetryJob while one waits for a retryable error."""
    target_id = str(context.payload["target_id"])
    run = await run_transaction(context.engine, lambda conn: _load(conn, target_id, context))
    if run is None:
        return
    _count(run.target, run.interrupted, "failed")  # counted once the load committed (it may be retried)
    calls = platform_calls.PlatformCallLog(context.clock.now)
    try:
        wait = await run.send_all(calls)
    finally:
        async with context.engine.begin() as conn:
            await calls.flush(conn)
    if wait is not None:
        if context.attempts < context.job.max_attempts:
            raise RetryJob("a network asked to try a follow-up again later", retry_after=wait)
        async with context.engine.begin() as conn:
            left = [p for p in await followups.parts_of_target(conn, target_id) if p["status"] == PartStatus.PENDING]
            await followups.mark_failed(conn, [p["id"] for p in left], "RETRIES_EXHAUSTED", EXHAUSTED_MESSAGE,
                                        context.clock.now())
        _count(run.target, left, "failed")
    # Its own transaction, after the parts' answers are committed, and a writer's (the post locked
    # first): of two runs finishing one post's last steps, the later sees both.
    await run_transaction(context.engine,
                          lambda conn: publishing.finish_posts(conn, [run.post["id"]], context.clock.now()))


@dataclass(frozen=True)
class _Stop:
    """The run ends before its last part: after `wait` seconds the job runs again (None: it ends)."""

    wait: float | None


@dataclass
class _Chain:
    """Where the thread stands while its parts are sent: the post (root), the last reply published
    (the next reply's parent), and whether a reply failed (the later ones cannot be sent)."""

    root: PostRef
    parent: PostRef = field(init=False)
    broken: bool = False

    def __post_init__(self) -> None:
        self.parent = self.root


@dataclass
class FollowupRun:
    """One run of a target's follow-ups job (see the module doc)."""

    context: JobContext
    target: TargetRow
    post: PostRow
    account: AccountRow | None
    parts: list[PartRow]
    media: list[MediaRow]
    interrupted: list[PartRow] = field(default_factory=list)  # failed OUTCOME_UNKNOWN by this load

    async def send_all(self, calls: platform_calls.PlatformCallLog) -> float | None:
        """Send every part still to send, in order. Returns the seconds to wait before the next run
        when a network asked to try again later, else None (every part published or failed)."""
        if not any(p["status"] == PartStatus.PENDING for p in self.parts):
            return None
        adapter = await self._adapter(calls)
        if adapter is None:
            return None
        assert self.target["remote_id"] is not None  # a published target (_load)
        chain = _Chain(PostRef(self.target["remote_id"]))
        for part in self.parts:
            if not await self._due(part, chain):
                continue
            stop = await self._send_one(adapter, part, chain)
            if stop is not None:
                return stop.wait
        return None

    async def _adapter(self, calls: platform_calls.PlatformCallLog) -> PlatformAdapter | None:
        """The network's adapter, or None after failing every pending part (the account is gone or
        not active, or the network has no app configured)."""
        if self.account is None or self.account["status"] != AccountStatus.ACTIVE:
            await self._fail_pending("ACCOUNT_UNAVAILABLE", "The account is disconnected or not active")
            return None
        try:
            return make_adapter(self.target["network"], self.context.resources.platform_http(calls.observe),
                                self.context.resources.settings, self.context.clock)
        except NetworkNotConfigured as exc:
            await self._fail_pending("NETWORK_NOT_CONFIGURED", str(exc))
            return None

    async def _due(self, part: PartRow, chain: _Chain) -> bool:
        """Whether `part` is to be sent now; follows the chain past published and failed replies, and
        fails a reply whose parent was not published (THREAD_BROKEN)."""
        reply = part["kind"] == PartKind.REPLY
        if part["status"] == PartStatus.PUBLISHED:
            if reply:
                assert part["remote_id"] is not None  # set with the status (followups.mark_published)
                chain.parent = PostRef(part["remote_id"], part["remote_extra"] or {})
            return False
        if part["status"] == PartStatus.FAILED:
            chain.broken = chain.broken or reply
            return False
        if part["status"] != PartStatus.PENDING:
            return False
        if reply and chain.broken:
            await self._fail([part], "THREAD_BROKEN", followups.THREAD_BROKEN_MESSAGE)
            return False
        return True

    async def _send_one(self, adapter: PlatformAdapter, part: PartRow, chain: _Chain) -> _Stop | None:
        """Claim, send and record one part. None: on to the next part (this one published or
        failed); a _Stop ends the run (a retryable error, the part pending again: with the wait; the
        token refused: every part left failed)."""
        context, reply, account = self.context, part["kind"] == PartKind.REPLY, self.account
        if account is None:  # _adapter() failed every part already
            return _Stop(None)
        async with context.engine.begin() as conn:
            if not await followups.claim(conn, part["id"], context.clock.now()):
                return None
        parent = chain.parent
        try:
            result = await accounts.call_with_refresh(
                context.engine, adapter, account, context.resources.cipher, context.clock.now(),
                lambda auth: self._send(adapter, auth, part, parent, chain.root))
        except PlatformError as exc:
            backoff = context.resources.settings.publish_backoff_seconds
            refusal = refused(exc, attempts=context.attempts, backoff=backoff)
            if refusal.status == "pending":
                async with context.engine.begin() as conn:
                    await followups.mark_retrying(conn, part["id"], refusal.message, context.clock.now())
                _count(self.target, [part], "pending")
                return _Stop(refusal.wait or backoff)
            log.warning("job %s: follow-up %s of target %s failed with %s: %s", context.id, part["seq"],
                        self.target["id"], refusal.code, refusal.message)
            await self._fail([part], refusal.code or "OUTCOME_UNKNOWN", refusal.message)
            if refusal.code == "TOKEN_EXPIRED":
                await self._fail_pending("TOKEN_EXPIRED", refusal.message)
                return _Stop(None)
            chain.broken = chain.broken or reply
            return None
        async with context.engine.begin() as conn:
            await followups.mark_published(conn, part["id"], result.remote_id, result.url, result.extra,
                                           context.clock.now())
        part["status"] = PartStatus.PUBLISHED
        _count(self.target, [part], "published")
        if reply:
            chain.parent = PostRef.of(result)
        return None

    async def _send(self, adapter: PlatformAdapter, auth: Any, part: PartRow, parent: PostRef,
                    root: PostRef) -> PublishResult:
        content, media_ids = self._content_of(part)
        if part["kind"] == PartKind.COMMENT:
            return await adapter.comment(auth, content, on=root, key=part["id"])
        by_id = {m["id"]: m for m in self.media}
        override = (self.post["platform_content"] or {}).get(self.target["network"]) or {}
        request = PublishRequest(
            text=content,
            media=[media_file(by_id[mid], self.context.resources.storage) for mid in media_ids if mid in by_id],
            options=dict(override.get("options") or {}),
            target_key=part["id"],
        )
        return await adapter.reply(auth, request, parent=parent, root=root)

    def _content_of(self, part: PartRow) -> tuple[str, Sequence[str]]:
        """The text (and, for a thread's reply, the media) the post asks this part to carry."""
        if part["source"] == PartSource.FIRST_COMMENT:
            return str(self.post["first_comment"]), ()
        assert part["source_index"] is not None  # a thread's part
        item = followups.thread_of(self.post)[part["source_index"]]
        return str(item["content"]), tuple(item.get("media_ids") or ())

    async def _fail(self, parts: Sequence[PartRow], code: str, message: str) -> None:
        async with self.context.engine.begin() as conn:
            await followups.mark_failed(conn, [p["id"] for p in parts], code, message, self.context.clock.now())
        for part in parts:
            part["status"] = PartStatus.FAILED
        _count(self.target, parts, "failed")

    async def _fail_pending(self, code: str, message: str) -> None:
        await self._fail([p for p in self.parts if p["status"] == PartStatus.PENDING], code, message)


async def _load(conn: AsyncConnection, target_id: str, context: JobContext) -> FollowupRun | None:
    """The run's target, post, account and parts (written on the first run); parts interrupted
    mid-call fail OUTCOME_UNKNOWN. None when the target is gone or not published."""
    row = (await conn.execute(sa.select(post_targets).where(post_targets.c.id == target_id))).mappings().first()
    if row is None or row["status"] != "published":
        return None
    target = record(TargetRow, row)
    post = record(PostRow, (await conn.execute(
        sa.select(posts).where(posts.c.id == target["post_id"]))).mappings().one())
    account = None
    if target["account_id"]:
        account = (await conn.execute(sa.select(social_accounts).where(
            social_accounts.c.id == target["account_id"]))).mappings().first()
    now = context.clock.now()
    parts = await followups.materialize(conn, target, post, now)
    interrupted = [p for p in parts if p["status"] == PartStatus.PUBLISHING]
    if interrupted:
        await followups.mark_failed(conn, [p["id"] for p in interrupted], "OUTCOME_UNKNOWN",
                                    publishing.INTERRUPTED_MESSAGE, now)
        parts = await followups.parts_of_target(conn, target_id)
    media = (await posts_service.media_of(conn, [post["id"]]))[post["id"]]
    return FollowupRun(context, target, post, record(AccountRow, account) if account else None, parts, media,
                       interrupted)


def _count(target: TargetRow, parts: Sequence[PartRow], status: str) -> None:
    """Count these parts' outcome in the process's metrics (ouipost_followup_outcomes_total)."""
    process_metrics().observe_followups(target["network"], [p["kind"] for p in parts], status)
