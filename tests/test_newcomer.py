"""The traps a newcomer met on the documented path (issue 14), each as a user meets it: real
processes, real ports, real output."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import make_env
from tests.servers import free_port, wait_healthy
from tests.test_cli import ROOT, run_cli
from tests.test_publishing import (  # noqa: F401 -- fixtures
    _prepare_publishing,
    job_context,
    no_worker_settings,
    quiet_client,
)
from workers import publish_post

# Runs the `ouipost` command in processes: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **extra}


def test_a_busy_port_is_one_line_and_keeps_the_first_start_credentials_for_later(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "--port", str(port)], cwd=tmp_path, env=_env(),
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == f"run.py serve: port {port} is in use; use --port or OUIPOST_PORT\n"
    assert "pk_live_" not in result.stdout and "password" not in result.stdout
    # Nothing was created, so the next start that binds is a first start and shows the credentials.
    assert not (tmp_path / "data" / "ouipost.db").exists()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--port", str(port)], cwd=tmp_path, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "First start" in output and "pk_live_" in output


def test_an_unreachable_mysql_database_is_one_line_naming_it_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"mysql+aiomysql://ouipost:s3cret-pass@127.0.0.1:{port}/ouipost"
    for args in (("serve", "--port", str(free_port())), ("migrate",), ("worker",)):
        result = run_cli(*args, env=make_env(url, tmp_path / "data"), timeout=60)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"127.0.0.1:{port}" in lines[0] and "Can't connect" in lines[0]
        assert "s3cret-pass" not in lines[0] and "OUIPOST_DATABASE_URL" in lines[0]


def test_a_sqlite_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    url = f"sqlite+aiosqlite:///{tmp_path / 'file' / 'ouipost.db'}"
    result = run_cli("serve", "--port", str(free_port()), env=make_env(url, tmp_path / "data"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "unable to open database file" in result.stderr


def test_an_empty_host_means_the_default_and_the_banner_says_what_is_bound(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--port", str(port), "--no-workers"], cwd=tmp_path,
        env=_env(OUIPOST_HOST=""), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        wait_healthy(f"http://127.0.0.1:{port}", process)
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert banner.startswith(f"Oui Post listening on http://127.0.0.1:{port} "), banner
    assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{port}"], listening


def test_the_banner_names_every_interface_when_it_listens_on_them(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--port", str(port), "--no-workers", "--host", "0.0.0.0"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert banner.startswith(f"Oui Post listening on http://0.0.0.0:{port} "), banner
    assert f"public URL http://127.0.0.1:{port}" in banner


def test_migrate_says_what_it_did_on_an_empty_database(tmp_path: Path) -> None:
    env = _env(OUIPOST_DATA_DIR=str(tmp_path / "data"))
    first, second = run_cli("migrate", env=env), run_cli("migrate", env=env)
    head = sorted(p.stem for p in (ROOT / "sql" / "versions").glob("[0-9]*.py"))[-1]
    count = len(list((ROOT / "sql" / "versions").glob("[0-9]*.py")))
    assert first.stdout == f"empty database: applied {count} migrations, now at {head}\n"
    assert second.stdout == f"database is at revision {head}\n"


def test_the_standalone_sandbox_says_where_it_listens_and_answers_health(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ouipost.sandbox", "--port", str(port)], cwd=ROOT, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        for path in ("/healthz", "/_sandbox/health"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                assert resp.status == 200
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert f"listening on http://127.0.0.1:{port}" in first


def _worker_output(env: dict[str, str]) -> str:
    """What a worker prints up to its "running" line (its start-up checks come before it)."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "worker"], env=_env(**env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "worker" in line and " running " in line:
                break
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    return "".join(lines) + rest


def test_a_separate_worker_says_when_the_sandbox_it_calls_does_not_answer(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = make_env(database_url, tmp_path / "data")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port), "--no-workers"], env=_env(**env),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        lost = _worker_output({**env, "OUIPOST_PORT": str(free_port())})
        found = _worker_output({**env, "OUIPOST_PORT": str(port)})
    finally:
        server.terminate()
        server.wait(timeout=30)
    errors = [line for line in lost.splitlines() if "ERROR" in line and "sandbox" in line]
    assert len(errors) == 1, lost
    assert "OUIPOST_PUBLIC_URL" in errors[0] and "http://127.0.0.1:" in errors[0]
    assert "sandbox" not in found.split("running", 1)[0], found


async def test_a_worker_logs_each_failed_publish_with_its_code(
    quiet_client: Any, key: Any, engine: Any, sandbox: Any, no_worker_settings: Any,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    post = await _prepare_publishing(quiet_client, key, engine, "bluesky")
    sandbox.add_fault("bluesky", "server_error", path_contains="createRecord")
    with caplog.at_level(logging.WARNING, logger="workers.publish_post"):
        async with aiohttp.ClientSession() as session:
            await publish_post.handle(job_context(engine, no_worker_settings, session, post["id"], attempts=8))
    lines = [r.getMessage() for r in caplog.records]
    assert any(post["id"] in line and "bluesky" in line and "temporary error" in line for line in lines), lines
    assert any(post["id"] in line and "RETRIES_EXHAUSTED" in line for line in lines), lines



def test_create_key_says_which_workspaces_the_key_reaches(tmp_path: Path) -> None:
    env = _env(OUIPOST_DATA_DIR=str(tmp_path / "data"))
    bare = run_cli("create-key", "--name", "mykey", env=env)
    assert bare.returncode == 0 and "reaches no workspace (add --workspace ws_...)" in bare.stdout


async def test_insights_read_just_after_publishing_are_not_zero(
    client: Any, key: Any, engine: Any, settings: Any
) -> None:
    # The README's analytics walk reads a post moments after publishing it: every network's sandbox
    # counts the minute (or hour) under way, so the first sync already has figures.
    from ouipost.core.clock import FrozenClock
    from tests.analytics.conftest import job_context as analytics_job
    from tests.analytics.conftest import target_of
    from tests.analytics.test_sync import post_analytics, published_post
    from workers import sync_analytics

    networks = ["twitter", "linkedin", "bluesky", "facebook", "threads"]
    post = await published_post(client, key, networks)
    clock = FrozenClock()
    async with aiohttp.ClientSession() as session:
        for network in networks:
            target = await target_of(engine, post["id"], network)
            await sync_analytics.handle(analytics_job(engine, settings, session, "sync_analytics",
                                                      {"target_id": target["id"]}, clock=clock))
    by_platform = (await post_analytics(client, key, post["id"]))["by_platform"]
    for network in networks:
        figures = by_platform[network]
        assert figures["impressions"] > 0 or figures["engagement"] > 0, (network, figures)
