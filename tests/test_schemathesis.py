"""Schemathesis against a live server: every operation of /openapi.json with a bounded number of
generated requests (valid key, workspace and admin token), no 5xx, every answer as documented.

The stateful phase follows the document's links from each create to the new resource. Two passes
on a real `run.py serve` process (the sandbox networks and the embedded worker on, the
rate limits out of the way): first every operation except those that end the run's own identity
(revoking its key or token, deleting its workspace or demoting its admin), then those alone.

Checks left out, and why: `positive_data_acceptance` expects every schema-valid body to be accepted,
but the API also refuses what no schema can say (an unknown workspace id, `from` after `to`, text
over a network's limit: 422 by design); `allow_header_conformance` flags OPTIONS on
/api/accounts/callback and /api/posts/validate, whose Allow header rightly lists the methods of
/api/accounts/{id} and /api/posts/{id} too (the router matches both paths).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.core.clock import Clock
from ouipost.identity import users
from tests.conftest import make_env
from tests.servers import free_port, wait_healthy

# Runs a real server and Schemathesis against it: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

pytest.importorskip("schemathesis")

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
MAX_EXAMPLES = 5
CHECKS = ",".join((
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
    "response_schema_conformance", "negative_data_rejection", "missing_required_header", "unsupported_method",
    "ignored_auth",
))
# Operations (by operationId) that would revoke the run's key or token, or delete its workspace:
# run last, alone.
SELF_ENDING = ("logout", "delete_workspace", "update_user", "delete_user", "update_key", "delete_key")


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _schemathesis(url: str, headers: dict[str, str], report: Path, *filters: str) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "st"), "run", f"{url}/openapi.json",
        "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,coverage,fuzzing,stateful", "--checks", CHECKS,
        "--seed", "1", "--request-timeout", "20", "--workers", "2", "--continue-on-failure",
        "--report", "junit", "--report-junit-path", str(report), "--no-color", *filters,
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    # cwd: schemathesis keeps a cache (.schemathesis/) in its working directory, not in the checkout.
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=report.parent,
                          env={**os.environ, "SCHEMATHESIS_HOOKS": ""})


async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    database_url: str, engine: AsyncEngine, clock: Clock, make_key: Any, tmp_path: Path,
) -> None:
    key = await make_key(tier="enterprise")
    async with engine.begin() as conn:
        await users.create_user(conn, email="fuzz@example.com", password=PASSWORD, name="Fuzz Admin", role="admin",
                                permissions=None, now=clock.now())
    runs, server_log = await asyncio.to_thread(_fuzz_live_server, database_url, tmp_path, key.secret,
                                               str(key.workspace_id))
    for name, run in runs.items():
        assert run.returncode == 0, f"schemathesis, {name}:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
        assert " passed" in run.stdout and "generated" in run.stdout, run.stdout[-2000:]
    assert "Traceback" not in server_log, server_log[-4000:]


def _fuzz_live_server(
    database_url: str, tmp_path: Path, api_key: str, workspace_id: str,
) -> tuple[dict[str, subprocess.CompletedProcess], str]:
    """Start `run.py serve` on the test database, run both passes, stop it; the runs and its log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        **make_env(database_url, tmp_path / "data", OUIPOST_SANDBOX="1", OUIPOST_WORKERS="2",
                   OUIPOST_RATE_LIMITS="starter=100000,professional=100000,enterprise=100000"),
    }
    log_path = tmp_path / "server.log"  # a file: a pipe nobody reads would block the server's access log
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    try:
        wait_healthy(url, process, log_path=log_path)
        login = _post_json(f"{url}/admin/login", {"email": "fuzz@example.com", "password": PASSWORD})
        headers = {
            "X-API-Key": api_key, "X-Workspace-ID": workspace_id,
            "Authorization": f"Bearer {login['data']['token']}",
        }
        runs = {
            "first pass": _schemathesis(url, headers, tmp_path / "first.xml", *_operations("--exclude-operation-id")),
            "self-ending operations": _schemathesis(url, headers, tmp_path / "second.xml",
                                                    *_operations("--include-operation-id")),
        }
    finally:
        process.terminate()
        process.wait(timeout=30)
    return runs, log_path.read_text()


def _operations(flag: str) -> list[str]:
    """`flag` before each operation of SELF_ENDING (an --include or --exclude filter)."""
    return [part for operation_id in SELF_ENDING for part in (flag, operation_id)]
