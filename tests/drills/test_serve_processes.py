"""`run.py serve --processes 2` on MariaDB: two API processes on one port, watched by a supervisor.

- 1,000 posts created through the API and published (one in ten now, the others scheduled 10 s
  ahead) while two `run.py worker` processes publish them to the drill's sandbox: every post
  published exactly once (one publication per target on its network, the one whose remote id the
  target holds), both API processes answered (each process's own request counts, in the metrics
  files it writes under the data dir).
- SIGTERM to the supervisor: every API process stops, exit 0, and the usage counted in the last
  seconds is written (the flush at a clean stop).
- A SIGKILLed API process: the port keeps answering from the other one, the supervisor starts a new
  one; the supervisor SIGKILLed: its API processes stop by themselves.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from prometheus_client.multiprocess import MultiProcessCollector

from bench import publish_burst
from ouipost.core.clock import Clock, isoformat
from ouipost.db.admin_tables import api_key_usage
from ouipost.db.tables import users
from ouipost.identity import api_keys
from tests.drills.conftest import NETWORKS, make_accounts, tally, wait_all_final, worker_logs
from tests.servers import free_port

pytestmark = [pytest.mark.drill, pytest.mark.usefixtures("mariadb_only")]

ROOT = Path(__file__).resolve().parents[2]
POSTS = 1000
WORKSPACES = 100  # each post to one of its workspace's three accounts: at most 4 posts per account
CLIENTS = 24  # connections the API client keeps open: the kernel spreads them over the processes
# Every 10th post is published now (the answer waits for the outcome, polling the database); the
# others are scheduled a few seconds ahead, as most clients do: the workers publish them when due.
PUBLISH_NOW_EVERY = 10
# About a minute on a quiet 2-core machine; the bound leaves room for a machine shared with other work.
BOUND_SECONDS = 150
SCHEDULE_AHEAD_SECONDS = 10  # the time must still be ahead when a busy API process handles the request
SERVING = re.compile(r"API process (\d) of 2 \(pid (\d+)\) is serving")


class ServeProcesses:
    """`run.py serve --processes 2 --no-workers` and its log."""

    def __init__(self, database_url: str, tmp_path: Path, platform_base_url: str, label: str,
                 **extra_env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"serve-{label}.log"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
               "OUIPOST_DATABASE_URL": database_url, "OUIPOST_SECRET_KEY": publish_burst.SECRET,
               "OUIPOST_DATA_DIR": str(tmp_path / "data"), "OUIPOST_PLATFORM_BASE_URL": platform_base_url,
               "OUIPOST_RATE_LIMITS": "starter=100000,professional=100000,enterprise=100000", **extra_env}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "serve", "--processes", "2", "--no-workers",
                 "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def serving(self) -> dict[int, list[int]]:
        """Each slot's pids, in the order the supervisor said they serve."""
        pids: dict[int, list[int]] = {}
        for slot, pid in SERVING.findall(self.log()):
            pids.setdefault(int(slot), []).append(int(pid))
        return pids

    def wait_listening(self, timeout: float = 40) -> dict[int, int]:
        """The two API processes' pids once the supervisor says it listens."""
        deadline = time.monotonic() + timeout
        while "Oui Post listening on" not in self.log():
            assert self.process.poll() is None, f"serve exited with {self.process.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"serve did not start:\n{self.log()}"
            time.sleep(0.1)
        pids = self.serving()
        assert sorted(pids) == [1, 2], self.log()
        return {slot: found[-1] for slot, found in pids.items()}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def start_serve(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServeProcesses]]:
    started: list[ServeProcesses] = []

    def start(platform_base_url: str = "http://127.0.0.1:9", label: str = "api", **env: str) -> ServeProcesses:
        server = ServeProcesses(database_url, tmp_path, platform_base_url, label, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=10)
        for slot_pids in server.serving().values():
            for pid in slot_pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def requests_answered_by(metrics_dir: Path, pid: int, route: str) -> int:
    """Requests to `route` that process `pid` answered, from the metrics file it writes."""
    path = metrics_dir / f"counter_{pid}.db"
    if not path.exists():
        return 0
    total = 0.0
    for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
        for sample in metric.samples:
            if sample.name == "ouipost_http_requests_total" and sample.labels.get("route") == route:
                total += sample.value
    return int(total)


