"""GET /metrics: Prometheus text with the expected families, route templates as labels, the access
rules (bearer token, else loopback only), and several real processes adding up on one scrape."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.jobs import queue
from tests.conftest import Key, make_env
from tests.servers import free_port
from tests.test_cli import ROOT

TOKEN = "metrics-token-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of a Prometheus text answer (parsing it checks the format)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: TestClient, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    return samples(await resp.text())


async def test_metrics_count_requests_by_route_template_method_and_status(client: TestClient, key: Key) -> None:
    before = await scrape(client)
    headers = key.headers()
    for post_id in ("post_0190a0b0-0000-7000-8000-000000000001", "post_0190a0b0-0000-7000-8000-000000000002"):
        resp = await client.get(f"/api/posts/{post_id}", headers=headers)
        assert resp.status == 404
    assert (await client.get("/api/posts", headers=headers)).status == 200
    assert (await client.get("/no/such/route/123")).status == 404
    after = await scrape(client)

    single = "/api/posts/{id}"
    assert value(after, "ouipost_http_requests_total", route=single, method="GET", status="404") - value(
        before, "ouipost_http_requests_total", route=single, method="GET", status="404") == 2
    assert value(after, "ouipost_http_requests_total", route="/api/posts", method="GET", status="200") - value(
        before, "ouipost_http_requests_total", route="/api/posts", method="GET", status="200") == 1
    assert value(after, "ouipost_http_request_duration_seconds_count", route=single, method="GET") - value(
        before, "ouipost_http_request_duration_seconds_count", route=single, method="GET") == 2
    assert value(after, "ouipost_http_requests_total", route="unmatched", method="GET", status="404") >= 1
    routes = {dict(labels).get("route") for name, labels in after if name == "ouipost_http_requests_total"}
    assert not [r for r in routes if r and ("post_0190" in r or "/no/such" in r)], routes
    # The queue is asked at scrape time: the families are there, and the database answered.
    assert value(after, "ouipost_scrape_errors", source="database") == 0


async def test_queue_depth_and_oldest_due_age_come_from_the_database(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, clock: Clock
) -> None:
    from datetime import timedelta

    # No embedded worker: the jobs stay where they are put.
    client = await aiohttp_client(create_app(settings.with_overrides(workers=0), engine=engine, clock=clock))
    now = clock.now()
    async with engine.begin() as conn:
        for minutes in (5, 1):
            await queue.enqueue(conn, kind="noop", payload={}, queue="metrics_q", now=now,
                                run_at=now - timedelta(minutes=minutes))
        await queue.enqueue(conn, kind="noop", payload={}, queue="metrics_q", now=now, run_at=now + timedelta(hours=1))
    found = await scrape(client)
    assert value(found, "ouipost_queue_jobs", queue="metrics_q", state="due") == 2
    assert value(found, "ouipost_queue_jobs", queue="metrics_q", state="scheduled") == 1
    assert 290 <= value(found, "ouipost_queue_oldest_due_job_age_seconds", queue="metrics_q") <= 3600


async def test_with_a_token_only_that_bearer_token_reads_the_metrics(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, clock: Clock
) -> None:
    client = await aiohttp_client(create_app(settings.with_overrides(metrics_token=TOKEN), engine=engine, clock=clock))
    missing = await client.get("/metrics")
    assert missing.status == 401
    assert (await missing.json())["error"]["code"] == "UNAUTHORIZED"
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all-000"})
    assert wrong.status == 403
    assert (await wrong.json())["error"]["code"] == "FORBIDDEN"
    found = await scrape(client, Authorization=f"Bearer {TOKEN}")
    assert any(name == "ouipost_http_requests_total" for name, _ in found)


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, or None."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Processes:
    """Real `run.py` processes of one test, stopped at its end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
        self.logs = logs
        self.running: list[subprocess.Popen] = []

    def start(self, *args: str, name: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "w") as log:  # the child keeps its own descriptor
            process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT)
        self.running.append(process)
        return process

    def serve(self, port: int, name: str, *extra: str) -> subprocess.Popen:
        process = self.start("serve", "--port", str(port), "--no-workers", *extra, name=name)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            assert process.poll() is None, (self.logs / f"{name}.log").read_text()
            try:
                if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    return process
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{name} did not become healthy")

    def stop(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def processes(database_url: str, tmp_path: Path) -> Any:
    running = Processes(make_env(database_url, tmp_path / "data"), tmp_path)
    yield running
    running.stop_all()


def _scrape_url(url: str, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = _get(url + "/metrics", headers)
    assert status == 200, text
    return samples(text)


async def test_two_servers_and_a_worker_add_up_on_one_scrape(
    processes: Processes, engine: AsyncEngine, tmp_path: Path
) -> None:
    port_a, port_b, port_c = free_port(), free_port(), free_port()
    server_a = processes.serve(port_a, "a")
    server_b = processes.serve(port_b, "b")
    for _ in range(3):
        assert _get(f"http://127.0.0.1:{port_a}/api/platforms")[0] == 401
    for _ in range(4):
        assert _get(f"http://127.0.0.1:{port_b}/api/platforms")[0] == 401

    async with engine.begin() as conn:
        now = Clock().now()
        for _ in range(5):
            await queue.enqueue(conn, kind="noop", payload={}, queue="metrics_mp", now=now)
        await queue.enqueue(conn, kind="no_such_kind", payload={}, queue="metrics_mp", now=now)
    processes.start("worker", "--queues", "metrics_mp", "--poll-interval", "0.2", name="worker")
    unauthorized = {"route": "/api/platforms", "method": "GET", "status": "401"}
    deadline = time.monotonic() + 30
    while True:
        found = _scrape_url(f"http://127.0.0.1:{port_a}")
        done = value(found, "ouipost_jobs_succeeded_total", queue="metrics_mp", kind="noop") == 5 and value(
            found, "ouipost_jobs_failed_total", queue="metrics_mp", kind="no_such_kind") == 1
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert value(found, "ouipost_http_requests_total", **unauthorized) == 7  # 3 on A + 4 on B, scraped on A
    assert value(found, "ouipost_jobs_claimed_total", queue="metrics_mp", kind="noop") == 5
    assert value(found, "ouipost_jobs_succeeded_total", queue="metrics_mp", kind="noop") == 5
    assert value(found, "ouipost_jobs_failed_total", queue="metrics_mp", kind="no_such_kind") == 1
    assert _scrape_url(f"http://127.0.0.1:{port_b}")[("ouipost_http_requests_total",
                                                      frozenset(unauthorized.items()))] == 7

    # A process that ends leaves its counts behind: B stops, C starts (and folds B's files away).
    processes.stop(server_b)
    processes.serve(port_c, "c")
    assert value(_scrape_url(f"http://127.0.0.1:{port_c}"), "ouipost_http_requests_total", **unauthorized) == 7
    names = sorted(p.name for p in (tmp_path / "data" / "metrics").glob("*.db"))
    assert f"counter_{server_b.pid}.db" not in names and "counter_archive.db" in names, names
    assert server_a.poll() is None


def test_without_a_token_only_loopback_clients_read_the_metrics(processes: Processes) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address other than loopback")
    port = free_port()
    processes.env["OUIPOST_HOST"] = "0.0.0.0"
    processes.serve(port, "open")
    status, body = _get(f"http://{address}:{port}/metrics")
    assert status == 403 and '"FORBIDDEN"' in body and "OUIPOST_METRICS_TOKEN" in body
    assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 200


def test_with_a_token_remote_scrapers_use_it(processes: Processes) -> None:
    address = _non_loopback_address() or "127.0.0.1"
    port = free_port()
    processes.env.update(OUIPOST_HOST="0.0.0.0", OUIPOST_METRICS_TOKEN=TOKEN)
    processes.serve(port, "token")
    assert _get(f"http://{address}:{port}/metrics")[0] == 401
    assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 401  # the token is asked of loopback too
    status, text = _get(f"http://{address}:{port}/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "ouipost_http_requests_total" in text


async def test_a_worker_serves_its_own_metrics_on_metrics_port(processes: Processes, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for _ in range(3):
            await queue.enqueue(conn, kind="noop", payload={}, queue="metrics_w", now=Clock().now())
    port = free_port()
    processes.env["OUIPOST_METRICS_TOKEN"] = TOKEN
    processes.start("worker", "--queues", "metrics_w", "--poll-interval", "0.2", "--metrics-port", str(port),
                    name="worker")
    deadline = time.monotonic() + 30
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    while time.monotonic() < deadline:
        try:
            found = _scrape_url(f"http://127.0.0.1:{port}", Authorization=f"Bearer {TOKEN}")
        except (OSError, AssertionError):
            found = {}
        if value(found, "ouipost_jobs_succeeded_total", queue="metrics_w", kind="noop") == 3:
            break
        await asyncio.sleep(0.3)
    assert value(found, "ouipost_jobs_succeeded_total", queue="metrics_w", kind="noop") == 3
    assert value(found, "ouipost_scrape_errors", source="database") == 0
    status, body = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 401 and '"UNAUTHORIZED"' in body


async def test_a_scheduled_publication_counts_its_outcome_lateness_and_platform_calls(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, frozen_clock: Any, make_key: Any
) -> None:
    from datetime import timedelta

    from tests.schedules.helpers import create_post
    from tests.test_accounts import connect

    client = await aiohttp_client(create_app(settings, engine=engine, clock=frozen_clock))
    key = await make_key()
    await connect(client, key, "bluesky")
    before = await scrape(client)
    post = await create_post(client, key, ["bluesky"], content="counted once")
    at = (frozen_clock.now() + timedelta(minutes=2)).replace(microsecond=0)
    resp = await client.post(f"/api/posts/{post['id']}/schedule", headers=key.headers(),
                             json={"scheduled_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert resp.status == 200, await resp.text()
    frozen_clock.advance(minutes=3)  # published a minute after its time, by this clock
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        got = await client.get(f"/api/posts/{post['id']}", headers=key.headers())
        status = (await got.json())["data"]["post"]["status"]
        if status == "published" or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == "published"
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ouipost_publish_outcomes_total", network="bluesky", status="published") == 1
    assert delta("ouipost_publish_lateness_seconds_count", network="bluesky") == 1
    assert 55 <= delta("ouipost_publish_lateness_seconds_sum", network="bluesky") <= 75
    assert delta("ouipost_platform_call_duration_seconds_count", network="bluesky", result="2xx") >= 1
    assert delta("ouipost_jobs_succeeded_total", queue="publish", kind="publish_post") >= 1


async def test_follow_ups_are_counted_by_network_kind_and_outcome(client: TestClient, key: Key, sandbox: Any) -> None:
    from tests.publishing.test_followups import create_post, parts_of, publish_and_wait
    from tests.test_accounts import connect

    await connect(client, key, "bluesky")
    before = await scrape(client)
    post = await create_post(client, key, ["bluesky"], first_comment="Menu below",
                             thread=[{"content": "2/3 Bread at 7"}, {"content": "3/3 See you"}])
    # The post and the comment are answered; the first reply's answer is lost, so the second is not sent.
    sandbox.add_fault("bluesky", "drop_after", path_contains="createRecord", after=2)
    done = await publish_and_wait(client, key, post["id"])
    assert [(p["kind"], p["status"]) for p in parts_of(done, "bluesky")] == [
        ("comment", "published"), ("reply", "failed"), ("reply", "failed")]
    after = await scrape(client)

    def delta(**labels: str) -> float:
        name = "ouipost_followup_outcomes_total"
        return value(after, name, network="bluesky", **labels) - value(before, name, network="bluesky", **labels)

    assert delta(kind="comment", status="published") == 1
    assert delta(kind="reply", status="failed") == 2
    assert delta(kind="reply", status="published") == 0
    assert value(after, "ouipost_publish_outcomes_total", network="bluesky", status="published") == \
        value(before, "ouipost_publish_outcomes_total", network="bluesky", status="published") + 1


@pytest.mark.slow  # waits for an unreachable Redis
async def test_rate_limit_rejections_login_failures_and_redis_availability_are_counted(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, frozen_clock: Any, make_key: Any
) -> None:
    # A frozen clock: the four requests fall in one rate-limit minute whenever the test runs.
    app = create_app(settings.with_overrides(workers=0, rate_limits={"starter": 60, "tight": 2}),
                     engine=engine, clock=frozen_clock)
    client = await aiohttp_client(app)
    key = await make_key(tier="tight")
    before = await scrape(client)
    answers = [(await client.get("/api/platforms", headers=key.headers())).status for _ in range(4)]
    assert answers == [200, 200, 429, 429]
    login = await client.post("/admin/login", json={"email": "nobody@example.com", "password": "not the password"})
    assert login.status == 401
    after = await scrape(client)
    assert value(after, "ouipost_rate_limit_rejections_total", tier="tight") - value(
        before, "ouipost_rate_limit_rejections_total", tier="tight") == 2
    assert value(after, "ouipost_login_failures_total", reason="unknown_email") - value(
        before, "ouipost_login_failures_total", reason="unknown_email") == 1
    assert ("ouipost_redis_up", frozenset()) not in after  # no Redis configured: no such gauge

    # Redis on a port where nothing listens: requests pass unlimited, and the scrape says Redis is down.
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    redis_down = await aiohttp_client(create_app(settings.with_overrides(workers=0, redis_url=unreachable),
                                                 engine=engine, clock=frozen_clock))
    assert value(await scrape(redis_down), "ouipost_redis_up") == 0
    assert ("ouipost_redis_up", frozenset()) in await scrape(redis_down)


async def test_webhook_deliveries_are_counted_by_outcome(
    aiohttp_client: Any, aiohttp_server: Any, settings: Settings, engine: AsyncEngine, clock: Clock
) -> None:
    from aiohttp import web

    from tests.webhooks.conftest import add_webhook, sign_in

    answers = iter((200, 500))

    async def receive(request: web.Request) -> web.Response:
        return web.Response(status=next(answers))

    endpoint = web.Application()
    endpoint.router.add_post("/hook", receive)
    server = await aiohttp_server(endpoint)
    private = settings.with_overrides(workers=0, webhook_allow_private=True)
    client = await aiohttp_client(create_app(private, engine=engine, clock=clock))
    admin = await sign_in(client, engine, clock, "hooks-metrics@example.com")
    hook_id, _ = await add_webhook(engine, private, clock, str(server.make_url("/hook")), ["post.published"])
    before = await scrape(client)
    for expected in ("succeeded", "failed"):  # a test ping is not retried: a 500 fails it at once
        resp = await client.post(f"/admin/webhooks/{hook_id}/test", headers=admin.headers)
        assert (await resp.json())["data"]["delivery"]["status"] == expected
    after = await scrape(client)
    for outcome in ("succeeded", "failed"):
        assert value(after, "ouipost_webhook_deliveries_total", outcome=outcome) - value(
            before, "ouipost_webhook_deliveries_total", outcome=outcome) == 1
