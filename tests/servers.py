"""Helpers for tests that start real server processes: a free local port, and waiting until a
server answers /healthz."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, *, log_path: Path | None = None, timeout: float = 30) -> None:
    """Return once `url`/healthz answers 200. AssertionError when the process exits first (with the
    end of its log when there is one) or when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = f":\n{log_path.read_text(errors='replace')[-4000:]}" if log_path else ""
            raise AssertionError(f"server exited with {process.returncode}{log}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not become healthy")


FIRST_START_KEY = re.compile(r"API key\s+:\s+(pk_live_\S+)")


@dataclass
class FirstStart:
    """`python run.py` as a new user starts it: embedded SQLite and sandbox, nothing configured."""

    api: str
    key: str  # the API key the first start printed
    env: dict[str, str]  # the environment it runs with (for commands run beside it)


@contextlib.contextmanager
def first_start(cwd: Path) -> Iterator[FirstStart]:
    """`python run.py` in `cwd` (its data in cwd/data) until the block ends, with the key it printed."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log_path = cwd / "serve.log"
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "HOME": str(cwd),
           "OUIPOST_DATA_DIR": str(cwd / "data"), "OUIPOST_PORT": str(port)}
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=cwd, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_healthy(api, server, log_path=log_path, timeout=60)
        deadline = time.monotonic() + 10
        while not FIRST_START_KEY.search(log_path.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        match = FIRST_START_KEY.search(log_path.read_text())
        assert match, log_path.read_text()
        yield FirstStart(api, match.group(1), env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
