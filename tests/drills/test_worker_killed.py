"""Drill: a worker process SIGKILLed in the middle of a 1,000-post burst on MariaDB with two worker
processes, while the networks answer slowly enough that many calls are in flight when it dies.

Afterwards every target is published exactly once (one publication on its network, the one whose
remote id the target holds) or reported OUTCOME_UNKNOWN and never sent again; every publish job is
done or failed once the short lease has passed (none stuck `running` or `queued`)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.drills.conftest import (
    DRILL_SECONDS,
    NETWORKS,
    due_in,
    make_accounts,
    publish_jobs_by_status,
    schedule_burst,
    tally,
    wait_all_final,
    worker_logs,
)

pytestmark = [pytest.mark.drill, pytest.mark.usefixtures("mariadb_only")]

POSTS = 1000
WORKSPACES = 200  # 200 users per network: the burst stays within each user's limits on the networks
LATENCY = 0.3  # seconds every sandbox call takes: calls are in flight when the kill lands
LEASE = "3"


async def test_a_worker_killed_during_a_burst_loses_and_duplicates_nothing(
    database_url: str, engine: Any, drill_sandbox: Any, control: Any, spawn_worker: Any, tmp_path: Path,
    report_figures: Any,
) -> None:
    started = time.monotonic()
    async with asyncio.timeout(DRILL_SECONDS):
        owners = await make_accounts(database_url, drill_sandbox, WORKSPACES)
        await drill_sandbox.add_fault(control, kind="slow", delay=LATENCY)
        post_ids = await schedule_burst(database_url, owners, POSTS, due_in(2), "burst")
        doomed = spawn_worker(database_url, "--lease-seconds", LEASE)
        survivor = spawn_worker(database_url, "--lease-seconds", LEASE)

        # Kill once the burst is well under way: some targets published, many calls on the wire.
        while True:
            figures = await tally(engine, drill_sandbox, control)
            in_flight = sum(figures.creates.values()) - figures.published
            if figures.published >= POSTS * len(NETWORKS) // 5 and in_flight > 0:
                break
            assert time.monotonic() - started < 60, "the burst did not get under way\n" + worker_logs(tmp_path)
            await asyncio.sleep(0.3)
        doomed.send_signal(signal.SIGKILL)
        assert doomed.wait(timeout=10) == -signal.SIGKILL
        killed_at = time.monotonic() - started

        left = await wait_all_final(engine, deadline=started + DRILL_SECONDS - 5)
        assert left == 0, f"{left} posts not final\n" + worker_logs(tmp_path)
        await asyncio.sleep(float(LEASE))  # a create the dead worker sent may still complete on the network
        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(survivor.wait, 30) == 0, worker_logs(tmp_path)

    result = await tally(engine, drill_sandbox, control)
    report_figures(
        "worker SIGKILL mid-burst (MariaDB, 2 worker processes)", posts=len(post_ids), targets=result.targets,
        requests=result.requests, published=result.published, outcome_unknown=result.unknown,
        duplicates=result.duplicates, lost=result.lost, resent_unknown=result.resent_unknown,
        unknown_never_sent=result.targets - len(result.creates), in_flight_at_kill=in_flight,
        kill_after_seconds=killed_at, seconds=time.monotonic() - started)
    assert result.targets == POSTS * len(NETWORKS)
    assert result.duplicates == 0
    assert result.lost == 0
    assert result.resent_unknown == 0
    # No fault but the kill: no target's text went to its network twice, whatever its outcome (the
    # dead worker's targets marked `publishing` but not yet sent are OUTCOME_UNKNOWN, never sent).
    assert set(result.creates.values()) == {1}, [t for t, sends in result.creates.items() if sends != 1][:5]
    assert not result.other_failures, result.other_failures
    assert result.published + result.unknown == result.targets
    jobs = await publish_jobs_by_status(engine)
    assert set(jobs) <= {"done", "failed"} and sum(jobs.values()) == POSTS, jobs  # none stuck
