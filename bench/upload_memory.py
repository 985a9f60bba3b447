"""How much memory does the server spend receiving a large upload? Prints its peak RSS growth.

Starts `python run.py` as a real server process (embedded SQLite, a scratch data dir, a 300 MB video
cap), creates a post through the API, then uploads a 200 MB MP4 to `POST /api/posts/{id}/media`
from a client that streams the body from a generator. After a 1 MB warm-up upload (the first request
pays one-off costs such as lazy imports), the server's peak resident set size (VmHWM in
/proc/<pid>/status) is read before and after the large upload. Target: growth < 50 MB.

    .venv/bin/python bench/upload_memory.py [--mb 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.media_samples import mp4_bytes  # noqa: E402

CHUNK = 256 * 1024


def status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not found")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def body(size: int) -> AsyncIterator[bytes]:
    head = mp4_bytes(duration=30.0, mdat_size=0)  # a real header whose mdat box we then fill
    mdat_payload = size - len(head)
    # Rewrite the mdat box size so the file is well formed at its full length.
    head = head[:-8] + (mdat_payload + 8).to_bytes(4, "big") + b"mdat"
    yield head
    sent = 0
    zero = bytes(CHUNK)
    while sent < mdat_payload:
        part = zero[: min(CHUNK, mdat_payload - sent)]
        sent += len(part)
        yield part


async def upload(base: str, key: str, workspace: str, size: int) -> tuple[int, str]:
    headers = {"X-API-Key": key, "X-Workspace-ID": workspace}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        async with session.post(f"{base}/api/posts", json={"content": "big video", "platforms": ["youtube"]},
                                headers=headers) as resp:
            post = (await resp.json())["data"]["post"]
        form = aiohttp.FormData()
        form.add_field("file", body(size), filename="big.mp4", content_type="video/mp4")
        async with session.post(f"{base}/api/posts/{post['id']}/media", data=form, headers=headers) as resp:
            return resp.status, await resp.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    size = args.mb << 20
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
               "OUIPOST_MAX_VIDEO_MB": str(args.mb + 100), "OUIPOST_PORT": str(port)}
        server = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=scratch, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            key = workspace = ""
            assert server.stdout is not None
            while not (key and workspace):
                line = server.stdout.readline()
                if line.strip().startswith("API key"):
                    key = line.split(":", 1)[1].strip()
                elif line.strip().startswith("Workspace"):
                    workspace = line.split(":", 1)[1].split()[0]
            # A small upload first: the first request pays one-off costs (lazy imports, SQL compilation
            # caches, the thread pool) that have nothing to do with the size of a file.
            idle = status_mb(server.pid, "VmRSS")
            warm_status, warm_text = asyncio.run(upload(base, key, workspace, 1 << 20))
            if warm_status != 201:
                raise SystemExit(f"warm-up upload failed: {warm_status} {warm_text[:300]}")
            before = status_mb(server.pid, "VmHWM")
            started = time.monotonic()
            status, text = asyncio.run(upload(base, key, workspace, size))
            elapsed = time.monotonic() - started
            peak = status_mb(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(timeout=30)
    if status != 201:
        raise SystemExit(f"upload failed: {status} {text[:300]}")
    growth = peak - before
    rate = args.mb / elapsed
    print(f"uploaded {args.mb} MB through POST /api/posts/{{id}}/media in {elapsed:.1f} s ({rate:.0f} MB/s)")
    print(f"server RSS idle: {idle:.1f} MB; peak after a 1 MB warm-up upload: {before:.1f} MB "
          f"(one-off first-request costs); peak after the {args.mb} MB upload: {peak:.1f} MB")
    print(f"server peak RSS growth: {growth:.1f} MB (target < 50 MB)")
    if growth >= 50:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
