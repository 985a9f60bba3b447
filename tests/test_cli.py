"""run.py as a user runs it: real processes, real exit codes, real output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DatabaseUnderTest, make_env
from tests.servers import free_port, wait_healthy

# Runs the command line in processes: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], env=full_env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return make_env(database_url, tmp_path / "data")


def test_help_lists_every_command(cli_env: dict[str, str]) -> None:
    result = run_cli("--help", env=cli_env)
    assert result.returncode == 0
    for command in ("serve", "worker", "migrate", "create-admin", "create-key"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("frobnicate",),
        ("serve", "--port", "eighty"),
        ("serve", "--port", "0"),
        ("create-key",),
        ("create-key", "--name", "k", "--permission", "everything"),
        ("create-key", "--name", "k", "--tier", "platinum"),
        ("create-admin", "--email", "not-an-email", "--password", "long-enough-password"),
        ("create-admin", "--email", "a@example.com", "--password", "short"),
        ("worker", "--concurrency", "0"),
    ],
)
def test_bad_arguments_exit_2_with_usage(cli_env: dict[str, str], args: tuple[str, ...]) -> None:
    result = run_cli(*args, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr


def test_bad_settings_exit_1_with_one_clear_reason(cli_env: dict[str, str]) -> None:
    result = run_cli("migrate", env={**cli_env, "OUIPOST_PORT": "eighty"})
    assert result.returncode == 1
    assert "OUIPOST_PORT must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_create_key_prints_the_key_alone_on_its_last_line(cli_env: dict[str, str]) -> None:
    result = run_cli("create-key", "--name", "CI key", "--tier", "professional", env=cli_env)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("pk_live_") and len(last) == 40


def test_create_key_json_prints_the_record(cli_env: dict[str, str]) -> None:
    result = run_cli("create-key", "--name", "json key", "--permission", "posts.read", "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["name"] == "json key" and record["permissions"] == ["posts.read"]
    assert record["api_key"].startswith(record["prefix"])
    assert record["id"].startswith("key_")


def test_create_key_for_a_missing_workspace_exits_1(cli_env: dict[str, str]) -> None:
    result = run_cli("create-key", "--name", "k", "--workspace", "ws_nope", env=cli_env)
    assert result.returncode == 1
    assert "no workspace ws_nope" in result.stderr


def test_create_admin_then_the_same_email_again_exits_1(cli_env: dict[str, str]) -> None:
    args = ("create-admin", "--email", "Ops@Example.com", "--password", "correct horse battery")
    first = run_cli(*args, env=cli_env)
    assert first.returncode == 0, first.stderr
    assert "ops@example.com" in first.stdout and "correct horse" not in first.stdout
    second = run_cli(*args, env=cli_env)
    assert second.returncode == 1
    assert "already exists" in second.stderr


def test_migrate_twice_is_a_no_op(cli_env: dict[str, str]) -> None:
    first, second = run_cli("migrate", env=cli_env), run_cli("migrate", env=cli_env)
    assert first.returncode == second.returncode == 0
    head = first.stdout.strip().rsplit(" ", 1)[-1]  # "... now at <rev>" or "database is at revision <rev>"
    assert second.stdout == f"database is at revision {head}\n"


def test_worker_runs_until_sigterm_then_exits_0(cli_env: dict[str, str]) -> None:
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **cli_env}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "worker", "--concurrency", "2", "--queues", "default,publish"],
        env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert "worker" in first_line and "running" in first_line and "default, publish" in first_line
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_worker_with_a_missing_handler_module_exits_1(cli_env: dict[str, str]) -> None:
    result = run_cli("worker", env={**cli_env, "OUIPOST_EXTRA_JOB_HANDLERS": "tests.no_such_module"})
    assert result.returncode == 1
    assert "OUIPOST_EXTRA_JOB_HANDLERS" in result.stderr and "Traceback" not in result.stderr


def _serve(cwd: Path, port: int, env: dict[str, str] | None = None) -> tuple[str, int]:
    """Run `python run.py --port P` in `cwd` with nothing configured; return its output once healthy."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--port", str(port)], cwd=cwd, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    return output, process.returncode


def _get(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)


def test_first_start_prints_credentials_once_and_they_work(tmp_path: Path) -> None:
    port = free_port()
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--port", str(port)], cwd=tmp_path, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        process.terminate()
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    key = next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.strip().startswith("API key"))
    assert key.startswith("pk_live_")
    assert "admin@localhost" in output
    assert (tmp_path / "data" / "ouipost.db").exists()

    second_output, _ = _serve(tmp_path, port)
    assert "pk_live_" not in second_output and "First start" not in second_output

    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--port", str(port)], cwd=tmp_path, env=full_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        listed = _get(f"http://127.0.0.1:{port}/api/workspaces", key)
        assert [w["name"] for w in listed["data"]["workspaces"]] == ["Default"]
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_database_server_refuses_to_start_with_pending_migrations(
    test_database: DatabaseUnderTest, tmp_path: Path
) -> None:
    if not test_database.is_server:
        pytest.skip("only MySQL/MariaDB and PostgreSQL refuse; SQLite migrates itself")
    from tests.conftest import create_side_database, drop_side_database

    empty = create_side_database(test_database, "empty")
    try:
        env = make_env(empty, tmp_path / "d")
        env.pop("OUIPOST_AUTO_MIGRATE")
        result = run_cli("serve", "--port", str(free_port()), env=env, timeout=30)
        assert result.returncode == 1
        assert "run `python run.py migrate`" in result.stderr
    finally:
        drop_side_database(test_database, "empty")
