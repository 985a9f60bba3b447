"""The README's Mastodon walk-through, run as written: a real `run.py serve` with its embedded SQLite
and sandbox, the README's own shell blocks through bash and curl. Connects an account by its server,
then publishes a status with an image and its alt text and one with a video."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.media_samples import mp4_bytes, png_bytes
from tests.servers import first_start

# Runs the README's walk against real processes: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def readme_blocks(word: str) -> list[str]:
    """The README's ```sh blocks that mention `word`, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [block for block in blocks if word in block]


def api_get(api: str, key: str, path: str, workspace: str | None = None) -> dict:
    headers = {"X-API-Key": key, **({"X-Workspace-ID": workspace} if workspace else {})}
    with urllib.request.urlopen(urllib.request.Request(api + path, headers=headers), timeout=10) as resp:
        return json.loads(resp.read())["data"]


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash")
def test_the_readme_walk_through_publishes_text_an_image_with_alt_text_and_a_video(tmp_path: Path) -> None:
    with first_start(tmp_path) as served:
        api, key, env = served.api, served.key, served.env
        (tmp_path / "square.png").write_bytes(png_bytes(64, 64))
        (tmp_path / "clip.mp4").write_bytes(mp4_bytes())
        workspace = api_get(api, key, "/api/workspaces")["workspaces"][0]["id"]
        blocks = readme_blocks('"mastodon"')
        assert len(blocks) == 2, "the README connects an account, then publishes"
        script = "set -e\n" + "\n".join(blocks)
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=90,
                              env={**env, "KEY": key, "API": api, "WSD": workspace})
        assert done.returncode == 0, done.stdout + done.stderr

        accounts = api_get(api, key, "/api/accounts", workspace)["accounts"]
        assert [(a["platform"], a["username"]) for a in accounts] == [("mastodon", "ouipost@mastodon.social")]
        deadline = time.monotonic() + 30
        while True:
            posts = api_get(api, key, "/api/posts?platform=mastodon", workspace)["posts"]
            if all(p["status"] == "published" for p in posts) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(posts) == 3 and {p["status"] for p in posts} == {"published"}, posts
        by_content = {p["content"]: p for p in posts}
        assert by_content["Hello, fediverse"]["media"] == []
        image_post = by_content["Our new square, see https://example.com/launch"]
        video_post = by_content["Thirty seconds of launch day"]
        assert [(m["type"], m["alt_text"]) for m in image_post["media"]] == [("image", "A grey square")]
        assert [(m["type"], m["alt_text"]) for m in video_post["media"]] == [("video", "The team cutting the ribbon")]
        for post in posts:
            [result] = api_get(api, key, f"/api/posts/{post['id']}", workspace)["post"]["platform_posts"]
            assert result["status"] == "published" and result["url"].startswith("https://mastodon.social/@ouipost/")
