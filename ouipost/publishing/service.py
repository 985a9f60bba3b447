"""Publishing: schedule, unschedule and publish posts; the target state machine the worker drives.

A post has one target per requested entry. Before a network is called its target moves
pending -> publishing (committed); the network's answer is stored once the post's calls have ended
(published with remote id, or failed with a code; the post's calls run together, so that is the
slowest of them). A target found in `publishing` by a later run
means a worker died mid-call: the post may or may not exist on the network, so it is failed with
OUTCOME_UNKNOWN rather than sent again; the user can retry explicitly.

Post status follows its targets: publishing while any is pending or publishing; then published (all
published), partially_published (some), failed (none). The whole state machine, and the phases of a
run (admit: `start_runs`, which answers each target `Send` or `Held`; send; conclude), are drawn in
workers/publish_post.py's module doc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ouipost.analytics import service as analytics
from ouipost.core import errors
from ouipost.db.batch import NOW, expanding, json_by_key, json_value_of
from ouipost.db.rows import AccountRow, MediaRow, PartRow, PostRow, ScheduleRow, TargetRow, record, records
from ouipost.db.tables import post_targets, posts, social_accounts
from ouipost.db.types import UTCDateTime
from ouipost.jobs import queue
from ouipost.posts import followups, service, statuses, validation
from ouipost.posts.rules import default_accounts
from ouipost.posts.statuses import TARGET_OPEN, PostStatus, TargetStatus
from ouipost.publishing import pacing
from ouipost.webhooks.event_types import EventType
from ouipost.webhooks.events import record_event, record_events

PUBLISH_KIND = "publish_post"
PUBLISH_QUEUE = "publish"
PUBLISH_PRIORITY_NOW = 10
PUBLISH_PRIORITY_SCHEDULED = 50
PUBLISH_MAX_ATTEMPTS = 8


FOLLOWUPS_KIND = "publish_followups"
FOLLOWUPS_MAX_ATTEMPTS = 8


def publish_job_key(post_id: str) -> str:
    return f"publish:{post_id}"


def followups_job_key(target_id: str) -> str:
    return f"followups:{target_id}"


async def enqueue_followups(conn: AsyncConnection, target_ids: Sequence[str], now: datetime) -> None:
    """A `publish_followups` job for each target (one live job per target), to run at once."""
    for target_id in target_ids:
        await queue.enqueue(
            conn, kind=FOLLOWUPS_KIND, payload={"target_id": target_id}, queue=PUBLISH_QUEUE, run_at=now,
            priority=PUBLISH_PRIORITY_NOW, unique_key=followups_job_key(target_id),
            max_attempts=FOLLOWUPS_MAX_ATTEMPTS, now=now,
        )


# --- preparing targets ---------------------------------------------------------------------------


async def prepare_targets(
    conn: AsyncConnection, post: PostRow, *, only_statuses: Sequence[str] = ("pending",)
) -> list[TargetRow]:
    """Resolve every target in `only_statuses` to an active account and check the media rules.

    A network name takes the network's default account; two targets that land on the same account
    are one publication (the later is cancelled as a duplicate). Raises 422 VALIDATION_ERROR keyed by
    network when a target has no active account or the post breaks a rule that needs media.
    """
    targets = [t for t in (await service.targets_of(conn, [post["id"]]))[post["id"]] if t["status"] in only_statuses]
    if not targets:
        raise errors.Conflict("This post has nothing left to publish")
    defaults = await default_accounts(conn, post["workspace_id"], {t["network"] for t in targets})
    wanted_ids = {t["account_id"] for t in targets if t["account_id"]} | set(defaults.values())
    accounts = {
        a["id"]: a for a in records(AccountRow, await conn.execute(
            sa.select(social_accounts).where(social_accounts.c.id.in_(wanted_ids))
        ))
    } if wanted_ids else {}
    chosen = _choose_accounts(targets, defaults, accounts)
    media = (await service.media_of(conn, [post["id"]]))[post["id"]]
    draft = _draft_of(post, targets, media, [accounts[a] for a in chosen.resolved.values()])
    for network, network_problems in validation.validate_for_networks(draft, require_media=True).items():
        chosen.problems.setdefault(network, []).extend(network_problems)
    if chosen.problems:
        raise errors.ValidationError("Some targets cannot be published", details=chosen.problems)

    for target_id, account_id in chosen.resolved.items():
        await conn.execute(post_targets.update().where(post_targets.c.id == target_id).values(account_id=account_id))
    if chosen.duplicates:
        await conn.execute(post_targets.update().where(post_targets.c.id.in_(chosen.duplicates)).values(
            status="cancelled", error_code="DUPLICATE_TARGET",
            error_message="Another target of this post publishes to the same account",
        ))
    return [t for t in targets if t["id"] in chosen.resolved]


@dataclass
class _ChosenAccounts:
    """Each target's account: `resolved` (target id -> account id), `duplicates` (targets whose
    account an earlier target has), `problems` (by network: targets without an active account)."""

    resolved: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)


def _choose_accounts(targets: Sequence[TargetRow], defaults: Mapping[str, str],
                     accounts: Mapping[str, AccountRow]) -> _ChosenAccounts:
    chosen = _ChosenAccounts()
    seen: set[str] = set()
    for target in targets:
        account_id = target["account_id"] or (None if target["requested"] != target["network"]
                                               else defaults.get(target["network"]))
        account = accounts.get(account_id or "")
        if account is None or account["status"] != "active":
            chosen.problems.setdefault(target["network"], []).append(_unusable(target, account))
        elif account["id"] in seen:
            chosen.duplicates.append(target["id"])
        else:
            seen.add(account["id"])
            chosen.resolved[target["id"]] = account["id"]
    return chosen


def _unusable(target: TargetRow, account: AccountRow | None) -> str:
    """Why the target cannot be published: no account, or one that is not active."""
    if account is None:
        return (f"No active {target['network']} account is connected to this workspace"
                if target["requested"] == target["network"] else f"Account {target['requested']} is disconnected")
    return f"Account {account['name']} is {account['status']}; reconnect it"


def _draft_of(post: PostRow, targets: Sequence[TargetRow], media: Sequence[MediaRow],
              accounts: Sequence[AccountRow]) -> validation.DraftPost:
    """The post as the rules see it, with the chosen accounts' automatic hashtags and limits."""
    extra = {
        a["platform"]: list((a["settings"] or {}).get("default_hashtags") or [])
        for a in accounts if (a["settings"] or {}).get("auto_hashtags")
    }
    return validation.DraftPost(
        content=post["content"], title=post["title"], link=post["link"], hashtags=list(post["hashtags"] or []),
        networks=list(dict.fromkeys(t["network"] for t in targets)),
        platform_content={k: dict(v) for k, v in (post["platform_content"] or {}).items()},
        media=[validation.MediaInfo(id=m["id"], kind=m["type"], duration=m["duration"], width=m["width"],
                                    height=m["height"]) for m in media],
        extra_hashtags=extra,
        account_limits=validation.strictest_limits(
            (a["platform"], (a["metadata"] or {}).get("limits") or {}) for a in accounts
        ),
        thread=followups.thread_of(post), thread_mode=post.get("thread_mode"), first_comment=post.get("first_comment"),
    )


