"""Publishing with real OS processes: `run.py worker` processes and a standalone sandbox process
(`python -m ouipost.sandbox`), steered through its control API. A worker SIGKILLed while the network
is answering its create call: its job is taken over after the lease and the network received the
post at most once. SIGTERM while publishing: the call is finished, the post published, exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ouipost.app import create_app
from ouipost.db.queue_tables import jobs
from ouipost.db.tables import post_target_parts, post_targets, posts
from ouipost.posts import service
from ouipost.publishing import service as publishing
from tests.conftest import make_env
from tests.queue.test_worker import wait_until
from tests.test_accounts import connect
from tests.test_publishing import create_post

# Worker and sandbox processes: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CREATE = "createRecord"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SandboxProcess:
    """`python -m ouipost.sandbox` on a free port, and its control API."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log_path.open("w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "ouipost.sandbox", "--port", str(self.port)],
                                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.get("/_sandbox/publications")
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the sandbox process did not start")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def publications(self, network: str) -> list[dict[str, Any]]:
        return self.get(f"/_sandbox/publications?network={network}")["publications"]

    def creates(self, network: str) -> list[dict[str, Any]]:
        return [r for r in self.get(f"/_sandbox/requests?network={network}")["requests"] if CREATE in r["path"]]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[SandboxProcess]:
    process = SandboxProcess(tmp_path / "sandbox.log")
    yield process
    process.stop()


@pytest.fixture
def settings(settings: Any, sandbox_process: SandboxProcess) -> Any:
    """The test app talks to the sandbox process (accounts connect there), with no worker of its own."""
    return settings.with_overrides(platform_base_url=sandbox_process.url, workers=0)


@pytest.fixture
def spawn(database_url: str, tmp_path: Path, sandbox_process: SandboxProcess
          ) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """spawn(*worker_args) -> a `run.py worker` process on the test database and the sandbox process."""
    processes: list[subprocess.Popen[str]] = []
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           **make_env(database_url, tmp_path / "data", OUIPOST_PLATFORM_BASE_URL=sandbox_process.url)}

    def start(*args: str) -> subprocess.Popen[str]:
        with (tmp_path / f"worker-{len(processes)}.log").open("w") as log:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "worker", "--poll-interval", "0.1", *args],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, engine: Any) -> Any:
    return await aiohttp_client(create_app(settings, engine=engine))


async def _publish_request(client: Any, key: Any, engine: Any) -> str:
    """A Bluesky post whose publish job is committed, for the worker processes to run."""
    await connect(client, key, "bluesky")
    post = await create_post(client, key, ["bluesky"], content="Sent at most once, whatever happens")
    async with engine.begin() as conn:
        row = await service.get_post(conn, key.workspace_id, post["id"])
        await publishing.request_publish(conn, row, datetime.now(UTC))
    return post["id"]


async def _post_status(engine: Any, post_id: str) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(sa.select(posts.c.status).where(posts.c.id == post_id)))


async def _publish_job(engine: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(jobs).where(jobs.c.kind == "publish_post"))).one()


async def test_a_worker_killed_mid_publish_is_taken_over_and_the_post_reaches_the_network_at_most_once(
    app_client: Any, key: Any, engine: Any, spawn: Any, sandbox_process: SandboxProcess
) -> None:
    post_id = await _publish_request(app_client, key, engine)
    delay = 4.0
    sandbox_process.post("/_sandbox/faults", {"network": "bluesky", "kind": "slow", "delay": delay,
                                              "path_contains": CREATE})
    doomed = spawn("--lease-seconds", "2")
    await wait_until(lambda: len(sandbox_process.creates("bluesky")) == 1, timeout=60)
    doomed.send_signal(signal.SIGKILL)  # the create call is on the wire, its answer not yet back
    assert doomed.wait(timeout=10) == -signal.SIGKILL

    heir = spawn("--lease-seconds", "2")
    await wait_until(lambda: _is_final(engine, post_id), timeout=60)
    await asyncio.sleep(delay)  # let the slow create the dead worker sent complete on the network's side
    heir.send_signal(signal.SIGTERM)
    assert heir.wait(timeout=30) == 0

    job = await _publish_job(engine)
    assert (job.status, job.attempts) == ("done", 2)  # the heir's claim after the lease
    async with engine.connect() as conn:
        target = (await conn.execute(sa.select(post_targets).where(post_targets.c.post_id == post_id))).mappings().one()
    # The outcome of the interrupted call is unknown to us: never sent again blindly.
    assert (target["status"], target["error_code"]) == ("failed", "OUTCOME_UNKNOWN")
    assert len(sandbox_process.creates("bluesky")) == 1
    assert len(sandbox_process.publications("bluesky")) <= 1


