"""How much memory does receiving a large upload cost? Prints the peak RSS growth of the process.

Starts an aiohttp server in this process whose handler streams the multipart file part through
`ouipost.media.receive_upload`, then uploads a 200 MB MP4 to it from a client in the same process that
streams the body from a generator (so the client holds one chunk at a time, too). The figure is the
growth of the process's peak resident set size (ru_maxrss) across the upload; the target is < 50 MB.

    .venv/bin/python bench/upload_memory.py [--mb 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ouipost.media import receive_upload
from tests.media_samples import mp4_bytes

CHUNK = 256 * 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def body(total: int) -> AsyncIterator[bytes]:
    head = mp4_bytes(mdat_size=0)
    yield head
    sent = len(head)
    zeros = b"\x00" * CHUNK
    while sent < total:
        piece = zeros[: min(CHUNK, total - sent)]
        sent += len(piece)
        yield piece


async def main(megabytes: int) -> float:
    total = megabytes * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        received: dict[str, object] = {}

        async def upload(request: web.Request) -> web.Response:
            reader = await request.multipart()
            part = await reader.next()
            result = await receive_upload(part, tmp_dir, {"video": 1024 * 1024 * 1024})  # type: ignore[arg-type]
            received.update(size=result.size, path=result.path)
            return web.json_response({"size": result.size})

        app = web.Application()
        app.router.add_post("/upload", upload)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        gc.collect()
        before_peak, before_now = peak_rss_mb(), current_rss_mb()
        started = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            with aiohttp.MultipartWriter("form-data") as form:
                part = form.append(body(total), {"Content-Type": "video/mp4"})
                part.set_content_disposition("form-data", name="file", filename="big.mp4")
                async with http.post(f"http://127.0.0.1:{port}/upload", data=form) as answer:
                    answer.raise_for_status()
                    await answer.json()
        elapsed = time.perf_counter() - started
        after_peak = peak_rss_mb()
        await runner.cleanup()

        assert received["size"] == total, received
        growth = after_peak - before_peak
        print(f"uploaded {megabytes} MB in {elapsed:.1f} s ({megabytes / elapsed:.0f} MB/s)")
        print(f"RSS before: {before_now:.1f} MB; peak before: {before_peak:.1f} MB; peak after: {after_peak:.1f} MB")
        print(f"peak RSS growth: {growth:.1f} MB (target < 50 MB)")
        return growth


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="upload size in MB (default 200)")
    args = parser.parse_args()
    growth = asyncio.run(main(args.mb))
    sys.exit(0 if growth < 50 else 1)