# --- the publish job ------------------------------------------------------------------------------


async def upsert_publish_job(conn: AsyncConnection, post_id: str, run_at: datetime, *, priority: int,
                             now: datetime) -> None:
    """One live publish job per post: move a queued one to `run_at`, else enqueue a new one."""
    if await queue.reschedule_queued(conn, publish_job_key(post_id), run_at, priority=priority):
        return
    await queue.enqueue(
        conn, kind=PUBLISH_KIND, payload={"post_id": post_id}, queue=PUBLISH_QUEUE, run_at=run_at,
        priority=priority, unique_key=publish_job_key(post_id), max_attempts=PUBLISH_MAX_ATTEMPTS, now=now,
    )


async def drop_publish_job(conn: AsyncConnection, post_id: str) -> None:
    """Remove the queued publish job of a post (a running one finds the post unscheduled and stops)."""
    await queue.drop_queued(conn, publish_job_key(post_id))


# --- user actions ---------------------------------------------------------------------------------


async def schedule_post(
    conn: AsyncConnection, post: PostRow, scheduled_at: datetime, timezone: str, now: datetime
) -> PostRow:
    """Schedule (or reschedule) a draft or scheduled post. 409 otherwise; 422 for a past time or a
    target that cannot be published."""
    if post["status"] not in statuses.SCHEDULABLE:
        raise errors.Conflict(f"A {post['status']} post cannot be scheduled", details={"status": post["status"]})
    if scheduled_at <= now:
        raise errors.ValidationError("scheduled_at must be in the future",
                                     details={"scheduled_at": ["must be in the future"]})
    from ouipost.schedules import service as schedules

    await prepare_targets(conn, post)
    await schedules.unqueue_post(conn, post["id"])  # an explicit time replaces a slot
    values = {"status": "scheduled", "scheduled_at": scheduled_at, "scheduled_timezone": timezone, "updated_at": now}
    await conn.execute(posts.update().where(posts.c.id == post["id"]).values(**values))
    await upsert_publish_job(conn, post["id"], scheduled_at, priority=PUBLISH_PRIORITY_SCHEDULED, now=now)
    updated = record(PostRow, {**post, **values})
    await record_event(conn, "post.scheduled", {"post": service.post_view(updated)},
                       workspace_id=post["workspace_id"], now=now)
    return updated


