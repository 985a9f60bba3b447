"""OUIPOST_LOG_FORMAT=json: one JSON object per line with the request id (and the job in workers),
tracebacks inside the object, no secrets; a bad value stops the start naming the variable."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.app import create_app
from ouipost.config import Settings, SettingsError, load_settings
from ouipost.core.clock import Clock
from ouipost.core.logs import JsonFormatter
from ouipost.db.queue_tables import jobs
from ouipost.jobs import queue
from tests.conftest import make_env
from tests.servers import free_port
from tests.test_cli import ROOT, run_cli


def _lines(text: str) -> list[dict[str, Any]]:
    """Every line as JSON (a line that does not parse fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _run_until(args: list[str], env: dict[str, str], ready: Any, act: Any) -> str:
    """Start run.py with `args`, call `act()` once `ready()` holds, stop it with SIGTERM: its stderr."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], env=full_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        while not ready():
            assert process.poll() is None and time.monotonic() < deadline, "process did not get ready"
            time.sleep(0.2)
        act()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return stderr


@pytest.mark.slow  # a serve process
def test_json_log_lines_carry_the_request_id_and_no_secrets(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def requests() -> None:
        request = urllib.request.Request(base + "/healthz?code=oauth-code-secret&state=s3cr3t",
                                         headers={"X-Request-ID": "trace-json-123"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.headers["X-Request-ID"] == "trace-json-123"

    env = make_env(database_url, tmp_path / "data", OUIPOST_LOG_FORMAT="json")
    stderr = _run_until(["serve", "--port", str(port)], env, healthy, requests)
    lines = _lines(stderr)
    assert lines, stderr
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= line.keys(), line
        assert line["timestamp"].endswith("Z")
    access = [line for line in lines if line.get("request_id") == "trace-json-123"]
    assert len(access) == 1 and access[0]["logger"] == "ouipost.access"
    assert "/healthz" in access[0]["message"] and access[0]["level"] == "INFO"
    assert "oauth-code-secret" not in stderr and "s3cr3t" not in stderr


async def test_an_unhandled_error_logs_its_traceback_inside_one_json_object(
    aiohttp_client: Any, settings: Settings, engine: AsyncEngine, clock: Clock
) -> None:
    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("the handler broke")

    app = create_app(settings.with_overrides(workers=0), engine=engine, clock=clock)
    app.router.add_get("/explode", explode)
    client = await aiohttp_client(app)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ouipost.http")
    logger.addHandler(handler)
    try:
        resp = await client.get("/explode", headers={"X-Request-ID": "trace-boom-1"})
    finally:
        logger.removeHandler(handler)
    assert resp.status == 500
    [line] = _lines(stream.getvalue())  # one object, one line, whatever the traceback's length
    assert line["level"] == "ERROR" and line["logger"] == "ouipost.http"
    assert line["request_id"] == "trace-boom-1"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: the handler broke" in line["exception"]


@pytest.mark.slow  # a worker process
async def test_worker_json_lines_name_the_job(database_url: str, tmp_path: Path, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        job_id = await queue.enqueue(conn, kind="no_such_kind", payload={}, queue="logs_q", now=Clock().now())
    env = make_env(database_url, tmp_path / "data", OUIPOST_LOG_FORMAT="json")
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "worker", "--queues", "logs_q", "--poll-interval", "0.2",
        env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            async with engine.connect() as conn:
                status = (await conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id))).scalar_one()
            if status == "failed" or time.monotonic() > deadline or process.returncode is not None:
                break
            await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, raw = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    stderr = raw.decode()
    failed = [line for line in _lines(stderr) if line.get("job_id") == job_id]
    assert failed and failed[0]["job_kind"] == "no_such_kind" and failed[0]["level"] == "WARNING", stderr


@pytest.mark.slow  # the command line in a process
def test_a_bad_log_format_stops_the_start_naming_the_variable(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="OUIPOST_LOG_FORMAT must be text or json"):
        load_settings(make_env(database_url, tmp_path / "data", OUIPOST_LOG_FORMAT="yaml"))
    assert load_settings(make_env(database_url, tmp_path / "data", OUIPOST_LOG_FORMAT="JSON")).log_format == "json"
    result = run_cli("serve", "--port", str(free_port()),
                     env=make_env(database_url, tmp_path / "data", OUIPOST_LOG_FORMAT="xml"), timeout=30)
    assert result.returncode == 1
    assert "OUIPOST_LOG_FORMAT" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # the command line in a process
def test_a_short_metrics_token_stops_the_start(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="OUIPOST_METRICS_TOKEN"):
        load_settings(make_env(database_url, tmp_path / "data", OUIPOST_METRICS_TOKEN="short"))