async def test_sigterm_while_publishing_finishes_the_call_and_publishes_once(
    app_client: Any, key: Any, engine: Any, spawn: Any, sandbox_process: SandboxProcess
) -> None:
    post_id = await _publish_request(app_client, key, engine)
    sandbox_process.post("/_sandbox/faults", {"network": "bluesky", "kind": "slow", "delay": 1.5,
                                              "path_contains": CREATE})
    worker = spawn()
    await wait_until(lambda: len(sandbox_process.creates("bluesky")) == 1, timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

    assert await _post_status(engine, post_id) == "published"
    job = await _publish_job(engine)
    assert (job.status, job.attempts) == ("done", 1)
    assert len(sandbox_process.publications("bluesky")) == 1


async def _is_final(engine: Any, post_id: str) -> bool:
    return await _post_status(engine, post_id) in ("published", "failed", "partially_published")


# --- follow-ups (threads and first comments) ----------------------------------------------------


async def _thread_to_publish(client: Any, key: Any, engine: Any, **fields: Any) -> str:
    await connect(client, key, "bluesky")
    body = {"content": "1/4 We open on Monday", "platforms": ["bluesky"], **fields}
    resp = await client.post("/api/posts", json=body, headers=key.headers())
    assert resp.status == 201, await resp.text()
    post_id = (await resp.json())["data"]["post"]["id"]
    async with engine.begin() as conn:
        row = await service.get_post(conn, key.workspace_id, post_id)
        await publishing.request_publish(conn, row, datetime.now(UTC))
    return str(post_id)


async def _parts(engine: Any, post_id: str) -> list[tuple[str, str | None]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(post_target_parts.c.status, post_target_parts.c.error_code)
                                   .where(post_target_parts.c.post_id == post_id)
                                   .order_by(post_target_parts.c.seq))).all()
    return [(r.status, r.error_code) for r in rows]


THREAD = [{"content": "2/4 Fresh bread from 7 am"}, {"content": "3/4 Croissants at 8"}, {"content": "4/4 See you"}]


async def test_a_worker_killed_while_a_part_is_on_the_wire_never_sends_a_confirmed_part_again(
    app_client: Any, key: Any, engine: Any, spawn: Any, sandbox_process: SandboxProcess
) -> None:
    post_id = await _thread_to_publish(app_client, key, engine, thread=THREAD)
    delay = 4.0
    # The post and part one are answered at once; part two's create is slow: the worker dies with it.
    sandbox_process.post("/_sandbox/faults", {"network": "bluesky", "kind": "slow", "delay": delay,
                                              "path_contains": CREATE, "after": 2})
    doomed = spawn("--lease-seconds", "2")
    await wait_until(lambda: len(sandbox_process.creates("bluesky")) == 3, timeout=60)
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(timeout=10) == -signal.SIGKILL
    assert await _parts(engine, post_id) == [("published", None), ("publishing", None), ("pending", None)]

    heir = spawn("--lease-seconds", "2")
    await wait_until(lambda: _is_final(engine, post_id), timeout=60)
    await asyncio.sleep(delay)  # the slow create the dead worker sent completes on the network's side
    heir.send_signal(signal.SIGTERM)
    assert heir.wait(timeout=30) == 0

    assert await _post_status(engine, post_id) == "partially_published"
    assert await _parts(engine, post_id) == [
        ("published", None), ("failed", "OUTCOME_UNKNOWN"), ("failed", "THREAD_BROKEN")]
    texts = [p["text"] for p in sandbox_process.publications("bluesky")]
    assert sorted(texts) == sorted(["1/4 We open on Monday", "2/4 Fresh bread from 7 am", "3/4 Croissants at 8"])
    assert len(sandbox_process.creates("bluesky")) == 3  # nothing sent twice, part three never


async def test_the_heir_resumes_from_the_first_part_not_confirmed(
    app_client: Any, key: Any, engine: Any, spawn: Any, sandbox_process: SandboxProcess
) -> None:
    post_id = await _thread_to_publish(app_client, key, engine, thread=THREAD, first_comment="Menu below")
    delay = 4.0
    # The first comment (the first follow-up) is slow: the worker dies with it on the wire; the
    # thread's parts do not depend on it and were never sent.
    sandbox_process.post("/_sandbox/faults", {"network": "bluesky", "kind": "slow", "delay": delay,
                                              "path_contains": CREATE, "after": 1})
    doomed = spawn("--lease-seconds", "2")
    await wait_until(lambda: len(sandbox_process.creates("bluesky")) == 2, timeout=60)
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(timeout=10) == -signal.SIGKILL

    heir = spawn("--lease-seconds", "2")
    await wait_until(lambda: _is_final(engine, post_id), timeout=60)
    await asyncio.sleep(delay)
    heir.send_signal(signal.SIGTERM)
    assert heir.wait(timeout=30) == 0

    assert await _parts(engine, post_id) == [
        ("failed", "OUTCOME_UNKNOWN"), ("published", None), ("published", None), ("published", None)]
    assert await _post_status(engine, post_id) == "partially_published"
    texts = [p["text"] for p in sandbox_process.publications("bluesky")]
    assert sorted(texts) == sorted(["1/4 We open on Monday", "Menu below", "2/4 Fresh bread from 7 am",
                                    "3/4 Croissants at 8", "4/4 See you"])  # each exactly once
    assert len(sandbox_process.creates("bluesky")) == 5