async def unschedule_post(conn: AsyncConnection, post: PostRow, now: datetime) -> PostRow:
    if post["status"] != "scheduled":
        raise errors.Conflict(f"Only scheduled posts can be unscheduled; this one is {post['status']}",
                              details={"status": post["status"]})
    from ouipost.schedules import service as schedules

    values = {"status": "draft", "scheduled_at": None, "scheduled_timezone": None, "updated_at": now}
    await conn.execute(posts.update().where(posts.c.id == post["id"]).values(**values))
    await drop_publish_job(conn, post["id"])
    await schedules.unqueue_post(conn, post["id"])  # the rest of its schedule keep their slots
    return record(PostRow, {**post, **values})


async def request_publish(conn: AsyncConnection, post: PostRow, now: datetime) -> PostRow:
    """Publish now: a draft or scheduled post, or a failed/partially published one again (only its
    failed targets are sent again; published ones are never touched)."""
    status = post["status"]
    reopened: list[str] = []
    if status in statuses.RETRYABLE:
        retried = await conn.execute(post_targets.update().where(
            post_targets.c.post_id == post["id"], post_targets.c.status == "failed",
        ).values(status="pending", error_code=None, error_message=None, updated_at=now))
        # Follow-ups that failed are sent again too (a published target's): never the published ones.
        reopened = await followups.reopen_failed(conn, post["id"], now)
        await enqueue_followups(conn, reopened, now)
        sending_targets = retried.rowcount > 0
    elif status not in statuses.SCHEDULABLE:
        raise errors.Conflict(f"A {status} post cannot be published now", details={"status": status})
    else:
        sending_targets = True
    if sending_targets or not reopened:
        await prepare_targets(conn, post)  # 409 when nothing is left to publish
    values = {"status": "publishing", "updated_at": now}
    await conn.execute(posts.update().where(posts.c.id == post["id"]).values(**values))
    if sending_targets:
        await upsert_publish_job(conn, post["id"], now, priority=PUBLISH_PRIORITY_NOW, now=now)
    return record(PostRow, {**post, **values})


# --- what the worker does, in batches (workers/publish_post.py writes many posts' steps at once) -----


@dataclass(frozen=True)
class Send:
    """A target admitted by pacing: committed as `publishing` with its plan (before any network
    call), its account, and the network slot it holds until the network answers."""

    target: TargetRow
    account: AccountRow
    admission: pacing.Admission


@dataclass(frozen=True)
class Held:
    """A target pacing holds back: it stays `pending` (late, not failed). `busy` when every slot of
    its network was taken (its run may ask again in a moment), else its account's pace names the
    seconds until its turn."""

    target: TargetRow
    account: AccountRow
    hold: pacing.Hold

    @property
    def busy(self) -> bool:
        return self.hold.busy


@dataclass
class RunPlan:
    """What one run of a post's publish job does now: `post` None when there is nothing to do;
    else the targets to send now, those pacing held, and the post's media."""

    post: PostRow | None
    send: list[Send] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    media: list[MediaRow] = field(default_factory=list)

    @property
    def busy(self) -> list[Held]:
        """The held targets that wait only for a free slot of their network."""
        return [h for h in self.held if h.busy]


@dataclass(frozen=True)
class RunRequest:
    """A post's run asks to start (`again` None), or asks pacing again for targets of a run already
    started (`again`: the plan whose busy targets to ask for, so nothing is read again)."""

    post_id: str
    job_id: int
    skip: frozenset[str] = frozenset()  # targets this run must leave alone (sent, or waiting a retry-after)
    again: RunPlan | None = None


def slot_holder(job_id: int, target_id: str) -> str:
    return f"job {job_id} {target_id}"