async def make_key(engine: Any, workspace_ids: list[str]) -> str:
    async with engine.begin() as conn:
        new = await api_keys.create_key(conn, name="multiprocess drill", tier="enterprise", permissions=None,
                                        workspace_ids=workspace_ids, now=Clock().now())
    return new.secret


async def test_two_api_processes_and_two_workers_publish_1000_posts_exactly_once(
    database_url: str, engine: Any, drill_sandbox: Any, control: Any, spawn_worker: Any, start_serve: Any,
    tmp_path: Path, report_figures: Any,
) -> None:
    started = time.monotonic()
    async with asyncio.timeout(BOUND_SECONDS):
        serve = start_serve(drill_sandbox.url)
        owners = await make_accounts(database_url, drill_sandbox, WORKSPACES)
        key = await make_key(engine, [owner["workspace"] for owner in owners])
        workers = [spawn_worker(database_url), spawn_worker(database_url)]
        pids = await asyncio.to_thread(serve.wait_listening)
        stamp = Clock().now().isoformat()
        answers: Counter[str] = Counter()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(POSTS):
            queue.put_nowait(n)

        async def client(session: aiohttp.ClientSession) -> None:
            while not queue.empty():
                n = queue.get_nowait()
                owner = owners[n % WORKSPACES]
                network = NETWORKS[(n // WORKSPACES) % len(NETWORKS)]
                headers = {"X-API-Key": key, "X-Workspace-ID": owner["workspace"]}
                body = {"content": f"multiprocess post {n} at {stamp}", "platforms": [owner[network]]}
                async with session.post(f"{serve.url}/api/posts", json=body, headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                    post_id = (await resp.json())["data"]["post"]["id"]
                if n % PUBLISH_NOW_EVERY == 0:
                    async with session.post(f"{serve.url}/api/posts/{post_id}/publish", headers=headers) as resp:
                        assert resp.status in (200, 202), await resp.text()
                        answers[f"publish {resp.status}"] += 1
                    continue
                at = isoformat(Clock().now() + timedelta(seconds=SCHEDULE_AHEAD_SECONDS))
                async with session.post(f"{serve.url}/api/posts/{post_id}/schedule", headers=headers,
                                        json={"scheduled_at": at}) as resp:
                    assert resp.status == 200, await resp.text()
                    answers[f"schedule {resp.status}"] += 1

        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
            await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        api_seconds = time.monotonic() - started

        left = await wait_all_final(engine, deadline=started + BOUND_SECONDS - 10)
        assert left == 0, f"{left} posts not final (API part {api_seconds:.0f} s)\n" + worker_logs(tmp_path)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert serve.stop() == 0, serve.log()
        for worker in workers:
            assert await asyncio.to_thread(worker.wait, 30) == 0, worker_logs(tmp_path)

    result = await tally(engine, drill_sandbox, control)
    metrics_dir = tmp_path / "data" / "metrics"
    by_process = {slot: requests_answered_by(metrics_dir, pid, "/api/posts") for slot, pid in pids.items()}
    report_figures(
        "serve --processes 2 + 2 workers (MariaDB)", posts=POSTS, published=result.published,
        duplicates=result.duplicates, lost=result.lost, published_now_200=answers["publish 200"],
        published_now_202=answers["publish 202"], scheduled=answers["schedule 200"],
        creates_by_process_1=by_process[1], creates_by_process_2=by_process[2],
        api_seconds=api_seconds, seconds=time.monotonic() - started)
    assert result.targets == POSTS
    assert result.published == POSTS, (result.other_failures, result.unknown, result.not_final)
    assert result.duplicates == 0 and result.lost == 0
    assert set(result.creates.values()) == {1}, [t for t, sends in result.creates.items() if sends != 1][:5]
    assert sum(by_process.values()) == POSTS
    assert min(by_process.values()) >= POSTS // 10, by_process  # both processes answered a fair share
    assert "Traceback" not in serve.log()


async def test_sigterm_stops_every_api_process_and_writes_their_usage(
    engine: Any, start_serve: Any, make_key: Any,
) -> None:
    serve = start_serve()
    pids = await asyncio.to_thread(serve.wait_listening)
    # The first start's admin was made once, by the supervisor, and printed once.
    log = serve.log()
    assert log.count("First start: created an admin") == 1
    password = re.search(r"Admin login : admin@localhost  password: (\S+)", log)
    assert password is not None, log
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(users)) == 1
    assert "OUIPOST_REDIS_URL is not set: each of the 2 API processes enforces the rate limits on its own" in log
    key = await make_key()
    headers = key.headers()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.post(f"{serve.url}/admin/login",
                                json={"email": "admin@localhost", "password": password.group(1)}) as resp:
            token = (await resp.json())["data"]["token"]
        async with session.get(f"{serve.url}/admin/health", headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.json()
        report = body["data"] if body["success"] else body["error"]["details"]  # 503 when a part is unhealthy
        limits = report["components"]["rate_limits"]
        assert limits["backend"] == "process" and limits["shared"] is False, limits

        async def read() -> None:
            async with session.get(f"{serve.url}/api/workspaces", headers=headers) as resp:
                assert resp.status == 200, await resp.text()

        await asyncio.gather(*(read() for _ in range(60)))
    # At once: what the API processes counted in the last 2 s is written only by their clean stop.
    assert await asyncio.to_thread(serve.stop) == 0, serve.log()
    assert not [pid for pid in pids.values() if _alive(pid)]
    async with engine.connect() as conn:
        written = await conn.scalar(sa.select(sa.func.sum(api_key_usage.c.requests))
                                    .where(api_key_usage.c.key_id == key.id))
    assert written == 60
    assert "SIGTERM: stopping every API process gracefully" in serve.log()
    assert "Traceback" not in serve.log() and "could not be written" not in serve.log()


async def test_a_killed_api_process_is_replaced_while_the_port_keeps_answering(start_serve: Any) -> None:
    serve = start_serve()
    pids = await asyncio.to_thread(serve.wait_listening)
    os.kill(pids[1], signal.SIGKILL)
    deadline = time.monotonic() + 40
    while f"API process 1 (pid {pids[1]}) killed by SIGKILL" not in serve.log():
        assert time.monotonic() < deadline, serve.log()
        await asyncio.sleep(0.05)

    # Every new connection meanwhile reaches the other process (each request on its own connection).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(20):
            async with session.get(f"{serve.url}/healthz") as resp:
                assert resp.status == 200
        while len(serve.serving().get(1, [])) < 2:
            assert time.monotonic() < deadline, serve.log()
            await asyncio.sleep(0.1)
        replacement = serve.serving()[1][-1]
        assert replacement != pids[1] and _alive(replacement)
        assert "starting it again in 1 s" in serve.log()
        for _ in range(20):
            async with session.get(f"{serve.url}/healthz") as resp:
                assert resp.status == 200

    # The supervisor itself SIGKILLed: its API processes notice and stop.
    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait(timeout=10)
    children = [replacement, pids[2]]
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, f"API processes outlived their supervisor\n{serve.log()}"
        await asyncio.sleep(0.1)
    assert "the supervisor is gone: this API process stops" in serve.log()


async def test_api_processes_that_cannot_start_stop_serve_with_their_reason(start_serve: Any) -> None:
    """A bad S3 endpoint (botocore's own check, made with the configuration): exit 1 with the reason
    on the last line, nothing announced, no endless restarts."""
    serve = start_serve(OUIPOST_STORAGE="s3", OUIPOST_S3_BUCKET="media", OUIPOST_S3_ENDPOINT_URL="not a url")
    code = await asyncio.to_thread(serve.process.wait, 60)
    log = serve.log()
    assert code == 1, log
    assert re.search(r"OUIPOST_S3_ENDPOINT_URL must be an http\(s\) URL .*'not a url'\)\n$", log), log
    assert "Oui Post listening" not in log and "is serving" not in log
    assert "starting it again" not in log
