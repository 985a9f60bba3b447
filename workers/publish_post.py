"""`publish_post`: send a post to each of its networks, exactly once per target.

Per target: pending -> publishing (committed before the network is called) -> published | failed,
or back to pending after a retryable error (the job then retries, honouring the network's
retry-after). See ouipost/publishing.py for the state machine and why a target found in
`publishing` is never sent again blindly.

Throughput: a job is one post, but its database steps are not its own transactions. Each worker
process has one `Publisher` (built with its resources, workers/resources.py) whose two group
commits (ouipost/db/batch.py) write the steps of every post in flight together: "start" (move due
posts to publishing, pacing's answers, targets to publishing) and "finish" (outcomes, analytics
rows, slots given back, platform calls, final statuses and events). A post's targets are sent
concurrently. So a burst of posts costs a few transactions per batch of posts instead of a dozen
per target, and an idle worker still writes each step at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost import accounts, pacing, platform_calls, publishing, queue
from ouipost.clock import Clock
from ouipost.config import Settings
from ouipost.crypto import Cipher
from ouipost.db.batch import GroupCommit
from ouipost.events import record_events
from ouipost.metrics import process_metrics
from ouipost.platforms import NetworkNotConfigured, make_adapter
from ouipost.platforms.base import (
    MediaFile,
    NotSupportedError,
    PermanentError,
    PlatformError,
    PublishRequest,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.http import CallObserver, PlatformHttp
from ouipost.platforms.registry import get_platform
from ouipost.posts import validation
from ouipost.publishing import Outcome, RunPlan, RunRequest
from ouipost.queue import Job, RetryJob
from ouipost.storage import Storage
from ouipost.text import effective_text
from workers.worker import JobContext

KIND = publishing.PUBLISH_KIND
log = logging.getLogger(__name__)
MEDIA_URL_TTL = 6 * 3600  # networks fetch pull-from-URL media minutes to hours after the call
# Every slot of a network busy: the run waits in place (rounds of a moment each) this long at most,
# then hands the post to a fresh job instead of keeping its worker slot.
BUSY_WAIT_SECONDS = 30.0
EXHAUSTED_MESSAGE = "The network kept answering with temporary errors"
# The database unreachable while the networks' answers are in hand: writing them is tried again this
# long (every ANSWER_WRITE_PAUSE s) before giving up, so that a short outage does not turn known
# outcomes into OUTCOME_UNKNOWN. Below the default 30 s lease, so the job is normally still ours.
ANSWER_WRITE_SECONDS = 25.0
ANSWER_WRITE_PAUSE = 0.5


async def handle(context: JobContext) -> None:
    """Publish every pending target of the post in the payload. Raises RetryJob while some target
    waits for a retryable error to pass; the post reaches a final status otherwise.

    A target held back by account pacing stays pending and the post gets a fresh job at the time
    pacing names (this one hands it its unique key and ends), so waiting never uses up attempts.
    A target that finds every slot of its network busy waits in this run for a moment and asks
    again, while the targets already admitted are on their way. Each network's answer is written
    (and its slot given back) as soon as it arrives; every adapter call is recorded for platform
    health."""
    publisher = context.resources.publisher
    post_id = context.payload["post_id"]
    started = time.monotonic()
    sending: dict[str, asyncio.Task[Sent]] = {}
    held: list[float] = []
    again: RunPlan | None = None
    write_each = False  # True once a target waits for a slot: answers are then written as they come
    while True:
        plan = await publisher.starts.submit(RunRequest(post_id, context.id, frozenset(sending), again))
        if plan.post is None:
            break
        waited_enough = time.monotonic() - started > BUSY_WAIT_SECONDS
        busy = [h for _, _, h in plan.holds if h.busy]
        # A run that waits for slots must give back those it holds as each call ends (holding them
        # while waiting for others could starve every run); one that does not writes all its
        # answers, the slots they free and its conclusion in one go.
        write_each = write_each or (bool(busy) and not waited_enough)
        for target, account, admission in plan.send:
            sending[target["id"]] = asyncio.create_task(
                publisher.publish(context, plan, target, account, admission, write=write_each))
        held += [h.seconds for _, _, h in plan.holds if not h.busy or waited_enough]
        if not busy or waited_enough:
            break
        # Ask again for the busy targets only (with what this plan read), once a slot comes back.
        again = RunPlan(plan.post, holds=[entry for entry in plan.holds if entry[2].busy], media=plan.media)
        await publisher.slot_freed([h.network for h in busy], timeout=min(h.seconds for h in busy))
    if plan.post is None and not sending:
        return  # nothing to do: deleted, unscheduled, not due yet, or held by a paused schedule
    if sending:
        await asyncio.wait(sending.values())
    finish = Finish(context.job, conclude=True, held=held)
    crashed: BaseException | None = None
    for target_id, task in sending.items():
        if task.exception() is not None:
            crashed = crashed or task.exception()  # its outcome is unknown: the next run says so
            continue
        sent = task.result()
        if sent.retry_after is not None:
            finish.retry_after.append(sent.retry_after)
            finish.errored.add(target_id)
        if not sent.written:
            finish.outcomes.append(sent.outcome)
            finish.admissions.append(sent.admission)
            finish.calls += sent.calls
            if sent.outcome.code == "TOKEN_EXPIRED":
                finish.expired_accounts.append(sent.account)
    finish.acknowledge = crashed is None
    finished = await publisher.write_answers(finish)
    context.ack.written = finished.acknowledged
    for admission in finish.admissions:
        if admission.slot is not None:
            publisher.slot_given_back(admission.network)
    if crashed is not None:
        raise crashed
    if finished.retry_after is not None:
        raise RetryJob("some networks asked to try again later", retry_after=finished.retry_after)


@dataclass(frozen=True)
class Sent:
    """One target's call: its outcome, the seconds to wait before sending again (retryable errors
    only), and whether its answer was written already (else the run's conclusion writes it)."""

    outcome: Outcome
    retry_after: float | None
    written: bool
    admission: pacing.Admission
    account: dict[str, Any]
    calls: list[dict[str, Any]]


@dataclass
class Finish:
    """What to write: a network's answers (as they arrive), or the end of a run (`conclude`: the
    post's final status, or what the run learnt: held targets, retry-afters)."""

    job: Job
    outcomes: list[Outcome] = field(default_factory=list)
    admissions: list[pacing.Admission] = field(default_factory=list)  # slots to give back
    calls: list[dict[str, Any]] = field(default_factory=list)
    expired_accounts: list[dict[str, Any]] = field(default_factory=list)
    conclude: bool = False
    held: list[float] = field(default_factory=list)
    retry_after: list[float] = field(default_factory=list)
    errored: set[str] = field(default_factory=set)
    acknowledge: bool = False  # the run ends well unless it must retry: mark its job done with it


@dataclass(frozen=True)
class Finished:
    final: str | None  # the post's final status, None while some target is still to run
    retry_after: float | None  # raise RetryJob with this, None when the job is done
    acknowledged: bool = False  # the job was marked done in this transaction


class Publisher:
    """A worker process's publishing machinery, shared by all its publish jobs (see the module doc)."""

    def __init__(self, engine: AsyncEngine, clock: Clock, settings: Settings, cipher: Cipher, storage: Storage,
                 platform_http: Callable[[CallObserver | None], PlatformHttp]) -> None:
        """Built once per worker process, with its resources (workers/resources.py)."""
        self.settings = settings
        self.clock = clock
        self.cipher = cipher
        self.storage = storage
        self.platform_http = platform_http
        self._slot_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.starts: GroupCommit[RunRequest, RunPlan] = GroupCommit(engine, self._start, name="publish-start")
        self.finishes: GroupCommit[Finish, Finished] = GroupCommit(engine, self._finish, name="publish-finish")
        self.releases: GroupCommit[pacing.Admission, None] = GroupCommit(engine, self._release,
                                                                         name="publish-release")

    async def drain(self) -> None:
        """Wait for the writes in progress (the worker calls it when it stops, so that answers
        already received are written before the process ends)."""
        for batcher in (self.starts, self.releases, self.finishes):
            await batcher.wait_idle()

    async def _start(self, conn: AsyncConnection, requests: list[RunRequest]) -> list[RunPlan]:
        return await publishing.start_runs(conn, requests, self.clock.now(), self.settings.pacing)

    async def _release(self, conn: AsyncConnection, admissions: list[pacing.Admission]) -> list[None]:
        await pacing.release_many(conn, admissions)
        return [None] * len(admissions)

    async def _finish(self, conn: AsyncConnection, items: list[Finish]) -> list[Finished]:
        now = self.clock.now()
        await publishing.record_outcomes(conn, [o for item in items for o in item.outcomes], now)
        await pacing.release_many(conn, [a for item in items for a in item.admissions])
        await platform_calls.record_calls(conn, [c for item in items for c in item.calls])
        expired = [a for item in items for a in item.expired_accounts]
        if expired:
            await record_events(conn, [
                ("account.expired", {"account": accounts.account_view({**a, "status": "expired"}, now=now)},
                 a["workspace_id"]) for a in expired
            ], now=now)
        concluding = [item for item in items if item.conclude]
        for item in concluding:
            if item.retry_after and item.job.attempts >= item.job.max_attempts:
                post_id = item.job.payload["post_id"]
                log.warning("job %s: post %s failed with RETRIES_EXHAUSTED after %d attempt(s): %s", item.job.id,
                            post_id, item.job.attempts, EXHAUSTED_MESSAGE)
                if item.held:  # only the targets that erred give up; the held ones are merely late
                    await publishing.mark_targets_failed(
                        conn, [(t, "RETRIES_EXHAUSTED", EXHAUSTED_MESSAGE) for t in sorted(item.errored)], now)
                else:
                    await publishing.fail_remaining(conn, post_id, EXHAUSTED_MESSAGE, now)
                item.retry_after = []
        finals = await publishing.finish_posts(conn, [item.job.payload["post_id"] for item in concluding], now)
        answers = []
        for item in items:
            post_id = item.job.payload["post_id"]
            final = finals.get(post_id)
            if not item.conclude:
                answers.append(Finished(final, None))
                continue
            if item.held and not item.retry_after and final is None:
                # Late, not failed: a fresh job (attempts from zero) takes over this job's unique key.
                await queue.release_unique_key(conn, item.job)
                await publishing.upsert_publish_job(conn, post_id, now + timedelta(seconds=min(item.held)),
                                                    priority=publishing.PUBLISH_PRIORITY_NOW, now=now)
            answers.append(Finished(final, max(item.retry_after) if item.retry_after and final is None else None))
        # Runs that end well mark their jobs done in this same transaction (one statement for all).
        done = [n for n, (item, answer) in enumerate(zip(items, answers, strict=True))
                if item.conclude and item.acknowledge and answer.retry_after is None]
        by_worker: dict[str, list[int]] = {}
        for n in done:
            by_worker.setdefault(items[n].job.locked_by, []).append(n)
        for worker_id, indexes in by_worker.items():
            ids = [items[n].job.id for n in indexes]
            if await queue.complete_jobs_in(conn, ids, worker_id, now) == len(ids):
                for n in indexes:
                    answers[n] = replace(answers[n], acknowledged=True)
            # else some lease was lost: the worker's own (fenced) acknowledgement reports it
        return answers

    async def publish(self, context: JobContext, plan: RunPlan, target: Mapping[str, Any],
                      account: dict[str, Any], admission: pacing.Admission, *, write: bool) -> Sent:
        """Send one admitted target. With `write`, its answer is written and its network slot given
        back as soon as the call ends (the slot in a small transaction of its own, so the next call
        does not wait for the answers' bigger one)."""
        calls = platform_calls.PlatformCallLog(context.clock.now)
        try:
            outcome, wait = await self.send(context, plan, target, account, calls)
        except Exception:
            process_metrics().publish_outcomes.labels(target["network"], "unknown").inc()
            # Not an answer we understand: the target stays `publishing` (the next run reports
            # OUTCOME_UNKNOWN rather than sending it again); its slot and calls are written now.
            await self._give_back(admission)
            await self.finishes.submit(Finish(context.job, calls=calls.calls))
            raise
        scheduled_at = plan.post.get("scheduled_at") if plan.post else None
        process_metrics().observe_publish(target["network"], outcome.status, scheduled_at, context.clock.now())
        _log_failure(context, target, outcome, wait)
        if write:
            await asyncio.gather(self._give_back(admission), self.write_answers(Finish(
                context.job, [outcome], calls=calls.calls,
                expired_accounts=[account] if outcome.code == "TOKEN_EXPIRED" else [],
            )))
        return Sent(outcome, wait, write, admission, account, calls.calls)

    async def write_answers(self, finish: Finish) -> Finished:
        """Write the networks' answers in `finish`. While the database cannot be reached (the
        connection refused or lost), try again for up to ANSWER_WRITE_SECONDS: those answers exist
        nowhere else, and a target left `publishing` ends OUTCOME_UNKNOWN though it was published.
        Raises the database's error past that, or at once for any other error. (A connection lost
        during COMMIT may have committed: writing again stores the same outcomes again.)"""
        deadline = time.monotonic() + ANSWER_WRITE_SECONDS
        while True:
            try:
                return await self.finishes.submit(finish)
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("cannot write publishing answers (%s); trying again", type(exc).__name__)
                await asyncio.sleep(ANSWER_WRITE_PAUSE)

    async def _give_back(self, admission: pacing.Admission) -> None:
        if admission.slot is None:
            return
        await self.releases.submit(admission)
        self.slot_given_back(admission.network)

    async def slot_freed(self, networks: list[str], *, timeout: float) -> None:
        """Wait until this process gives back a slot of one of `networks`, at most `timeout` seconds
        (slots freed by other processes are found by asking again after the timeout)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for network in set(networks):
            self._slot_waiters.setdefault(network, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            for network in set(networks):
                waiters = self._slot_waiters.get(network, [])
                if waiter in waiters:
                    waiters.remove(waiter)

    def slot_given_back(self, network: str) -> None:
        # One slot: one waiter goes (its next admission may still lose the slot to another process).
        waiters = self._slot_waiters.get(network, [])
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    async def send(self, context: JobContext, plan: RunPlan, target: Mapping[str, Any], account: Mapping[str, Any],
                   calls: platform_calls.PlatformCallLog) -> tuple[Outcome, float | None]:
        """Call the network for a target already marked `publishing`: its outcome, and the seconds
        to wait before trying again (None unless the network answered with a retryable error)."""
        target_id = target["id"]
        http = self.platform_http(calls.observe)
        try:
            adapter = make_adapter(target["network"], http, self.settings)
        except NetworkNotConfigured as exc:
            return Outcome(target_id, "failed", code="NETWORK_NOT_CONFIGURED", message=str(exc)), None
        storage = self.storage if plan.media else None
        try:
            request = _publish_request(plan.post, account, target["network"], plan.media, storage)  # type: ignore[arg-type]
            result = await accounts.call_with_refresh(
                context.engine, adapter, account, self.cipher, self.clock.now(),
                lambda auth: adapter.publish(auth, request),
            )
        except RetryableError as exc:
            # The network's own wait when it gave one; else the queue's backoff for this attempt
            # (a 5xx or a refused connection retried at once would spend every attempt in seconds).
            wait = exc.retry_after if exc.retry_after is not None else queue.retry_delay(
                context.attempts, base=self.settings.publish_backoff_seconds)
            return Outcome(target_id, "pending", message=exc.message), wait
        except TokenExpiredError as exc:
            return Outcome(target_id, "failed", code="TOKEN_EXPIRED",
                           message=f"Reconnect the account: {exc.message}"), None
        except UnknownOutcomeError as exc:
            return Outcome(target_id, "failed", code="OUTCOME_UNKNOWN", message=exc.message), None
        except (PermanentError, NotSupportedError) as exc:
            code = "NOT_SUPPORTED" if isinstance(exc, NotSupportedError) else (exc.code or "REJECTED_BY_NETWORK")
            return Outcome(target_id, "failed", code=str(code), message=exc.message), None
        except PlatformError as exc:  # any other outcome an adapter reports: never re-sent blindly
            return Outcome(target_id, "failed", code="OUTCOME_UNKNOWN", message=exc.message), None
        return Outcome(target_id, "published", remote_id=result.remote_id, url=result.url), None


def _log_failure(context: JobContext, target: Mapping[str, Any], outcome: Outcome, wait: float | None) -> None:
    """A failed or retried target, one WARNING line with its error code: an operator watching a
    worker's output sees why posts fail (the message is the network's or the adapter's, no secret)."""
    if outcome.status == "failed":
        log.warning("job %s: post %s on %s failed with %s: %s", context.job.id, context.payload["post_id"],
                    target["network"], outcome.code, outcome.message)
    elif outcome.status == "pending":
        log.warning("job %s: post %s on %s: temporary error (attempt %d of %d, again in %.0fs): %s",
                    context.job.id, context.payload["post_id"], target["network"], context.job.attempts,
                    context.job.max_attempts, wait or 0.0, outcome.message)


def _publish_request(
    post: Mapping[str, Any], account: Mapping[str, Any], network: str, media: list[dict[str, Any]],
    storage: Storage | None,
) -> PublishRequest:
    """The post as this network gets it: its override, hashtags (plus the account's automatic ones),
    the link in the text or apart, and the media it selects."""
    spec = get_platform(network)
    override = (post["platform_content"] or {}).get(network) or {}
    hashtags = list(override.get("hashtags") or post["hashtags"] or [])
    settings = account["settings"] or {}
    if settings.get("auto_hashtags"):
        present = {h.lower() for h in hashtags}
        hashtags += [t for t in settings.get("default_hashtags") or [] if t.lower() not in present]
    link = override.get("link", post["link"])
    text = effective_text(override.get("content", post["content"]), hashtags, link, spec)
    infos = [validation.MediaInfo(id=m["id"], kind=m["type"], duration=m["duration"], width=m["width"],
                                  height=m["height"]) for m in media]
    selected, _ = validation.select_media(infos, override.get("media_ids"))
    by_id = {m["id"]: m for m in media}
    return PublishRequest(
        text=text,
        title=override.get("title", post["title"]),
        link=link if spec.separate_link_field else None,
        media=[_media_file(by_id[item.id], storage) for item in selected] if storage else [],
        options=dict(override.get("options") or {}),
    )


def _media_file(row: Mapping[str, Any], storage: Storage) -> MediaFile:
    async def stream(chunk_size: int) -> AsyncIterator[bytes]:
        async for chunk in await storage.open(row["storage_key"], chunk_size):
            yield chunk

    return MediaFile(
        kind="video" if row["type"] == "video" else "image", mime_type=row["mime_type"], size=row["size"],
        url=storage.url(row["storage_key"], expires_in=MEDIA_URL_TTL), stream=stream, filename=row["filename"],
        width=row["width"], height=row["height"], duration=row["duration"], alt_text=row["alt_text"],
    )