# The batch statements, built once (see ouipost/db/batch.py).
_POSTS_BY_ID = sa.select(posts).where(posts.c.id.in_(expanding())).order_by(posts.c.id)
_POSTS_BY_ID_LOCKED = _POSTS_BY_ID.with_for_update()
_PUBLISHING_BY_ID = _POSTS_BY_ID.where(posts.c.status == "publishing")
_PUBLISHING_BY_ID_LOCKED = _PUBLISHING_BY_ID.with_for_update()
_START_POSTS = (posts.update().where(posts.c.id.in_(expanding()), posts.c.status == "scheduled")
                .values(status="publishing", updated_at=NOW))
_TARGETS_TO_RUN = (sa.select(post_targets).where(post_targets.c.post_id.in_(expanding()),
                                                  post_targets.c.status.in_(("pending", "publishing")))
                   .order_by(post_targets.c.id))
_TARGETS_TO_RUN_LOCKED = _TARGETS_TO_RUN.with_for_update()
_PUBLISHING_TARGETS = sa.select(post_targets.c.id).where(post_targets.c.id.in_(expanding()),
                                                         post_targets.c.status == "publishing")
_ACCOUNTS_BY_ID = sa.select(social_accounts).where(social_accounts.c.id.in_(expanding()))
_TARGETS_TO_PUBLISHING = (
    post_targets.update().where(post_targets.c.id.in_(expanding()), post_targets.c.status == "pending")
    .values(status="publishing", attempts=post_targets.c.attempts + 1, updated_at=NOW)
)
_BY_TARGET_ID = post_targets.c.id == sa.bindparam("target_id")
_TARGET_PUBLISHED = post_targets.update().where(_BY_TARGET_ID).values(
    status="published", remote_id=sa.bindparam("b_remote_id"), remote_url=sa.bindparam("b_remote_url"),
    published_at=NOW, error_code=None, error_message=None, updated_at=NOW,
)
# The same for many targets in one statement on MySQL/MariaDB (see ouipost.db.batch.json_value_of).
_TARGETS_PUBLISHED_BY_JSON = post_targets.update().where(post_targets.c.id.in_(expanding())).values(
    status="published", remote_id=json_value_of("outcomes", post_targets.c.id, "r"),
    remote_url=json_value_of("outcomes", post_targets.c.id, "u"),
    published_at=NOW, error_code=None, error_message=None, updated_at=NOW,
)
_TARGET_FAILED = post_targets.update().where(_BY_TARGET_ID).values(
    status="failed", error_code=sa.bindparam("code"), error_message=sa.bindparam("message"), updated_at=NOW,
)
_TARGET_RETRYING = post_targets.update().where(_BY_TARGET_ID).values(
    status="pending", error_code="RETRYING", error_message=sa.bindparam("message"), updated_at=NOW,
)
_POST_FINISHED = posts.update().where(posts.c.id == sa.bindparam("post_id")).values(
    status=sa.bindparam("final"), published_at=sa.bindparam("b_published_at", type_=UTCDateTime()), updated_at=NOW,
)


def _locked(conn: AsyncConnection, plain: Any, locked: Any) -> Any:
    return plain if conn.dialect.name == "sqlite" else locked


async def start_runs(conn: AsyncConnection, requests: Sequence[RunRequest], now: datetime,
                     config: pacing.PacingConfig) -> list[RunPlan]:
    """Begin a run of many posts' publish jobs in the caller's transaction (`write_transaction`):
    due scheduled posts move to publishing; each pending target gets pacing's answer, and the
    admitted ones move pending -> publishing (so they are committed as such before any network
    call). A target found in `publishing` (its last run died mid-call) fails OUTCOME_UNKNOWN; a
    target whose account is gone or not active fails ACCOUNT_UNAVAILABLE. One plan per request.
    """
    begun = await _begin_runs(conn, [r for r in requests if r.again is None], now)
    runs = [_run_of(request, begun) for request in requests]
    failures, asking = _triage(runs)
    answers = await pacing.admit_many(conn, [a.ask for a in asking], now=now, config=config)
    await _move_to_publishing(conn, _hold_or_admit(asking, answers), now)
    await mark_targets_failed(conn, failures, now)
    return [run.plan for run in runs]


@dataclass(frozen=True)
class _Candidate:
    """A target read for a run, pacing not asked yet: its account is None when it is gone."""

    target: TargetRow
    account: AccountRow | None


