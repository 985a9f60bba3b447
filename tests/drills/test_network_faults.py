"""Drill: 20 % of the networks' answers go wrong at random during a 600-post burst on X, Bluesky and
LinkedIn (two worker processes on MariaDB): rate limits with each network's own headers, 5xx,
answers that never come (the call handled, the connection closed after a wait), connections dropped
before the call is handled and after.

Every post ends in a final status; no target is published twice; a target whose outcome is unknown
(the answer never came) is reported OUTCOME_UNKNOWN and never sent again; from the sandbox's request
log, no retry of a rate-limited call came before the moment the network named, and no retry of a
5xx came sooner than the queue's smallest backoff.

LinkedIn answers 429 only for its daily limit and says no wait (the adapter waits until midnight
UTC), so its share of failures has no rate limit; X (x-rate-limit-reset) and Bluesky
(RateLimit-Reset) say when to come back, here a few seconds on. The other six networks publish only
with media or need identities the drill sandbox does not mint: they are not in this drill."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from ouipost.queue import BACKOFF_BASE_SECONDS
from tests.drills.conftest import (
    DRILL_SECONDS,
    NETWORKS,
    due_in,
    make_accounts,
    not_final_report,
    post_key,
    publish_jobs_by_status,
    schedule_burst,
    tally,
    wait_all_final,
    worker_logs,
)

pytestmark = [pytest.mark.drill, pytest.mark.usefixtures("mariadb_only")]

# The number is 1,000 posts: they drained in 66 s with 20 % of answers failing (70 s with set-up),
# too close to the 90 s bound on this 2-core machine under load, where the backoff of an unlucky post's
# fourth or fifth run sets the time. 600 posts (1,800 targets) end in about 45 s.
POSTS = 600
WORKSPACES = 120
RATE_LIMIT_WAIT = 3.0  # seconds X and Bluesky ask to wait
NO_ANSWER_AFTER = 2.0  # seconds an unanswered call is held before its connection is closed
# Each network's share of failing answers (20 % in all), by kind.
FAULT_MIX = {
    "twitter": {"rate_limit": 0.04, "server_error": 0.04, "timeout": 0.04, "drop": 0.04, "drop_after": 0.04},
    "bluesky": {"rate_limit": 0.04, "server_error": 0.04, "timeout": 0.04, "drop": 0.04, "drop_after": 0.04},
    "linkedin": {"server_error": 0.05, "timeout": 0.05, "drop": 0.05, "drop_after": 0.05},
}


async def inject_faults(sandbox: Any, control: Any) -> None:
    """FAULT_MIX as random-rate faults. The sandbox tries a network's faults in order, each on the
    requests the ones before it let through: each rate is its share of what is left."""
    for network, mix in FAULT_MIX.items():
        left = 1.0
        for kind, share in mix.items():
            await sandbox.add_fault(control, network=network, kind=kind, rate=share / left,
                                    wait=RATE_LIMIT_WAIT if kind == "rate_limit" else None,
                                    delay=NO_ANSWER_AFTER if kind == "timeout" else 0.0)
            left -= share


def early_retries(requests: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """Rate-limited and 5xx'd calls carrying a post's text, and the retries of them (the next call
    with the same post's text to the same network) that came too soon."""
    by_post: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for req in requests:
        key = post_key(json.dumps(req["body"])) if req["method"] == "POST" and req["body"] else None
        if key:
            by_post.setdefault((req["network"], *key), []).append(req)
    limited = errored = 0
    too_soon = []
    for calls in by_post.values():
        calls.sort(key=lambda r: r["at"])
        for call, retry in itertools.pairwise(calls):
            if call["fault"] == "rate_limit":
                limited += 1
                if retry["at"] < call["notes"]["retry_not_before"]:
                    too_soon.append(f"{call['path']}: 429 at {call['at']:.2f}, retried at {retry['at']:.2f}, "
                                    f"the network said not before {call['notes']['retry_not_before']:.2f}")
            elif call["fault"] == "server_error":
                errored += 1
                if retry["at"] - call["at"] < BACKOFF_BASE_SECONDS / 2:
                    too_soon.append(f"{call['path']}: {call['status']} at {call['at']:.2f}, retried at "
                                    f"{retry['at']:.2f}, sooner than the smallest backoff")
    return limited, errored, too_soon


async def test_a_fifth_of_the_networks_answers_failing_at_random(
    database_url: str, engine: Any, drill_sandbox: Any, control: Any, spawn_worker: Any, tmp_path: Path,
    report_figures: Any,
) -> None:
    started = time.monotonic()
    async with asyncio.timeout(DRILL_SECONDS):
        owners = await make_accounts(database_url, drill_sandbox, WORKSPACES)
        await inject_faults(drill_sandbox, control)
        await schedule_burst(database_url, owners, POSTS, due_in(2), "faulty")
        workers = [spawn_worker(database_url) for _ in range(2)]
        left = await wait_all_final(engine, deadline=started + DRILL_SECONDS - 5)
        assert left == 0, (f"{left} posts not final\n" + await not_final_report(engine)
                           + worker_logs(tmp_path)[-3000:])
        drained = time.monotonic() - started
        await drill_sandbox.clear_faults(control)
        await asyncio.sleep(NO_ANSWER_AFTER)  # calls still held by the sandbox end on its side
        for worker in workers:
            worker.terminate()
        assert [await asyncio.to_thread(w.wait, 30) for w in workers] == [0, 0], worker_logs(tmp_path)

    requests = await drill_sandbox.requests(control)
    result = await tally(engine, drill_sandbox, control)
    limited, errored, too_soon = early_retries(requests)
    faulted = sum(1 for r in requests if r["fault"])
    report_figures(
        "20 % of network answers failing (MariaDB, 2 worker processes, X + Bluesky + LinkedIn)",
        posts=POSTS, targets=result.targets, requests=result.requests, faulted_requests=faulted,
        faulted_share=round(faulted / max(1, result.requests), 3), published=result.published,
        outcome_unknown=result.unknown, other_failures=dict(result.other_failures), duplicates=result.duplicates,
        lost=result.lost, resent_unknown=result.resent_unknown, rate_limited_then_retried=limited,
        server_errors_then_retried=errored, retried_too_soon=len(too_soon), all_final_after_seconds=drained,
        seconds=time.monotonic() - started)
    assert result.targets == POSTS * len(NETWORKS)
    assert result.not_final == 0
    assert result.duplicates == 0
    assert result.lost == 0
    assert result.resent_unknown == 0
    assert not result.other_failures, result.other_failures
    assert result.published + result.unknown == result.targets
    assert limited > 0 and errored > 0  # the drill did exercise both
    assert not too_soon, too_soon[:5]
    jobs = await publish_jobs_by_status(engine)
    assert set(jobs) <= {"done", "failed"} and sum(jobs.values()) == POSTS, jobs
