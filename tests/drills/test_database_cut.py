"""Drill: the database unreachable for 10 s under load. An asyncio TCP proxy stands between MariaDB
and everything else (the API app and two `run.py worker` processes); it is cut (every connection
dropped, new ones refused) while posts are being published and clients keep creating and
scheduling posts, then restored.

During the cut the API answers 503 SERVICE_UNAVAILABLE with Retry-After, never 500; it answers
normally again by itself; the workers carry on by themselves; every post scheduled before or during
the cut is published exactly once, none lost, none sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from ouipost.app import create_app
from ouipost.core.clock import Clock
from ouipost.db.engine import create_engine
from tests.drills.conftest import (
    DRILL_SECONDS,
    due_in,
    make_accounts,
    not_final_report,
    publish_jobs_by_status,
    tally,
    wait_all_final,
    worker_logs,
)
from tests.hardening.test_database_outage import TcpProxy
from tests.queue.test_processes import count_workers

pytestmark = [pytest.mark.drill, pytest.mark.usefixtures("mariadb_only")]

from bench import publish_burst  # noqa: E402

CUT_SECONDS = 10.0
SCHEDULED = 600  # posts due one after another from before the cut until after it
SPREAD = 24.0  # seconds over which they fall due
CUT_AT = 6.0  # seconds after the first due time
CLIENTS = 4  # API clients creating and scheduling posts all along


async def test_the_database_cut_for_10s_under_load(
    aiohttp_client: Any, settings: Any, database_url: str, engine: Any, make_key: Any, drill_sandbox: Any,
    control: Any, spawn_worker: Any, tmp_path: Path, report_figures: Any,
) -> None:
    started = time.monotonic()
    url = make_url(database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 3306))
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app_engine = create_engine(proxied, pool_timeout=2)
    statuses: Counter[int] = Counter()
    bad_answers: list[str] = []
    api_posts = 0
    try:
        async with asyncio.timeout(DRILL_SECONDS):
            owners = await make_accounts(database_url, drill_sandbox, 100)
            await drill_sandbox.add_fault(control, kind="slow", delay=0.05)
            workers = [spawn_worker(proxied) for _ in range(2)]  # the default lease (30 s) outlasts the cut
            # Both running before anything is due (a worker that cannot reach the database at start exits).
            while await count_workers(engine) < 2:
                assert [w.poll() for w in workers] == [None, None], worker_logs(tmp_path)
                await asyncio.sleep(0.1)
            first_due = due_in(2)
            times = [first_due + timedelta(seconds=SPREAD * n / SCHEDULED) for n in range(SCHEDULED)]
            await publish_burst.schedule_posts(database_url, owners, times, "due")
            limits = {"starter": 60, "professional": 300, "enterprise": 1_000_000}  # load, not limits
            client = await aiohttp_client(create_app(settings.with_overrides(workers=0, rate_limits=limits),
                                                     engine=app_engine))
            key = await make_key(workspace=owners[0]["workspace"], tier="enterprise")
            stop_load = asyncio.Event()

            # Requests sent while the database is cut; one sent just before the cut may still be
            # answered 200/201 after it began (its work was done), so only these count as "during".
            cut_window: list[float] = []
            during_cut: Counter[int] = Counter()

            async def answer(resp: Any, sent: float) -> int:
                statuses[resp.status] += 1
                if len(cut_window) == 1 and sent >= cut_window[0]:
                    during_cut[resp.status] += 1
                if resp.status == 503:
                    body = await resp.json()
                    if body["error"]["code"] != "SERVICE_UNAVAILABLE" or int(resp.headers.get("Retry-After", 0)) <= 0:
                        bad_answers.append(f"503 {resp.headers.get('Retry-After')} {body}")
                elif resp.status not in (200, 201):
                    bad_answers.append(f"{resp.status} {await resp.text()}")
                return int(resp.status)

            async def create_and_schedule(client_no: int) -> None:
                nonlocal api_posts
                n = 0
                while not stop_load.is_set():
                    n += 1
                    text = f"api{client_no} post {n} at {Clock().now().isoformat()}"
                    sent = time.monotonic()
                    resp = await client.post("/api/posts", json={"content": text, "platforms": ["bluesky"]},
                                             headers=key.headers())
                    if await answer(resp, sent) == 201:
                        post_id = (await resp.json())["data"]["post"]["id"]
                        at = (Clock().now() + timedelta(seconds=2)).isoformat()
                        sent = time.monotonic()
                        resp = await client.post(f"/api/posts/{post_id}/schedule", json={"scheduled_at": at},
                                                 headers=key.headers())
                        if await answer(resp, sent) == 200:
                            api_posts += 1
                    await asyncio.sleep(0.05)

            load = [asyncio.create_task(create_and_schedule(n)) for n in range(CLIENTS)]
            await asyncio.sleep(max(0.0, (first_due - Clock().now()).total_seconds()) + CUT_AT)
            await proxy.cut()
            cut_window.append(time.monotonic())
            await asyncio.sleep(CUT_SECONDS)
            cut_window.append(time.monotonic())  # answers to requests sent from here on are "after"
            created_by_then = statuses[201]
            await proxy.start()
            cut_ended = time.monotonic()
            # The API recovers by itself: the first post created after the cut.
            while statuses[201] == created_by_then:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            recovered_after = time.monotonic() - cut_ended
            await asyncio.sleep(3)
            stop_load.set()
            await asyncio.gather(*load)

            left = await wait_all_final(engine, deadline=started + DRILL_SECONDS - 8)
            assert left == 0, (f"{left} posts not final\n" + await not_final_report(engine)
                               + worker_logs(tmp_path)[-3000:])
            assert [w.poll() for w in workers] == [None, None], "a worker died\n" + worker_logs(tmp_path)
            for worker in workers:
                worker.terminate()
            assert [await asyncio.to_thread(w.wait, 30) for w in workers] == [0, 0], worker_logs(tmp_path)
    finally:
        await proxy.cut()
        await app_engine.dispose()

    result = await tally(engine, drill_sandbox, control)
    report_figures(
        "database unreachable 10 s (MariaDB behind a TCP proxy, 2 worker processes, 4 API clients)",
        posts=result.posts, api_posts=api_posts, targets=result.targets, requests=result.requests,
        api_answers=dict(sorted(statuses.items())), api_answers_during_cut=dict(sorted(during_cut.items())),
        published=result.published, outcome_unknown=result.unknown, duplicates=result.duplicates,
        lost=result.lost, api_recovered_after_seconds=recovered_after, seconds=time.monotonic() - started)
    assert not bad_answers, bad_answers[:5]
    assert {status for status, n in during_cut.items() if n} == {503}, during_cut  # only 503s while cut
    assert result.duplicates == 0 and result.lost == 0 and result.resent_unknown == 0
    assert not result.other_failures, result.other_failures
    assert result.published == result.targets, f"{result.unknown} outcomes unknown"
    jobs = await publish_jobs_by_status(engine)
    assert set(jobs) <= {"done"}, jobs
    with contextlib.suppress(Exception):
        await client.close()
