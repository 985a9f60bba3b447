"""The README's approval walk-through, run as written: a real `run.py serve` with its embedded SQLite
and sandbox, the README's own shell block through bash and curl (a writer key made with `run.py
create-key`, refused, submitted, rejected, submitted again and approved), ending published."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port, wait_healthy
from tests.test_mastodon_readme import PRINTED_KEY, ROOT, api_get, readme_blocks

pytestmark = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None,
                                reason="needs curl and bash")


def api_post(api: str, key: str, path: str, body: dict, workspace: str) -> dict:
    request = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST", headers={
        "X-API-Key": key, "X-Workspace-ID": workspace, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["data"]


def json_documents(text: str) -> list[dict]:
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        document, at = decoder.raw_decode(text, at)
        found.append(document)
    return found


def test_the_readme_approval_walk_through(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    (tmp_path / "run.py").symlink_to(ROOT / "run.py")  # the README runs `python run.py` in the checkout
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "HOME": str(tmp_path),
           "OUIPOST_DATA_DIR": str(tmp_path / "data"), "OUIPOST_PORT": str(port)}
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=tmp_path, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_healthy(api, server, log_path=log_path, timeout=60)
        deadline = time.monotonic() + 10
        while not PRINTED_KEY.search(log_path.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        match = PRINTED_KEY.search(log_path.read_text())
        assert match, log_path.read_text()
        key = match.group(1)
        workspace = api_get(api, key, "/api/workspaces")["workspaces"][0]["id"]
        api_post(api, key, "/api/accounts", {"platform": "bluesky", "identifier": "alice.bsky.social",
                                             "app_password": "abcd-efgh-ijkl-mnop"}, workspace)
        [block] = readme_blocks("approval_required")
        done = subprocess.run(["bash", "-c", "set -e\n" + block], cwd=tmp_path, capture_output=True, text=True,
                              timeout=90, env={**env, "KEY": key, "API": api, "WSD": workspace})
        assert done.returncode == 0, done.stdout + done.stderr
        answers = json_documents(done.stdout)  # curl prints each answer without a newline
        refused, submitted, rejected, resubmitted, approved = answers[1:6]
        assert refused["error"]["code"] == "FORBIDDEN"
        assert submitted["data"]["post"]["status"] == "pending_approval"
        assert submitted["data"]["post"]["scheduled_at"] == "2030-03-01T08:30:00Z"
        assert rejected["data"]["post"]["rejection_reason"] == "Add the link"
        assert resubmitted["data"]["post"]["scheduled_at"] is None
        assert approved["data"]["post"]["status"] == "publishing"
        post_id = approved["data"]["post"]["id"]
        deadline = time.monotonic() + 30
        while api_get(api, key, f"/api/posts/{post_id}", workspace)["post"]["status"] != "published":
            assert time.monotonic() < deadline, "the approved post was not published"
            time.sleep(0.2)
        settings = api_get(api, key, f"/api/workspaces/{workspace}")["workspace"]["settings"]
        assert settings["approval_required"] is False
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
