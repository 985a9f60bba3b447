"""`publish_post`: send a post to each of its networks, exactly once per target.

A run of a post's job goes through three phases, each a method of `PublishRun`:

    admit     `starts` group commit (publishing.start_runs): a due scheduled post moves to
              publishing; each pending target gets pacing's answer, a `Send` (the target moves
              to `publishing`, committed before any call) or a `Held` (it stays pending).
              Held because every slot of its network is busy: the run waits for a slot to come
              back and asks again, BUSY_WAIT_SECONDS at most. Held by its account's pace: late.
    send      every `Send` is called as soon as it is admitted, each in a task of its own; a run
              that waits for slots writes each answer (and gives its slot back) as it arrives.
    conclude  `finishes` group commit: the answers not written yet (`Answers`: outcomes, the
              slots they free, the calls made, account.expired events) and what the run learnt
              (`Conclusion`): RETRIES_EXHAUSTED past the last attempt, the post's final status
              and its event, a fresh job at the turn of the targets pacing held, the job marked
              done in the same transaction. Else RetryJob after the longest wait a network
              named, or the crash of a call raised again.

The target's state machine (post_targets.status; ouipost/publishing/service.py writes every move):

      schedule, publish now
        (prepare_targets)
               |
               v                   another target on the same account, the account disconnected
    +-----> pending ------------------------------------------------------------> cancelled
    |       |  ^  |  |
    |       +--+  |  +--- account gone or not active ----------------------------> failed ACCOUNT_UNAVAILABLE
    |   held by   |  +--- still erring after the job's last attempt -------------> failed RETRIES_EXHAUSTED
    |   pacing    |
    |             | admitted (committed before the call; attempts + 1)
    |             v
    |       publishing ---- the network's answer ---------------------------------> published (remote id, URL)
    |        |  |  |
    |        |  |  +----- refused, or its answer lost ----------------------------> failed TOKEN_EXPIRED,
    |        |  |                                                                   NOT_SUPPORTED, OUTCOME_UNKNOWN,
    |        |  |                                                                   REJECTED_BY_NETWORK, ...
    |        |  +-------- still `publishing` when a later run reads it -----------> failed OUTCOME_UNKNOWN
    |        |            (a worker died mid-call, or the call crashed):
    |        |            never sent again blindly
    +--------+
      retryable error (RETRYING): the job runs again after the network's wait, or the backoff

    failed -> pending: the user publishes again (POST /api/posts/{id}/publish), or the account is
    reconnected (TOKEN_EXPIRED and ACCOUNT_UNAVAILABLE only: those never reached the network).

The post follows its targets: draft | scheduled -> publishing -> published (every target),
partially_published (some) or failed (none), once no target is pending or publishing.

Throughput: a job is one post, but its database steps are not its own transactions. Each worker
process has one `Publisher` (built with its resources, workers/resources.py) whose group commits
(ouipost/db/batch.py) write the steps of every post in flight together: "start" (admit) and
"finish" (answers and conclusions). A post's targets are sent concurrently. So a burst of posts
costs a few transactions per batch of posts instead of a dozen per target, and an idle worker
still writes each step at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ouipost.accounts import service as accounts
from ouipost.accounts.statuses import AccountStatus
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.core.crypto import Cipher
from ouipost.core.metrics import process_metrics
from ouipost.db.batch import GroupCommit
from ouipost.db.rows import AccountRow, MediaRow, PostRow, TargetRow
from ouipost.jobs import queue
from ouipost.jobs.queue import Job, RetryJob
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
from ouipost.platforms.text import effective_text
from ouipost.posts import followups, validation
from ouipost.publishing import pacing, platform_calls
from ouipost.publishing import service as publishing
from ouipost.publishing.service import Held, Outcome, RunPlan, RunRequest, Send
from ouipost.storage import Storage
from ouipost.webhooks.event_types import EventType
from ouipost.webhooks.events import record_events
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
    """Publish every pending target of the post in the payload: admit, send, conclude (see the
    module doc). Raises RetryJob while some target waits for a retryable error to pass; the post
    reaches a final status otherwise.

    A target held back by account pacing stays pending and the post gets a fresh job at the time
    pacing names (this one hands it its unique key and ends), so waiting never uses up attempts.
    A target that finds every slot of its network busy waits in this run for a moment and asks
    again, while the targets already admitted are on their way. Every adapter call is recorded
    for platform health."""
    run = PublishRun(context)
    if not await run.admit():
        return  # nothing to do: deleted, unscheduled, not due yet, or held by a paused schedule
    await run.conclude(await run.sent())


# --- the records a run passes between its phases ---------------------------------------------------


@dataclass(frozen=True)
class Answers:
    """What the networks said, to write: the targets' outcomes, the network slots to give back in
    the same transaction, every adapter call made (platform health), the accounts found expired
    (each gets an account.expired event)."""

    outcomes: tuple[Outcome, ...] = ()
    slots: tuple[pacing.Admission, ...] = ()
    calls: tuple[dict[str, Any], ...] = ()
    expired_accounts: tuple[AccountRow, ...] = ()

    @classmethod
    def joined(cls, parts: Iterable[Answers]) -> Answers:
        parts = list(parts)
        return cls(tuple(o for p in parts for o in p.outcomes), tuple(s for p in parts for s in p.slots),
                   tuple(c for p in parts for c in p.calls), tuple(a for p in parts for a in p.expired_accounts))


@dataclass(frozen=True)
class Sent:
    """One target's call: its outcome, the seconds to wait before sending it again (retryable
    errors only), and its answers not written yet (none when written as they arrived)."""

    outcome: Outcome
    retry_after: float | None
    unwritten: Answers


@dataclass(frozen=True)
class Calls:
    """Every call of a run, once all have ended: the calls that answered, and the first that
    crashed (its target stays `publishing`: the next run reports OUTCOME_UNKNOWN, never sends it
    again)."""

    sent: list[Sent]
    crashed: BaseException | None


@dataclass(frozen=True)
class Conclusion:
    """How a run ends, beside its answers: the seconds until the turn of each target pacing held,
    the waits networks asked for after retryable errors (and those targets' ids), and whether the
    job may be marked done with it (no call crashed)."""

    held: tuple[float, ...] = ()
    retry_after: tuple[float, ...] = ()
    errored: frozenset[str] = frozenset()
    acknowledge: bool = True

    @classmethod
    def of(cls, calls: Calls, held: Sequence[float]) -> Conclusion:
        return cls(
            held=tuple(held),
            retry_after=tuple(s.retry_after for s in calls.sent if s.retry_after is not None),
            errored=frozenset(s.outcome.target_id for s in calls.sent if s.retry_after is not None),
            acknowledge=calls.crashed is None,
        )

    def exhausted(self, job: Job) -> bool:
        """Some target asks to be sent again, but this was the job's last attempt."""
        return bool(self.retry_after) and job.attempts >= job.max_attempts


@dataclass(frozen=True)
class Finish:
    """One job's write in the `finishes` group commit: networks' answers, and with a
    `conclusion` the end of its run."""

    job: Job
    answers: Answers
    conclusion: Conclusion | None = None

    @property
    def post_id(self) -> str:
        return str(self.job.payload["post_id"])


@dataclass(frozen=True)
class Finished:
    final: str | None  # the post's final status, None while some target is still to run
    retry_after: float | None  # raise RetryJob with this, None when the job is done
    acknowledged: bool = False  # the job was marked done in this transaction


# --- one run: admit -> send -> conclude --------------------------------------------------------------


@dataclass
class PublishRun:
    """One run of a post's publish job (see the module doc for its phases)."""

    context: JobContext
    started: float = field(default_factory=time.monotonic)
    sending: dict[str, asyncio.Task[Sent]] = field(default_factory=dict)  # target id -> its call
    held: list[float] = field(default_factory=list)  # seconds until the turn of each held target
    write_each: bool = False  # True once a target waits for a slot: answers are written as they come

    @property
    def publisher(self) -> Publisher:
        return self.context.resources.publisher

    async def admit(self) -> bool:
        """Ask pacing for the post's targets and start each admitted one's call at once; while some
        wait for a busy network slot, wait for one to come back and ask again for those. False when
        the post has nothing to run now."""
        again: RunPlan | None = None
        while True:
            plan = await self.publisher.starts.submit(
                RunRequest(self.context.payload["post_id"], self.context.id, frozenset(self.sending), again))
            if plan.post is None:
                return bool(self.sending)
            busy = self._take(plan)
            if not busy:
                return True
            await self.publisher.slot_freed([h.hold.network for h in busy], timeout=min(h.hold.seconds for h in busy))
            again = plan  # asked again: its busy targets only, with what this plan read

    def _take(self, plan: RunPlan) -> list[Held]:
        """Start the calls of the plan's admitted targets and note the waits of those held. Returns
        the busy ones to ask again for (none once the run has waited BUSY_WAIT_SECONDS)."""
        patient = time.monotonic() - self.started <= BUSY_WAIT_SECONDS
        busy = plan.busy if patient else []
        # A run that waits for slots must give back those it holds as each call ends (holding them
        # while waiting for others could starve every run); one that does not writes all its
        # answers, the slots they free and its conclusion in one go.
        self.write_each = self.write_each or bool(busy)
        for send in plan.send:
            self.sending[send.target["id"]] = asyncio.create_task(
                self.publisher.publish(self.context, plan, send, write=self.write_each))
        self.held += [h.hold.seconds for h in plan.held if not (h.busy and patient)]
        return busy

    async def sent(self) -> Calls:
        """Wait until every call of the run has ended."""
        if self.sending:
            await asyncio.wait(self.sending.values())
        tasks = list(self.sending.values())
        crashes = [t.exception() for t in tasks if t.exception() is not None]
        return Calls([t.result() for t in tasks if t.exception() is None], crashes[0] if crashes else None)

    async def conclude(self, calls: Calls) -> None:
        """Write the answers not written yet with the run's conclusion, then end the job: done
        (marked in that transaction), RetryJob after the longest wait a network asked for, or the
        first crash of a call raised again."""
        unwritten = Answers.joined(s.unwritten for s in calls.sent)
        finished = await self.publisher.write_answers(
            Finish(self.context.job, unwritten, Conclusion.of(calls, self.held)))
        self.context.ack.written = finished.acknowledged
        self.publisher.slots_given_back(unwritten.slots)
        if calls.crashed is not None:
            raise calls.crashed
        if finished.retry_after is not None:
            raise RetryJob("some networks asked to try again later", retry_after=finished.retry_after)


# --- the process's machinery: group commits, slot waiters, the network call ------------------------


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
        """Many jobs' writes in one transaction: every answer first; then the runs' conclusions
        (those that gave up, the posts' final statuses, fresh jobs for held targets); then the jobs
        of runs that ended well marked done, one statement per worker."""
        now = self.clock.now()
        await _record_answers(conn, Answers.joined(item.answers for item in items), now)
        ending = [item for item in items if item.conclusion is not None]
        await _give_up_exhausted(conn, ending, now)
        finals = await publishing.finish_posts(conn, [item.post_id for item in ending], now)
        answers = [await _conclude(conn, item, finals.get(item.post_id), now) for item in items]
        return await _acknowledge(conn, items, answers, now)

    async def publish(self, context: JobContext, plan: RunPlan, send: Send, *, write: bool) -> Sent:
        """Send one admitted target. With `write`, its answer is written and its network slot given
        back as soon as the call ends (the slot in a small transaction of its own, so the next call
        does not wait for the answers' bigger one)."""
        calls = platform_calls.PlatformCallLog(context.clock.now)
        try:
            outcome, wait = await self.call_network(context, plan, send, calls)
        except Exception:
            process_metrics().publish_outcomes.labels(send.target["network"], "unknown").inc()
            # Not an answer we understand: the target stays `publishing` (the next run reports
            # OUTCOME_UNKNOWN rather than sending it again); its slot and calls are written now.
            await self._give_back(send.admission)
            await self.finishes.submit(Finish(context.job, Answers(calls=tuple(calls.calls))))
            raise
        scheduled_at = plan.post.get("scheduled_at") if plan.post else None
        process_metrics().observe_publish(send.target["network"], outcome.status, scheduled_at, context.clock.now())
        _log_failure(context, send.target, outcome, wait)
        answers = Answers((outcome,), calls=tuple(calls.calls),
                          expired_accounts=(send.account,) if outcome.code == "TOKEN_EXPIRED" else ())
        if not write:
            return Sent(outcome, wait, replace(answers, slots=(send.admission,)))
        await asyncio.gather(self._give_back(send.admission), self.write_answers(Finish(context.job, answers)))
        return Sent(outcome, wait, Answers())

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

    def slots_given_back(self, admissions: Iterable[pacing.Admission]) -> None:
        """The slots of `admissions` were given back (written): wake a waiter for each."""
        for admission in admissions:
            if admission.slot is not None:
                self.slot_given_back(admission.network)

    def slot_given_back(self, network: str) -> None:
        # One slot: one waiter goes (its next admission may still lose the slot to another process).
        waiters = self._slot_waiters.get(network, [])
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    async def call_network(self, context: JobContext, plan: RunPlan, send: Send,
                           calls: platform_calls.PlatformCallLog) -> tuple[Outcome, float | None]:
        """Call the network for a target already marked `publishing`: its outcome, and the seconds
        to wait before trying again (None unless the network answered with a retryable error)."""
        target_id = send.target["id"]
        http = self.platform_http(calls.observe)
        try:
            adapter = make_adapter(send.target["network"], http, self.settings, self.clock)
        except NetworkNotConfigured as exc:
            return Outcome(target_id, "failed", code="NETWORK_NOT_CONFIGURED", message=str(exc)), None
        storage = self.storage if plan.media else None
        try:
            request = _publish_request(plan.post, send.account, send.target["network"], plan.media, storage)  # type: ignore[arg-type]
            request.target_key = target_id
            result = await accounts.call_with_refresh(
                context.engine, adapter, send.account, self.cipher, self.clock.now(),
                lambda auth: adapter.publish(auth, request),
            )
        except PlatformError as exc:
            refusal = refused(exc, attempts=context.attempts, backoff=self.settings.publish_backoff_seconds)
            return Outcome(target_id, refusal.status, code=refusal.code, message=refusal.message), refusal.wait
        return Outcome(target_id, "published", remote_id=result.remote_id, url=result.url,
                       followups=bool(plan.post and followups.plan(plan.post, send.target["network"]))), None


@dataclass(frozen=True)
class Refusal:
    """How a network's error ends one step (a target or a follow-up): pending again after `wait`
    seconds (retryable: nothing was published), or failed with `code`."""

    status: str  # pending | failed
    message: str
    code: str | None = None
    wait: float | None = None


def refused(exc: PlatformError, *, attempts: int, backoff: float) -> Refusal:
    """The step's end after `exc` on the job's attempt number `attempts`."""
    if isinstance(exc, RetryableError):
        # The network's own wait when it gave one; else the queue's backoff for this attempt
        # (a 5xx or a refused connection retried at once would spend every attempt in seconds).
        wait = exc.retry_after if exc.retry_after is not None else queue.retry_delay(attempts, base=backoff)
        return Refusal("pending", exc.message, wait=wait)
    if isinstance(exc, TokenExpiredError):
        return Refusal("failed", f"Reconnect the account: {exc.message}", "TOKEN_EXPIRED")
    if isinstance(exc, UnknownOutcomeError):
        return Refusal("failed", exc.message, "OUTCOME_UNKNOWN")
    if isinstance(exc, NotSupportedError):
        return Refusal("failed", exc.message, "NOT_SUPPORTED")
    if isinstance(exc, PermanentError):
        return Refusal("failed", exc.message, str(exc.code or "REJECTED_BY_NETWORK"))
    # Any other outcome an adapter reports: never re-sent blindly.
    return Refusal("failed", exc.message, "OUTCOME_UNKNOWN")


# --- the `finishes` transaction, step by step ------------------------------------------------------


async def _record_answers(conn: AsyncConnection, answers: Answers, now: datetime) -> None:
    """Outcomes (with analytics rows for the published), slots given back, calls recorded, and an
    account.expired event for each account a network refused."""
    await publishing.record_outcomes(conn, answers.outcomes, now)
    await pacing.release_many(conn, answers.slots)
    await platform_calls.record_calls(conn, answers.calls)
    if answers.expired_accounts:
        await record_events(conn, [
            (EventType.ACCOUNT_EXPIRED,
             {"account": accounts.account_view({**a, "status": AccountStatus.EXPIRED}, now=now)}, a["workspace_id"])
            for a in answers.expired_accounts
        ], now=now)


async def _give_up_exhausted(conn: AsyncConnection, ending: Sequence[Finish], now: datetime) -> None:
    """Runs still retrying after their job's last attempt: the targets that erred fail
    RETRIES_EXHAUSTED (all pending ones when pacing held none; the held ones are merely late)."""
    for item in ending:
        conclusion = item.conclusion
        if conclusion is None or not conclusion.exhausted(item.job):
            continue
        log.warning("job %s: post %s failed with RETRIES_EXHAUSTED after %d attempt(s): %s", item.job.id,
                    item.post_id, item.job.attempts, EXHAUSTED_MESSAGE)
        if conclusion.held:
            await publishing.mark_targets_failed(
                conn, [(t, "RETRIES_EXHAUSTED", EXHAUSTED_MESSAGE) for t in sorted(conclusion.errored)], now)
        else:
            await publishing.fail_remaining(conn, item.post_id, EXHAUSTED_MESSAGE, now)


async def _conclude(conn: AsyncConnection, item: Finish, final: str | None, now: datetime) -> Finished:
    """What a write tells its run: the post's final status, and the wait before the job runs again
    (the longest a network asked for; None when done or given up). A run that only pacing held
    back hands the post to a fresh job at the earliest held target's turn."""
    conclusion = item.conclusion
    if conclusion is None:
        return Finished(final, None)
    retry_after = () if conclusion.exhausted(item.job) else conclusion.retry_after
    if conclusion.held and not retry_after and final is None:
        # Late, not failed: a fresh job (attempts from zero) takes over this job's unique key.
        await queue.release_unique_key(conn, item.job)
        await publishing.upsert_publish_job(conn, item.post_id, now + timedelta(seconds=min(conclusion.held)),
                                            priority=publishing.PUBLISH_PRIORITY_NOW, now=now)
    return Finished(final, max(retry_after) if retry_after and final is None else None)


async def _acknowledge(conn: AsyncConnection, items: Sequence[Finish], answers: list[Finished],
                       now: datetime) -> list[Finished]:
    """Runs that end well mark their jobs done in this same transaction (one statement per worker);
    a job whose lease was lost stays for the worker's own fenced acknowledgement to report."""
    by_worker: dict[str, list[int]] = {}
    for n, (item, answer) in enumerate(zip(items, answers, strict=True)):
        if item.conclusion is not None and item.conclusion.acknowledge and answer.retry_after is None:
            by_worker.setdefault(item.job.locked_by, []).append(n)
    for worker_id, indexes in by_worker.items():
        ids = [items[n].job.id for n in indexes]
        if await queue.complete_jobs_in(conn, ids, worker_id, now) == len(ids):
            for n in indexes:
                answers[n] = replace(answers[n], acknowledged=True)
    return answers


# --- what a network gets --------------------------------------------------------------------------


def _log_failure(context: JobContext, target: TargetRow, outcome: Outcome, wait: float | None) -> None:
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
    post: PostRow, account: AccountRow, network: str, media: list[MediaRow], storage: Storage | None,
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
    # Without an override the post gets its media less those its thread's parts name (followups).
    in_thread = followups.thread_media_ids(followups.thread_of(post)) if override.get("media_ids") is None else set()
    infos = [validation.MediaInfo(id=m["id"], kind=m["type"], duration=m["duration"], width=m["width"],
                                  height=m["height"]) for m in media if m["id"] not in in_thread]
    selected, _ = validation.select_media(infos, override.get("media_ids"))
    by_id = {m["id"]: m for m in media}
    return PublishRequest(
        text=text,
        title=override.get("title", post["title"]),
        link=link if spec.separate_link_field else None,
        media=[media_file(by_id[item.id], storage) for item in selected] if storage else [],
        options=dict(override.get("options") or {}),
    )


def media_file(row: MediaRow, storage: Storage) -> MediaFile:
    async def stream(chunk_size: int) -> AsyncIterator[bytes]:
        async for chunk in await storage.open(row["storage_key"], chunk_size):
            yield chunk

    return MediaFile(
        kind="video" if row["type"] == "video" else "image", mime_type=row["mime_type"], size=row["size"],
        url=storage.url(row["storage_key"], expires_in=MEDIA_URL_TTL), stream=stream, filename=row["filename"],
        width=row["width"], height=row["height"], duration=row["duration"], alt_text=row["alt_text"],
    )
