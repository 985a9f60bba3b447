"""Fault drills: real `run.py worker` processes, a sandbox process with identities of its own, faults
injected while posts are in flight, and figures printed at the end of the run.

The sandbox process and the accounts come from bench/publish_burst.py (the publishing benchmark):
`--serve-sandbox` runs the nine networks plus a route that mints X, Bluesky and LinkedIn identities
whose tokens it accepts, so that every workspace's accounts are distinct users and no network-side
per-user limit is reached by a burst. Posts are scheduled in bulk the way that benchmark does it
(the rows `schedule_post` leaves: scheduled post, pending targets, publish job).

Each drill runs inside its own deadline (DRILL_SECONDS) and prints one line of figures (requests,
posts, duplicates, lost, unknown outcomes, seconds); they are repeated in the terminal summary so the
CI log shows them without -s.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import publish_burst
from ouipost.core.clock import Clock
from ouipost.core.ids import new_id
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import media, post_targets, posts
from ouipost.publishing.service import PUBLISH_KIND, PUBLISH_MAX_ATTEMPTS, PUBLISH_QUEUE, publish_job_key
from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
DRILL_SECONDS = 90.0  # every drill, set-up included, ends within this or fails
NETWORKS = publish_burst.NETWORKS  # the networks whose identities the drill sandbox mints
FINAL = ("published", "partially_published", "failed")
SETTLED = (*FINAL, "draft")  # a draft was never asked to publish (a client's scheduling call was refused)
# A post's text carries its label and number: requests and publications are matched to it by them.
POST_TEXT = re.compile(r"(\w+) post (\d+) at ")

FIGURES = pytest.StashKey[list[str]]()
UNANSWERED_FAULTS = ("drop", "drop_after", "timeout")  # the sandbox closed the connection, no answer
# The call that makes a post exist on a network, where it carries the post's text (the end of the
# request path): a second one for a target is a second publication attempt. Instagram and Threads
# publish a container by its id, TikTok and YouTube by finishing an upload: a repeat of those is
# only ever made after the network said nothing was published, and a duplicate shows on the network.
PUBLISHING_CALLS = {
    "twitter": "/2/tweets", "bluesky": "/com.atproto.repo.createRecord", "linkedin": "/rest/posts",
    "facebook": "/photos", "pinterest": "/v5/pins",
}


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = []


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("fault drills")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def report_figures(request: pytest.FixtureRequest) -> Callable[..., str]:
    """report_figures(drill, **figures): print the drill's figures and keep them for the summary."""

    def report(drill: str, **figures: Any) -> str:
        line = f"DRILL {drill}: " + ", ".join(
            f"{name.replace('_', ' ')} {value:.1f}" if isinstance(value, float) else f"{name.replace('_', ' ')} {value}"
            for name, value in figures.items())
        print(line)
        request.config.stash[FIGURES].append(line)
        return line

    return report


@pytest.fixture
def mariadb_only(test_database: Any) -> None:
    if not test_database.is_mysql:
        pytest.skip("needs MariaDB: worker processes sharing a database server under load (the cut drill "
                    "puts a TCP proxy in front of it); it runs in the MariaDB pass, SQLite being the "
                    "one-process newcomer setup")


