"""The README's approval walk-through, run as written: a real `run.py serve` with its embedded SQLite
and sandbox, the README's own shell block through bash and curl (a writer key made with `run.py
create-key`, refused, submitted, rejected, submitted again and approved), ending published."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import ROOT, first_start
from tests.test_mastodon_readme import api_get, readme_blocks

pytestmark = [pytest.mark.slow,  # a real server process
              pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None,
                                 reason="needs curl and bash")]


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
    (tmp_path / "run.py").symlink_to(ROOT / "run.py")  # the README runs `python run.py` in the checkout
    with first_start(tmp_path) as served:
        api, key, env = served.api, served.key, served.env
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