@dataclass
class _Run:
    """A plan `start_runs` is building, with the targets it may send (`job_id` names their slots)."""

    plan: RunPlan
    job_id: int
    candidates: list[_Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class _Asking:
    """A target pacing is asked about, and the plan its answer goes to."""

    plan: RunPlan
    target: TargetRow
    account: AccountRow
    ask: pacing.Ask


@dataclass(frozen=True)
class _Admitted:
    plan: RunPlan
    send: Send


def _run_of(request: RunRequest, begun: Mapping[tuple[str, int], _Run]) -> _Run:
    """The run a request builds: a plan just begun, or (`again`) the busy targets of its earlier
    plan; less the targets it skips."""
    if request.again is None:
        run = begun.get((request.post_id, request.job_id)) or _Run(RunPlan(None), request.job_id)
    else:
        run = _Run(RunPlan(request.again.post, media=request.again.media), request.job_id,
                   [_Candidate(h.target, h.account) for h in request.again.busy])
    run.candidates = [c for c in run.candidates if c.target["id"] not in request.skip]
    return run


def _triage(runs: Sequence[_Run]) -> tuple[list[tuple[str, str, str]], list[_Asking]]:
    """The candidates that fail without a call (id, code, message), and those pacing is asked about."""
    failures: list[tuple[str, str, str]] = []
    asking: list[_Asking] = []
    for run in runs:
        for candidate in run.candidates:
            target, account = candidate.target, candidate.account
            if target["status"] == "publishing":
                failures.append((target["id"], "OUTCOME_UNKNOWN", INTERRUPTED_MESSAGE))
            elif account is None or account["status"] != "active":
                failures.append((target["id"], "ACCOUNT_UNAVAILABLE",
                                 "The account is disconnected or needs reconnecting"))
            else:
                asking.append(_Asking(run.plan, target, account, pacing.Ask(
                    target["network"], account["id"], slot_holder(run.job_id, target["id"]))))
    return failures, asking


def _hold_or_admit(asking: Sequence[_Asking], answers: Sequence[pacing.Admission | pacing.Hold],
                   ) -> dict[str, _Admitted]:
    """Pacing's answers: each held target joins its plan's `held`; the admitted ones, by target id."""
    admitted: dict[str, _Admitted] = {}
    for asked, answer in zip(asking, answers, strict=True):
        if isinstance(answer, pacing.Hold):
            asked.plan.held.append(Held(asked.target, asked.account, answer))
        else:
            admitted[asked.target["id"]] = _Admitted(asked.plan, Send(asked.target, asked.account, answer))
    return admitted


async def _move_to_publishing(conn: AsyncConnection, admitted: dict[str, _Admitted], now: datetime) -> None:
    """The admitted targets move pending -> publishing (one UPDATE) and join their plans' `send`."""
    if not admitted:
        return
    moved = await conn.execute(_TARGETS_TO_PUBLISHING, {"ids": list(admitted), "now": now})
    if moved.rowcount != len(admitted):
        # Only a target asked for again can have changed since it was read (its post was
        # deleted meanwhile): it is not sent, and its slot goes back.
        now_publishing = set((await conn.execute(_PUBLISHING_TARGETS, {"ids": list(admitted)})).scalars())
        gone = [entry.send.admission for target_id, entry in admitted.items() if target_id not in now_publishing]
        await pacing.release_many(conn, gone)
        admitted = {k: v for k, v in admitted.items() if k in now_publishing}
    for entry in admitted.values():
        entry.send.target["status"] = "publishing"
        entry.plan.send.append(entry.send)


async def _begin_runs(conn: AsyncConnection, requests: Sequence[RunRequest], now: datetime,
                      ) -> dict[tuple[str, int], _Run]:
    """The runs of posts to run now, keyed by (post, job), each with its targets to run and their
    accounts as candidates (pacing not asked yet); due scheduled posts move to publishing."""
    if not requests:
        return {}
    ids = sorted({r.post_id for r in requests})
    found = {p["id"]: p for p in records(PostRow, await conn.execute(
        _locked(conn, _POSTS_BY_ID, _POSTS_BY_ID_LOCKED), {"ids": ids}))}
    due = [p for p in found.values() if p["status"] == "scheduled"
           and (p["scheduled_at"] is None or p["scheduled_at"] <= now + timedelta(seconds=1))]
    from ouipost.schedules import service as schedules

    held = await schedules.held_posts(conn, [p["id"] for p in due])
    starting = [p["id"] for p in due if p["id"] not in held]
    if starting:
        await conn.execute(_START_POSTS, {"ids": starting, "now": now})
        for post_id in starting:
            found[post_id]["status"] = "publishing"
    running = {pid: p for pid, p in found.items() if p["status"] == "publishing"}
    if not running:
        return {}
    runs = {(r.post_id, r.job_id): _Run(RunPlan(running[r.post_id]), r.job_id)
            for r in requests if r.post_id in running}
    targets = records(TargetRow, await conn.execute(
        _locked(conn, _TARGETS_TO_RUN, _TARGETS_TO_RUN_LOCKED), {"ids": sorted(running)}))
    account_ids = sorted({t["account_id"] for t in targets if t["account_id"]})
    accounts = {a["id"]: a for a in records(AccountRow, await conn.execute(
        _ACCOUNTS_BY_ID, {"ids": account_ids}))} if account_ids else {}
    by_post = {key[0]: run for key, run in runs.items()}
    for target in targets:
        by_post[target["post_id"]].candidates.append(_Candidate(target, accounts.get(target["account_id"] or "")))
    for post_id, media in (await service.media_of(conn, sorted(running))).items():
        by_post[post_id].plan.media = media
    return runs


INTERRUPTED_MESSAGE = ("Publishing was interrupted after the request may have reached the network; check the account "
                       "and publish again if the post is missing")


@dataclass(frozen=True)
class Outcome:
    """What the network said about one target: published (remote id and URL), failed (a code), or
    pending again (a retryable error: nothing was published)."""

    target_id: str
    status: str  # published | failed | pending
    remote_id: str | None = None
    url: str | None = None
    code: str | None = None
    message: str | None = None
    followups: bool = False  # published, and the post has follow-ups for this network (followups.plan)


async def record_outcomes(conn: AsyncConnection, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Store many targets' outcomes (one statement per kind of outcome, run for each row); published
    targets get their analytics rows and first sync in the same transaction."""
    published = [o for o in outcomes if o.status == "published"]
    if published:
        by_json = json_by_key({o.target_id: {"r": o.remote_id, "u": o.url} for o in published}) \
            if conn.dialect.name == "mysql" and len(published) > 1 else None
        if by_json is not None:
            await conn.execute(_TARGETS_PUBLISHED_BY_JSON,
                               {"ids": [o.target_id for o in published], "outcomes": by_json, "now": now})
        else:
            await conn.execute(_TARGET_PUBLISHED, [
                {"target_id": o.target_id, "b_remote_id": o.remote_id, "b_remote_url": o.url, "now": now}
                for o in published
            ])
        await analytics.on_targets_published(conn, [o.target_id for o in published], now)
        # Targets whose post asks for follow-ups on their network: their job, in this same transaction.
        await enqueue_followups(conn, [o.target_id for o in published if o.followups], now)
    await mark_targets_failed(conn, [(o.target_id, o.code or "OUTCOME_UNKNOWN", o.message or "")
                                     for o in outcomes if o.status == "failed"], now)
    retrying = [{"target_id": o.target_id, "message": (o.message or "")[:2000], "now": now} for o in outcomes
                if o.status == "pending"]
    if retrying:
        await conn.execute(_TARGET_RETRYING, retrying)


async def mark_targets_failed(conn: AsyncConnection, failures: Sequence[tuple[str, str, str]], now: datetime) -> None:
    """Fail many targets (id, code, message)."""
    if failures:
        await conn.execute(_TARGET_FAILED, [{"target_id": t, "code": code[:64], "message": message[:2000], "now": now}
                                            for t, code, message in failures])


async def mark_target_published(conn: AsyncConnection, target_id: str, remote_id: str, url: str | None,
                                now: datetime) -> None:
    """One target published (with its analytics row and first sync): see `record_outcomes`."""
    await record_outcomes(conn, [Outcome(target_id, "published", remote_id=remote_id, url=url)], now)


async def finish_posts(conn: AsyncConnection, post_ids: Sequence[str], now: datetime) -> dict[str, str | None]:
    """Each publishing post among `post_ids` whose targets and follow-ups are all done gets its
    final status and its event (post.published / post.partial / post.failed). Returns each post's
    final status, or None while something remains to run.

    The posts are locked before their targets and parts are read, so that of two transactions
    finishing the last steps of one post (a target's answer, a follow-up's), the later one sees both."""
    ids = sorted(set(post_ids))
    if not ids:
        return {}
    moving = records(PostRow, await conn.execute(
        _locked(conn, _PUBLISHING_BY_ID, _PUBLISHING_BY_ID_LOCKED), {"ids": ids}))
    finals: dict[str, str | None] = dict.fromkeys(ids)
    if not moving:
        return finals
    running = [p["id"] for p in moving]
    targets = await service.targets_of(conn, running)
    parts = await followups.parts_of(conn, running) if any(followups.has_followups(p) for p in moving) else {}
    for post in moving:
        finals[post["id"]] = final_status(targets[post["id"]], post, parts)
    ended = {post_id: final for post_id, final in finals.items() if final is not None}
    moving = [p for p in moving if p["id"] in ended]
    if not moving:
        return finals
    for post in moving:
        # A published target has its published_at (set with the status).
        stamps = [t["published_at"] for t in targets[post["id"]] if t["status"] == "published" and t["published_at"]]
        post.update({"status": ended[post["id"]], "published_at": min(stamps) if stamps else None, "updated_at": now})
    await conn.execute(_POST_FINISHED, [{"post_id": p["id"], "final": p["status"], "b_published_at": p["published_at"],
                                         "now": now} for p in moving])
    kinds: dict[str, EventType] = {
        PostStatus.PUBLISHED: EventType.POST_PUBLISHED, PostStatus.PARTIALLY_PUBLISHED: EventType.POST_PARTIAL,
        PostStatus.FAILED: EventType.POST_FAILED,
    }
    await record_events(conn, [
        (kinds[post["status"]], {"post": service.post_view(post, targets=targets[post["id"]], detail=True,
                                                          parts=parts)},
         post["workspace_id"]) for post in moving
    ], now=now)
    return finals


def final_status(targets: Sequence[TargetRow], post: PostRow | None = None,
                 parts: Mapping[str, Sequence[PartRow]] | None = None) -> str | None:
    """A post's status once its targets (and their follow-ups) are done: published (every target
    but the cancelled ones, and every follow-up), partially_published (some target published, but
    a target or a follow-up failed), failed (no target published); None while any target is pending
    or publishing, or a published target has follow-ups still to send."""
    parts = parts or {}
    counted = [t for t in targets if t["status"] != TargetStatus.CANCELLED]
    if any(t["status"] in TARGET_OPEN for t in counted):
        return None
    if post is not None and any(followups.open_followups(post, t, parts.get(t["id"], ())) for t in counted):
        return None
    published = sum(1 for t in counted if t["status"] == TargetStatus.PUBLISHED)
    if not published:
        return PostStatus.FAILED
    parts_failed = any(p["status"] == followups.PartStatus.FAILED for t in counted for p in parts.get(t["id"], ()))
    return PostStatus.PUBLISHED if published == len(counted) and not parts_failed else PostStatus.PARTIALLY_PUBLISHED


async def fail_remaining(conn: AsyncConnection, post_id: str, message: str, now: datetime) -> None:
    """The job gave up: targets still pending fail, so the post reaches a final status."""
    await conn.execute(post_targets.update().where(
        post_targets.c.post_id == post_id, post_targets.c.status == "pending",
    ).values(status="failed", error_code="RETRIES_EXHAUSTED", error_message=message[:2000], updated_at=now))


def platform_results(targets: Sequence[TargetRow],
                     parts: Mapping[str, Sequence[PartRow]] | None = None) -> list[dict[str, Any]]:
    """The per-network outcome of a publish, as POST /api/posts/{id}/publish shows it, with each
    target's follow-ups (`parts`, by target id: followups.parts_of)."""
    shown = {"published": "success", "failed": "failed", "cancelled": "cancelled"}
    parts = parts or {}
    return [
        {
            "platform": t["network"], "account_id": t["account_id"], "status": shown.get(t["status"], "pending"),
            "post_id": t["remote_id"], "url": t["remote_url"],
            "error": {"code": t["error_code"], "message": t["error_message"]}
            if t["status"] in ("failed", "cancelled") and t["error_code"] else None,
            "parts": [followups.part_view(p) for p in parts.get(t["id"], ())],
        }
        for t in targets
    ]


# Failures that happened before anything reached the network: safe to send again after a reconnect.
NEVER_SENT_CODES = ("TOKEN_EXPIRED", "ACCOUNT_UNAVAILABLE")


async def retry_after_reconnect(conn: AsyncConnection, account_id: str, now: datetime) -> list[str]:
    """An account came back (reconnected): its targets and follow-ups that failed only because it
    was expired are pending again, and their posts publish at once. Returns the post ids queued again."""
    rows = (await conn.execute(
        sa.select(post_targets.c.id, post_targets.c.post_id).where(
            post_targets.c.account_id == account_id, post_targets.c.status == "failed",
            post_targets.c.error_code.in_(NEVER_SENT_CODES),
        )
    )).all()
    parts = await followups.reopen_never_sent(conn, account_id, NEVER_SENT_CODES, now)
    post_ids = sorted({r.post_id for r in rows} | {post_id for _, post_id in parts})
    if not post_ids:
        return []
    if rows:
        await conn.execute(post_targets.update().where(post_targets.c.id.in_([r.id for r in rows])).values(
            status="pending", error_code=None, error_message=None, updated_at=now,
        ))
    await conn.execute(posts.update().where(
        posts.c.id.in_(post_ids), posts.c.status.in_(("failed", "partially_published")),
    ).values(status="publishing", updated_at=now))
    for post_id in sorted({r.post_id for r in rows}):
        await upsert_publish_job(conn, post_id, now, priority=PUBLISH_PRIORITY_NOW, now=now)
    await enqueue_followups(conn, sorted({target_id for target_id, _ in parts}), now)
    return post_ids


# --- schedules (recurring slots) ------------------------------------------------------------------


async def sync_schedule_jobs(conn: AsyncConnection, schedule_id: str, now: datetime) -> None:
    """Give every queued post of a schedule a publish job at its slot time (after a re-plan, a
    resume or new slots); posts a re-plan sent back to draft lose theirs."""
    from ouipost.db.schedule_tables import schedule_entries

    rows = (await conn.execute(
        sa.select(schedule_entries.c.post_id, schedule_entries.c.slot_time, posts.c.status)
        .join(posts, posts.c.id == schedule_entries.c.post_id)
        .where(schedule_entries.c.schedule_id == schedule_id)
    )).all()
    for row in rows:
        if row.status == "scheduled" and row.slot_time is not None:
            await upsert_publish_job(conn, row.post_id, row.slot_time, priority=PUBLISH_PRIORITY_SCHEDULED, now=now)


async def drop_jobs_of_drafts(conn: AsyncConnection, post_ids: Sequence[str]) -> None:
    for post_id in post_ids:
        await drop_publish_job(conn, post_id)


async def apply_moves(conn: AsyncConnection, moves: Sequence[Any], now: datetime) -> None:
    """Follow a schedule re-plan: move each post's job to its new slot, or drop it (back to draft)."""
    for move in moves:
        if move.slot_time is None:
            await drop_publish_job(conn, move.post_id)
        else:
            await upsert_publish_job(conn, move.post_id, move.slot_time, priority=PUBLISH_PRIORITY_SCHEDULED, now=now)


async def change_schedule(
    conn: AsyncConnection, schedule: ScheduleRow, changes: Mapping[str, Any], now: datetime
) -> tuple[ScheduleRow, list[Any], list[Any]]:
    """Update a schedule (see schedules.service.update_schedule) and move its posts' publish jobs
    with the re-plan; answers (row, slots, moves). Shared by PUT /api/schedules/{id} and the UI."""
    from ouipost.schedules import service as schedules

    row, slots, moves = await schedules.update_schedule(conn, schedule, changes, now)
    await apply_moves(conn, moves, now)
    await sync_schedule_jobs(conn, row["id"], now)
    return row, slots, moves


async def remove_schedule(conn: AsyncConnection, schedule: ScheduleRow, now: datetime) -> list[str]:
    """Delete a schedule; its queued posts return to draft and lose their publish jobs. Answers
    their ids. Shared by DELETE /api/schedules/{id} and the UI."""
    from ouipost.schedules import service as schedules

    drafted = await schedules.delete_schedule(conn, schedule, now)
    await drop_jobs_of_drafts(conn, drafted)
    return drafted


async def queue_into_schedule(
    conn: AsyncConnection, post: PostRow, schedule_id: str, now: datetime
) -> PostRow:
    """Give the post the earliest free slot of a schedule that covers all its networks (409 when none
    within 56 days) and its publish job."""
    from ouipost.schedules import service as schedules

    if post["status"] not in statuses.SCHEDULABLE:
        raise errors.Conflict(f"A {post['status']} post cannot be scheduled", details={"status": post["status"]})
    schedule = await schedules.get_schedule(conn, post["workspace_id"], schedule_id, for_update=True)
    await prepare_targets(conn, post)
    entry = await schedules.queue_post(conn, schedule, post, None, now)
    assert entry["slot_time"] is not None  # queue_post gives the post a slot, or raises
    await upsert_publish_job(conn, post["id"], entry["slot_time"], priority=PUBLISH_PRIORITY_SCHEDULED, now=now)
    updated = record(PostRow, (await conn.execute(sa.select(posts).where(posts.c.id == post["id"]))).mappings().one())
    await record_event(conn, "post.scheduled", {"post": service.post_view(updated)},
                       workspace_id=post["workspace_id"], now=now)
    return updated
