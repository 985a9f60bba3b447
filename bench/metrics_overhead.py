#!/usr/bin/env python3
"""What the metrics middleware adds to one request: its own time, per request, in microseconds.

    .venv/bin/python bench/metrics_overhead.py [--requests 200000] [--rounds 5]

A request to `/api/posts/{id}` is resolved by the app's router once; then, `--requests` times per
round, it goes through `metrics_middleware` to a handler that returns a ready answer, and, as many
times, to the handler alone. The difference per request is the middleware's cost: the route
template, two perf_counter calls, one cached label lookup, a counter increment and a histogram
observation. Measured in single-process mode (values in memory) and in multiprocess mode (values
written to mmap files in a scratch directory, what `run.py serve` and `run.py worker` use). Prints
the best and the median round of each; the goal (issue 14) is under 50 µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402

from ouipost.core import metrics  # noqa: E402
from ouipost.http import metrics as metrics_http  # noqa: E402


async def _request(app: web.Application) -> web.Request:
    request = make_mocked_request("GET", "/api/posts/post_0190a0b0-0000-7000-8000-000000000001", app=app)
    match = await app.router.resolve(request)
    match.add_app(app)
    request._match_info = match  # what aiohttp's Application._handle does before the middlewares
    return request


async def _round(request: web.Request, requests: int) -> float:
    answer = web.Response(text="ok")

    async def handler(request: web.Request) -> web.StreamResponse:
        return answer

    started = time.perf_counter()
    for _ in range(requests):
        await handler(request)
    bare = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(requests):
        await metrics_http.metrics_middleware(request, handler)
    measured = time.perf_counter() - started
    return (measured - bare) / requests * 1e6


async def _measure(requests: int, rounds: int) -> list[float]:
    app = web.Application()
    app.router.add_get("/api/posts/{id}", lambda request: web.Response())
    request = await _request(app)
    await _round(request, 1000)  # warm the label cache and the files
    return [await _round(request, requests) for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    single = asyncio.run(_measure(args.requests, args.rounds))
    with tempfile.TemporaryDirectory() as directory:
        metrics.setup_multiprocess(Path(directory))
        multi = asyncio.run(_measure(args.requests, args.rounds))
    for mode, figures in (("single-process", single), ("multiprocess (mmap files)", multi)):
        print(f"{mode:27s} middleware cost per request: best {min(figures):.2f} µs, "
              f"median {statistics.median(figures):.2f} µs ({args.rounds} rounds of {args.requests:,})")


if __name__ == "__main__":
    main()
