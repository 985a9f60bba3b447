"""Helpers for tests that start real server processes: a free local port, and waiting until a
server answers /healthz."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path


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
