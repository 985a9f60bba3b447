"""`serve --processes N` refusals that need no database server, and the supervisor's restart and
give-up rules with small child processes of its own (real processes, spawned as for the API).

The API processes themselves (1,000 posts through two of them, SIGTERM, a SIGKILLed child) are in
tests/drills/test_serve_processes.py: they need MariaDB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ouipost import supervisor
from ouipost.supervisor import Supervisor
from tests.conftest import TEST_SECRET
from tests.servers import free_port

# Starts `serve` processes and gunicorn: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE_MYSQL = "mysql+aiomysql://root@127.0.0.1:1/nothing_here"


def run_serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                "OUIPOST_DATA_DIR": str(tmp_path / "data"), "OUIPOST_SECRET_KEY": TEST_SECRET, **env}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_several_processes_on_sqlite_are_refused_with_the_reason(tmp_path: Path) -> None:
    done = run_serve(tmp_path, "--processes", "2", "--port", str(free_port()))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--processes 2 needs MySQL/MariaDB" in done.stderr
    assert "listening" not in done.stdout


def test_several_processes_with_the_built_in_sandbox_are_refused(tmp_path: Path) -> None:
    done = run_serve(tmp_path, "--processes", "2", "--port", str(free_port()), OUIPOST_DATABASE_URL=UNREACHABLE_MYSQL)
    assert done.returncode == 1
    assert "OUIPOST_PLATFORM_BASE_URL" in done.stderr and "python -m ouipost.sandbox" in done.stderr


def test_a_busy_port_stops_several_processes_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, "--processes", "2", "--port", str(port), OUIPOST_DATABASE_URL=UNREACHABLE_MYSQL,
                         OUIPOST_PLATFORM_BASE_URL="http://127.0.0.1:9")
    assert done.returncode == 1
    assert done.stderr.strip() == f"run.py serve: port {port} is in use; use --port or OUIPOST_PORT"
    assert done.stdout == ""


def test_an_unreachable_database_stops_several_processes_before_any_starts(tmp_path: Path) -> None:
    done = run_serve(tmp_path, "--processes", "2", "--port", str(free_port()), OUIPOST_DATABASE_URL=UNREACHABLE_MYSQL,
                     OUIPOST_PLATFORM_BASE_URL="http://127.0.0.1:9")
    assert done.returncode == 1
    assert "cannot use the database" in done.stderr and "127.0.0.1:1" in done.stderr
    assert "is serving" not in done.stderr and done.stdout == ""


# --- the supervisor, with children of its own ----------------------------------------------------
# Children are spawned: these functions are imported by name in a fresh interpreter.


def child_that_cannot_start(link: Any) -> None:
    link.failed("port 1 is in use; use --port or OUIPOST_PORT")
    sys.exit(1)


def child_that_serves(marker: str, link: Any) -> None:
    """Ready at once; waits for SIGTERM, then writes `marker` (its clean stop) and exits 0."""
    signal.signal(signal.SIGTERM, lambda *_: (Path(marker).write_text("stopped"), sys.exit(0)))
    link.ready()
    while True:
        time.sleep(0.1)


def child_that_dies_after_start(link: Any) -> None:
    link.ready()
    time.sleep(0.2)
    os._exit(3)


def child_that_ignores_sigterm(link: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    link.ready()
    while True:
        time.sleep(0.1)


def test_a_child_that_does_not_stop_in_time_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "STOP_SECONDS", 1.0)
    runner = Supervisor(child_that_ignores_sigterm, (), 1, on_ready=lambda _: os.kill(os.getpid(), signal.SIGTERM))
    assert runner.run() == 1
    assert runner.failure is not None and "API process 1" in runner.failure and "killed by SIGKILL" in runner.failure


def test_a_child_that_cannot_start_stops_the_supervisor_with_its_reason() -> None:
    runner = Supervisor(child_that_cannot_start, (), 2)
    started = time.monotonic()
    assert runner.run() == 1
    assert runner.failure == "API process 1 could not start: port 1 is in use; use --port or OUIPOST_PORT" or \
        runner.failure == "API process 2 could not start: port 1 is in use; use --port or OUIPOST_PORT"
    assert time.monotonic() - started < 30


def test_a_child_that_keeps_dying_makes_the_supervisor_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started again after each death (backoff shortened here), then given up: exit 1, no endless loop."""
    monkeypatch.setattr(supervisor, "BACKOFF_SECONDS", (0.1,))
    ready_calls: list[list[int]] = []
    runner = Supervisor(child_that_dies_after_start, (), 1, on_ready=ready_calls.append)
    assert runner.run() == 1
    assert runner.failure is not None
    assert f"keeps dying ({supervisor.MAX_QUICK_DEATHS} times in a row" in runner.failure
    assert "exited with code 3" in runner.failure
    assert len(ready_calls) == 1  # said once, at the first start


def test_sigterm_to_the_supervisor_stops_every_child_cleanly(tmp_path: Path) -> None:
    markers = [tmp_path / "stopped-1"]
    pids: list[int] = []

    def on_ready(ready: list[int]) -> None:
        pids.extend(ready)
        os.kill(os.getpid(), signal.SIGTERM)  # as systemd's stop would

    runner = Supervisor(child_that_serves, (str(markers[0]),), 1, on_ready=on_ready)
    assert runner.run() == 0, runner.failure
    assert markers[0].read_text() == "stopped"
    assert len(pids) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


# --- gunicorn, the documented alternative ---------------------------------------------------------


def start_gunicorn(tmp_path: Path, port: int, database_url: str) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "OUIPOST_DATABASE_URL": database_url, "OUIPOST_DATA_DIR": str(tmp_path / "data"),
           "OUIPOST_SECRET_KEY": TEST_SECRET, "OUIPOST_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "ouipost.app:gunicorn_app", "--worker-class", "aiohttp.GunicornWebWorker",
         "--workers", "2", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "20"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_gunicorn_serves_the_app_with_its_aiohttp_worker(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    from tests.servers import wait_healthy

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'ouipost.db'}"
    migrate = subprocess.run([sys.executable, str(ROOT / "run.py"), "migrate"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env={"PATH": os.environ.get("PATH", ""),
                                                         "OUIPOST_DATABASE_URL": database_url,
                                                         "OUIPOST_DATA_DIR": str(tmp_path / "data")})
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    server = start_gunicorn(tmp_path, port, database_url)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert b'ouipost_http_requests_total{method="GET",route="/healthz",status="200"}' in resp.read()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=40)
    assert server.returncode == 0, output
    assert "Traceback" not in output


def test_gunicorn_workers_refuse_a_schema_that_is_not_migrated(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    server = start_gunicorn(tmp_path, free_port(), f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    output, _ = server.communicate(timeout=60)
    assert server.returncode != 0
    assert "cannot start: the database schema is not up to date" in output
    assert "run `ouipost migrate` first" in output