class DrillSandbox:
    """The benchmark's sandbox process (`bench/publish_burst.py --serve-sandbox`) and its control API."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "publish_burst.py"), "--serve-sandbox", str(self.port)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    async def started(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                await self.get(session, "/_sandbox/publications?network=none")
                return
            except aiohttp.ClientError:
                assert time.monotonic() < deadline, "the sandbox process did not start"
                await asyncio.sleep(0.05)

    async def get(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(self.url + path) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def post(self, session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
        async with session.post(self.url + path, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def add_fault(self, session: aiohttp.ClientSession, **fault: Any) -> None:
        await self.post(session, "/_sandbox/faults", {"network": "*", "count": None, **fault})

    async def clear_faults(self, session: aiohttp.ClientSession) -> None:
        async with session.delete(self.url + "/_sandbox/faults") as resp:
            resp.raise_for_status()

    async def requests(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        return list((await self.get(session, "/_sandbox/requests"))["requests"])

    async def publications(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        return list((await self.get(session, "/_sandbox/publications"))["publications"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
async def control() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session for the sandbox's control API (asynchronous: a drill's proxy shares the loop)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def drill_sandbox(tmp_path: Path, control: aiohttp.ClientSession) -> AsyncIterator[DrillSandbox]:
    sandbox = DrillSandbox(tmp_path / "sandbox.log")
    try:
        await sandbox.started(control)
        yield sandbox
    finally:
        sandbox.stop()


def drill_env(database_url: str, tmp_path: Path, sandbox: DrillSandbox, **extra: str) -> dict[str, str]:
    """The environment of a drill's `run.py` processes: one database, one data dir (local media),
    the drill sandbox for every network, no pacing (the drills are about faults, not about the
    networks' pace); `extra` OUIPOST_* settings on top."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
            "OUIPOST_DATABASE_URL": database_url, "OUIPOST_SECRET_KEY": publish_burst.SECRET,
            "OUIPOST_DATA_DIR": str(tmp_path / "data"), "OUIPOST_PLATFORM_BASE_URL": sandbox.url,
            "OUIPOST_PACING": "off", "OUIPOST_LOG_LEVEL": "WARNING", **extra}


@pytest.fixture
def spawn_worker(tmp_path: Path, drill_sandbox: DrillSandbox) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """spawn_worker(database_url, *args, **settings) -> a `run.py worker` process on the publish
    queue with drill_env (and `settings`, OUIPOST_* names)."""
    processes: list[subprocess.Popen[str]] = []

    def start(database_url: str, *args: str, **settings: str) -> subprocess.Popen[str]:
        env = drill_env(database_url, tmp_path, drill_sandbox, **settings)
        with (tmp_path / f"worker-{len(processes)}.log").open("w") as log:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "worker", "--poll-interval", "0.1", "--queues", PUBLISH_QUEUE,
                 "--concurrency", "48", *args],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class DrillServer:
    """A `run.py serve --no-workers` process: the API, and the signed media URLs networks fetch."""

    url: str
    process: subprocess.Popen[str]


@pytest.fixture
def spawn_server(tmp_path: Path, drill_sandbox: DrillSandbox) -> Iterator[Callable[..., DrillServer]]:
    """spawn_server(database_url, **settings) -> a healthy `run.py serve --no-workers` with drill_env,
    its public URL its own address (so that the workers' media URLs point at it)."""
    servers: list[DrillServer] = []

    def start(database_url: str, **settings: str) -> DrillServer:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = drill_env(database_url, tmp_path, drill_sandbox, OUIPOST_PUBLIC_URL=url, OUIPOST_AUTO_MIGRATE="1",
                        **settings)
        log_path = tmp_path / "server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "serve", "--no-workers", "--port", str(port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        servers.append(DrillServer(url, process))
        wait_healthy(url, process, log_path=log_path)
        return servers[-1]

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=10)


class CpuMeter:
    """CPU seconds each part of a drill spends from now on (Linux /proc): on a machine whose cores
    they all share, where a drill's time goes. cpu_meter.spent() -> {part: seconds}."""

    def __init__(self, **processes: list[int]) -> None:
        self.parts = dict(processes)
        if (server := publish_burst.mariadb_pid()) is not None:
            self.parts["mariadbd"] = [server]
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        return {name: sum(publish_burst.cpu_seconds(pid) for pid in pids) for name, pids in self.parts.items()}

    def spent(self) -> dict[str, float]:
        end = self._read()
        return {name: round(end[name] - self.start[name], 1) for name in end}


def worker_logs(tmp_path: Path) -> str:
    """The workers' output, for assertion messages."""
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("worker-*.log")))


async def make_accounts(database_url: str, sandbox: DrillSandbox, workspaces: int) -> list[dict[str, str]]:
    """`workspaces` workspaces, each with an X, a Bluesky and a LinkedIn account of its own user."""
    return await publish_burst.create_accounts(database_url, sandbox.url, workspaces, start=0)


