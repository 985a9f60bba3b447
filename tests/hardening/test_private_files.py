"""Local state is its owner's alone: the data dir 0700, SQLite files 0600, stored media (originals
and thumbnails) 0600 in 0700 directories; and `run.py serve` as a real process: no banner, protocol
errors in the envelope, a loud warning when sandbox mode listens beyond loopback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from ouipost.config import load_settings
from ouipost.db.engine import create_engine
from tests.admin.conftest import free_port
from tests.hardening.test_protocol_and_headers import raw_request
from tests.media_samples import png_bytes

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> Any:
    previous = os.umask(0o022)  # what most systems run services with
    yield
    os.umask(previous)


def test_the_embedded_secret_creates_a_private_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"OUIPOST_DATA_DIR": str(tmp_path / "data")})
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.data_dir / "secret_key") == 0o600


async def test_sqlite_files_are_private_and_old_ones_are_tightened(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh" / "ouipost.db"
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    old.chmod(0o644)
    for path in (fresh, old):
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        await engine.dispose()
        assert mode(path) == 0o600
    assert mode(fresh.parent) == 0o700


async def test_stored_media_and_thumbnails_are_private(client: Any, key: Any, settings: Any) -> None:
    resp = await client.post("/api/posts", json={"content": "x", "platforms": ["facebook"]}, headers=key.headers())
    post_id = (await resp.json())["data"]["post"]["id"]
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(png_bytes()), filename="a.png", content_type="image/png")
    resp = await client.post(f"/api/posts/{post_id}/media", data=form, headers=key.headers())
    assert resp.status == 201
    media_root = Path(settings.data_dir) / "media"
    files = [p for p in media_root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"original.png", "thumbnail"}
    assert {oct(mode(p)) for p in files} == {oct(0o600)}
    assert {oct(mode(p)) for p in [media_root, *media_root.rglob("*")] if p.is_dir()} == {oct(0o700)}


@pytest.mark.slow  # a serve process
def test_serve_hides_its_banner_and_warns_about_a_public_sandbox(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "OUIPOST_DATA_DIR": str(data_dir), "OUIPOST_WORKERS": "0"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "serve", "--host", "0.0.0.0", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    headers = {k.lower(): v for k, v in answer.headers.items()}
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert "server" not in headers and headers["x-content-type-options"] == "nosniff"
        status, _, body = asyncio.run(raw_request(
            ("127.0.0.1", port), b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"y" * 9000 + b"\r\n\r\n"
        ))
        assert status == 400 and json.loads(body)["error"]["code"] == "BAD_REQUEST"
        assert mode(data_dir) == 0o700 and mode(data_dir / "ouipost.db") == 0o600
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "WARNING: sandbox mode is on and the server listens on 0.0.0.0" in stderr