async def schedule_burst(database_url: str, owners: list[dict[str, str]], count: int, due: datetime,
                         label: str) -> list[str]:
    """`count` posts due at `due`, each to its workspace's three accounts (round-robin over the workspaces)."""
    return await publish_burst.schedule_posts(database_url, owners, [due] * count, label)


async def schedule_with_media(engine: AsyncEngine, workspace_id: str, accounts: dict[str, str],
                              media_of: dict[str, dict[str, Any]], count: int, due: datetime, label: str) -> list[str]:
    """`count` posts due at `due`, each to `accounts` ({network: account id}), each network given
    its media: `media_of[network]` is a media row uploaded once through the API, which every post
    gets a row of its own for (a media row belongs to one post) pointing at the same stored file.
    Written as `schedule_post` leaves them (scheduled post, pending targets, media, publish job)."""
    now = Clock().now()
    templates = {row["id"]: row for row in media_of.values()}
    post_ids: list[str] = []
    post_rows, target_rows, media_rows, job_rows = [], [], [], []
    for n in range(count):
        post_id = new_id("post")
        post_ids.append(post_id)
        copies = {template_id: new_id("media") for template_id in templates}
        media_rows += [{**row, "id": copies[template_id], "post_id": post_id, "created_at": now}
                       for template_id, row in templates.items()]
        post_rows.append({
            "id": post_id, "workspace_id": workspace_id, "status": "scheduled",
            "content": f"{label} post {n} at {due.isoformat()}", "hashtags": [], "platforms": list(accounts),
            "platform_content": {network: {"media_ids": [copies[media_of[network]["id"]]]} for network in accounts},
            "scheduled_at": due, "scheduled_timezone": "UTC", "created_at": now, "updated_at": now,
        })
        target_rows += [{
            "id": new_id("tgt"), "post_id": post_id, "workspace_id": workspace_id, "network": network,
            "requested": network, "account_id": account_id, "status": "pending", "attempts": 0,
            "created_at": now, "updated_at": now,
        } for network, account_id in accounts.items()]
        job_rows.append({
            "queue": PUBLISH_QUEUE, "kind": PUBLISH_KIND, "payload": {"post_id": post_id},
            "unique_key": publish_job_key(post_id), "live_key": publish_job_key(post_id), "status": "queued",
            "priority": 50, "run_at": due, "attempts": 0, "max_attempts": PUBLISH_MAX_ATTEMPTS, "created_at": now,
        })
    async with engine.begin() as conn:
        for table, rows in ((posts, post_rows), (post_targets, target_rows), (media, media_rows), (jobs, job_rows)):
            for start in range(0, len(rows), 2000):
                await conn.execute(table.insert(), rows[start:start + 2000])
    return post_ids


async def wait_all_final(engine: AsyncEngine, deadline: float) -> int:
    """Wait until no post (but drafts) is short of a final status (polled every 200 ms); the count left when
    `deadline` (time.monotonic()) passes."""
    while True:
        async with engine.connect() as conn:
            left = int(await conn.scalar(
                sa.select(sa.func.count()).select_from(posts).where(posts.c.status.not_in(SETTLED))) or 0)
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.2)


@dataclass
class Tally:
    """Every target of the drill's posts set against what reached the sandbox."""

    posts: int = 0
    targets: int = 0
    published: int = 0
    unknown: int = 0  # failed with OUTCOME_UNKNOWN
    other_failures: Counter[str] = field(default_factory=Counter)
    not_final: int = 0
    duplicates: int = 0  # publications beyond the first of one target's text on its network
    lost: int = 0  # published targets whose publication the network does not have
    published_but_failed: int = 0  # on the network, yet failed with an error that says it is not
    resent_unknown: int = 0  # targets sent again after a call whose answer never came
    requests: int = 0
    creates: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (network, label, n) -> sends
    by_network: dict[str, Counter[str]] = field(default_factory=dict)  # network -> final state -> targets


def post_key(text: str) -> tuple[str, str] | None:
    match = POST_TEXT.search(text)
    return (match.group(1), match.group(2)) if match else None


def publishing_call_key(req: dict[str, Any]) -> tuple[str, str] | None:
    """The post a recorded request is the publishing call of (PUBLISHING_CALLS), else None."""
    ending = PUBLISHING_CALLS.get(req["network"])
    if req["method"] != "POST" or not req["body"] or not ending or not req["path"].endswith(ending):
        return None
    return post_key(json.dumps(req["body"]))


async def tally(engine: AsyncEngine, sandbox: DrillSandbox, control: aiohttp.ClientSession) -> Tally:
    """Targets (from the database) against publications and create calls (from the sandbox)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(post_targets.c.network, post_targets.c.status, post_targets.c.remote_id,
                      post_targets.c.error_code, posts.c.content, posts.c.status.label("post_status"))
            .join(posts, posts.c.id == post_targets.c.post_id))).all()
    requests = await sandbox.requests(control)
    publications = await sandbox.publications(control)
    result = Tally(posts=len({r.content for r in rows if r.post_status != "draft"}), requests=len(requests))
    unanswered: set[tuple[str, str, str]] = set()  # a create whose answer never came (sandbox faults)
    for req in sorted(requests, key=lambda r: r["at"]):
        key = publishing_call_key(req)
        if key:
            target = (req["network"], *key)
            result.creates[target] += 1
            if target in unanswered:
                result.resent_unknown += 1  # sent again blindly after an answer that never came
            if req["fault"] in UNANSWERED_FAULTS:
                unanswered.add(target)
    published_texts: Counter[tuple[str, str, str]] = Counter()
    remote_ids = set()
    for pub in publications:
        key = post_key(pub["text"])
        if key and not pub["deleted"]:
            published_texts[(pub["network"], *key)] += 1
            remote_ids.add((pub["network"], pub["remote_id"]))
    result.duplicates = sum(n - 1 for n in published_texts.values() if n > 1)
    for row in rows:
        if row.post_status == "draft":
            continue  # never asked to publish (its scheduling was refused)
        result.targets += 1
        key = post_key(row.content)
        assert key is not None, row.content
        state = row.status if row.status != "failed" else str(row.error_code)
        result.by_network.setdefault(row.network, Counter())[state] += 1
        if row.status == "failed" and row.error_code != "OUTCOME_UNKNOWN" and published_texts[(row.network, *key)]:
            result.published_but_failed += 1
        if row.status == "published":
            result.published += 1
            if (row.network, row.remote_id) not in remote_ids:
                result.lost += 1
        elif row.status == "failed" and row.error_code == "OUTCOME_UNKNOWN":
            result.unknown += 1
        elif row.status == "failed":
            result.other_failures[str(row.error_code)] += 1
        else:
            result.not_final += 1
            result.lost += 1
    return result


async def publish_jobs_by_status(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(jobs.c.status, sa.func.count()).where(jobs.c.kind == PUBLISH_KIND).group_by(jobs.c.status))).all()
    return {str(status): int(count) for status, count in rows}


def due_in(seconds: float) -> datetime:
    return Clock().now().replace(microsecond=0) + timedelta(seconds=seconds)


async def not_final_report(engine: AsyncEngine, limit: int = 10) -> str:
    """The posts short of a final status, their targets and publish jobs, for assertion messages."""
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(posts.c.id, posts.c.status, post_targets.c.network, post_targets.c.status.label("target"),
                      post_targets.c.error_code, jobs.c.status.label("job"), jobs.c.attempts, jobs.c.run_at,
                      jobs.c.locked_until, jobs.c.last_error)
            .join(post_targets, post_targets.c.post_id == posts.c.id)
            .outerjoin(jobs, sa.and_(jobs.c.kind == PUBLISH_KIND,
                                     jobs.c.unique_key == sa.literal("publish:").concat(posts.c.id)))
            .where(posts.c.status.not_in(SETTLED)).limit(limit))).all()
    return "\n".join(str(tuple(r)) for r in rows) + f"\n(now {Clock().now().isoformat()})"
