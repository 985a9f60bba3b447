#!/usr/bin/env python3
"""API throughput: the project's `GET /api/posts?limit=20` and `POST /api/posts` against a bare aiohttp
handler doing the same key lookup and the same query or insert on the same database.

    .venv/bin/python bench/api_throughput.py [--databases sqlite,mysql,postgresql] [--redis both|on|off]
        [--database-url mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_api]
        [--postgresql-url postgresql+asyncpg://postgres@127.0.0.1:5432/ouipost_bench_api]
        [--redis-url redis://127.0.0.1:6379/14] [--connections 32] [--seconds 4] [--rounds 3]

For each database (a scratch SQLite file; MariaDB, PostgreSQL: the database is dropped and created again) the
schema is migrated and seeded through the domain functions: workspace R with 200 posts (the page
that GET reads), workspace W (where POSTs go), one enterprise key granted both. Then two real
server processes run side by side on free ports:

- project: `run.py serve --no-workers` with the OUIPOST_* environment (OUIPOST_REDIS_URL set or not,
  the enterprise limit raised so that every request is counted and checked but none refused);
- bare: this script with --serve-bare, a plain aiohttp app on the project's engine set-up
  (`ouipost.db.engine.create_engine`) doing per request only the key lookup of `api_keys.authenticate`
  (SHA-256 of the secret, one joined SELECT) and then the page SELECT (GET) or the post and target
  INSERTs in one transaction (POST), answering with `json.dumps`.

Rounds alternate (project GET, bare GET, project POST, bare POST, then again) so that both sides see
the same machine state; each round runs `--connections` keep-alive connections for `--seconds`.
Printed per database and Redis mode: requests/s, p50 and p99 latency and server CPU per request
(user + system time of the server process during its rounds, from /proc) of each side, the ratio
project / bare of requests/s and the same ratio computed from CPU per request (bare / project: the
steadier figure on a shared machine). Goals (issue 13): GET >= 0.7, POST >= 0.5, p99 < 100 ms at 32 connections.

Saturated, every connection always waits on the server, so the mean latency is connections / rate
(Little's law) on either side: at 32 connections any server under 320 req/s is over 100 ms on
average, whatever it does per request. Latency is therefore also measured below saturation: then both
sides get the same open load (`--latency-load`, a share of the bare side's saturated rate; requests
due at a fixed pace, latency counted from when each was due) over the same 32 connections, and
p50/p99 are printed for each.
The load generator runs in this process and shares the 2 cores with both servers; it loads both
sides the same way, so the ratio is what to read, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import create_database, drop_database  # noqa: E402
from ouipost.core.ids import new_id  # noqa: E402
from ouipost.db.engine import create_engine  # noqa: E402
from ouipost.db.migrations import upgrade  # noqa: E402
from ouipost.db.tables import api_key_secrets, post_targets, posts  # noqa: E402
from ouipost.db.tables import api_keys as api_keys_table  # noqa: E402
from ouipost.identity import api_keys, workspaces  # noqa: E402
from ouipost.posts import service  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdefghij"
SEED_POSTS = 200
GOALS = {"GET": 0.7, "POST": 0.5}


# --- the bare server ----------------------------------------------------------------------------


def serve_bare(port: int, database_url: str) -> None:
    """The bare handlers: key lookup, then the page query or the inserts; no middleware, no schema."""
    from aiohttp import web

    engine = create_engine(database_url)
    lookup = (
        sa.select(api_keys_table, api_key_secrets.c.expires_at)
        .join(api_key_secrets, api_key_secrets.c.key_id == api_keys_table.c.id)
        .where(api_key_secrets.c.secret_hash == sa.bindparam("hash"))
    )

    async def key_of(conn: Any, request: web.Request) -> Any:
        secret = request.headers.get("X-API-Key", "")
        row = (await conn.execute(lookup, {"hash": hashlib.sha256(secret.encode()).hexdigest()})).first()
        if row is None or not row.is_active:
            raise web.HTTPUnauthorized()
        return row

    def view(row: Any) -> dict[str, Any]:
        return {"id": row["id"], "content": row["content"], "status": row["status"],
                "platforms": row["platforms"], "created_at": row["created_at"].isoformat()}

    async def list_posts(request: web.Request) -> web.Response:
        async with engine.connect() as conn:
            await key_of(conn, request)
            rows = (await conn.execute(
                sa.select(posts).where(posts.c.workspace_id == request.headers["X-Workspace-ID"])
                .order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(int(request.query.get("limit", 20)))
            )).mappings().all()
        return web.json_response({"success": True, "data": {"posts": [view(r) for r in rows]}})

    async def create_post(request: web.Request) -> web.Response:
        body = await request.json()
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await key_of(conn, request)
            row = {
                "id": new_id("post"), "workspace_id": request.headers["X-Workspace-ID"], "status": "draft",
                "content": body["content"], "title": None, "link": None, "hashtags": [],
                "platforms": body["platforms"], "platform_content": {}, "scheduled_at": None,
                "scheduled_timezone": None, "published_at": None, "created_at": now, "updated_at": now,
            }
            await conn.execute(posts.insert(), row)
            await conn.execute(post_targets.insert(), [
                {"id": new_id("tgt"), "post_id": row["id"], "workspace_id": row["workspace_id"], "network": n,
                 "requested": n, "account_id": None, "status": "pending", "attempts": 0, "created_at": now,
                 "updated_at": now} for n in body["platforms"]
            ])
        return web.json_response({"success": True, "data": {"post": view(row)}}, status=201)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def dispose(app: web.Application) -> None:
        await engine.dispose()

    app = web.Application()
    app.router.add_get("/api/posts", list_posts)
    app.router.add_post("/api/posts", create_post)
    app.router.add_get("/healthz", healthz)
    app.on_cleanup.append(dispose)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- set-up -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def fresh_database(url: str) -> None:
    await create_database(url, fresh=True)
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


async def seed(url: str) -> tuple[str, str, str]:
    """Workspaces R (SEED_POSTS posts) and W, and an enterprise key granted both: (R, W, secret)."""
    engine = create_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    async with engine.begin() as conn:
        read = await workspaces.create_workspace(conn, name="Bench R", description=None, settings=None, now=now)
        write = await workspaces.create_workspace(conn, name="Bench W", description=None, settings=None, now=now)
        for index in range(SEED_POSTS):
            at = now - timedelta(minutes=SEED_POSTS - index)
            await service.insert_post(
                conn, workspace_id=read["id"], fields={"content": f"Bench post {index} ✓ déjà vu"},
                targets=[service.Target("twitter", "twitter", None), service.Target("bluesky", "bluesky", None)],
                now=at,
            )
        key = await api_keys.create_key(conn, name="bench", tier="enterprise", permissions=None,
                                        workspace_ids=[read["id"], write["id"]], now=now)
    await engine.dispose()
    return read["id"], write["id"], key.secret


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server {url} did not become healthy")


def start_project(database_url: str, redis_url: str | None, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        "OUIPOST_DATABASE_URL": database_url, "OUIPOST_SECRET_KEY": SECRET, "OUIPOST_DATA_DIR": data_dir,
        "OUIPOST_AUTO_MIGRATE": "1", "OUIPOST_LOG_LEVEL": "WARNING",
        # Every request is counted and checked against the limit; none is refused.
        "OUIPOST_RATE_LIMITS": "starter=60,professional=300,enterprise=100000000",
    }
    if redis_url:
        env["OUIPOST_REDIS_URL"] = redis_url
        env["OUIPOST_REDIS_KEY_PREFIX"] = f"ouipost-bench-{os.getpid()}:"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "serve", "--no-workers", "--port", str(port)],
        cwd=data_dir, env=env, stdout=subprocess.DEVNULL, stderr=None,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process)
    return process, url


def start_bare(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port), "--database-url", database_url],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=None)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process)
    return process, url


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms
    errors: int = 0
    cpu: float = 0.0  # seconds of the server process's CPU (user + system) during the rounds

    @property
    def cpu_ms(self) -> float:
        """Server CPU per answered request: steadier than req/s on a shared machine."""
        return self.cpu * 1000 / self.requests if self.requests else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))] if ordered else 0.0


async def load(url: str, method: str, headers: dict[str, str], connections: int, seconds: float,
               tally: Tally, rate: float | None = None) -> None:
    """`connections` keep-alive connections each sending one request after the other for `seconds`.

    With `rate` (requests/s) the load is open: request i is due at start + i / rate, a connection
    sends it when it is due (or as soon as it is free, if later), and its latency counts from the
    due time, so time spent queued behind a slow answer is not hidden (no coordinated omission)."""
    counter = iter(range(10**9))
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def one_connection() -> None:
            body = None
            while time.perf_counter() < deadline:
                index = next(counter)
                if method == "POST":
                    body = json.dumps({"content": f"Bench write {index}", "platforms": ["twitter"]})
                began = time.perf_counter()
                if rate is not None:
                    due = started + index / rate
                    if due >= deadline:
                        break
                    if due > began:
                        await asyncio.sleep(due - began)
                    began = due
                async with session.request(method, url, headers=headers, data=body) as resp:
                    await resp.read()
                    ok = resp.status in (200, 201)
                tally.latencies.append((time.perf_counter() - began) * 1000)
                tally.requests += ok
                tally.errors += not ok

        await asyncio.gather(*(one_connection() for _ in range(connections)))
        tally.seconds += time.perf_counter() - started


async def measure(database_url: str, redis_url: str | None, args: argparse.Namespace, label: str) -> None:
    await fresh_database(database_url)
    read_ws, write_ws, secret = await seed(database_url)
    data_dir = tempfile.mkdtemp(prefix="ouipost-bench-api-")
    project, project_url = start_project(database_url, redis_url, data_dir)
    bare, bare_url = start_bare(database_url)
    tallies = {(side, op): Tally() for side in ("project", "bare") for op in ("GET", "POST")}
    paced: dict[tuple[str, str], Tally] = {}
    try:
        requests = {
            "GET": ("GET", "/api/posts?limit=20", {"X-API-Key": secret, "X-Workspace-ID": read_ws}),
            "POST": ("POST", "/api/posts", {"X-API-Key": secret, "X-Workspace-ID": write_ws,
                                            "Content-Type": "application/json"}),
        }
        for url in (project_url, bare_url):  # warm-up: pools, caches
            for method, path, headers in requests.values():
                await load(url + path, method, headers, args.connections, 0.5, Tally())
        for _ in range(args.rounds):
            for op, (method, path, headers) in requests.items():
                for side, url, pid in (("project", project_url, project.pid), ("bare", bare_url, bare.pid)):
                    before = cpu_seconds(pid)
                    await load(url + path, method, headers, args.connections, args.seconds, tallies[side, op])
                    tallies[side, op].cpu += cpu_seconds(pid) - before
        # Latency below saturation: both sides at the same open load, a share of the bare side's rate.
        for op, (method, path, headers) in requests.items():
            offered = tallies["bare", op].rate * args.latency_load
            for side, url in (("project", project_url), ("bare", bare_url)):
                paced[side, op] = Tally()
                await load(url + path, method, headers, args.connections, args.seconds * args.rounds,
                           paced[side, op], rate=offered)
    finally:
        stop(project)
        stop(bare)
    print(f"\n{label}", flush=True)
    for op in ("GET", "POST"):
        mine, theirs = tallies["project", op], tallies["bare", op]
        ratio = mine.rate / theirs.rate if theirs.rate else 0.0
        for side, tally in (("project", mine), ("bare", theirs)):
            errors = f"  ({tally.errors} errors)" if tally.errors else ""
            print(f"  {op:<4} {side:<8} {tally.rate:8.0f} req/s   p50 {tally.pct(0.50):6.1f} ms   "
                  f"p99 {tally.pct(0.99):6.1f} ms   CPU {tally.cpu_ms:5.2f} ms/request{errors}", flush=True)
        cpu_ratio = theirs.cpu_ms / mine.cpu_ms if mine.cpu_ms else 0.0
        verdict = "ok" if ratio >= GOALS[op] else "below goal"
        print(f"  {op:<4} ratio project/bare {ratio:.2f}, by CPU per request {cpu_ratio:.2f} "
              f"(goal >= {GOALS[op]}: {verdict})", flush=True)
        print(f"  {op:<4} saturated: with {args.connections} connections always busy, mean latency is "
              f"connections / rate (Little's law): {args.connections / mine.rate * 1000 if mine.rate else 0:.0f} ms "
              f"project, {args.connections / theirs.rate * 1000 if theirs.rate else 0:.0f} ms bare", flush=True)
        for side in ("project", "bare"):
            tally = paced[side, op]
            errors = f"  ({tally.errors} errors)" if tally.errors else ""
            print(f"  {op:<4} {side:<8} at {tally.rate:5.0f} req/s offered ({args.latency_load:.0%} of bare's rate): "
                  f"p50 {tally.pct(0.50):6.1f} ms   p99 {tally.pct(0.99):6.1f} ms{errors}", flush=True)
        p99 = paced["project", op].pct(0.99)
        print(f"  {op:<4} project p99 below saturation {p99:.1f} ms (goal < 100 ms: "
              f"{'ok' if p99 < 100 else 'above goal'})", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,mysql", help="comma-separated: sqlite, mysql, postgresql")
    parser.add_argument("--redis", choices=("both", "on", "off"), default="both")
    parser.add_argument("--database-url", default="mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_api")
    parser.add_argument("--postgresql-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/ouipost_bench_api")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-load", type=float, default=0.5,
                        help="offered load of the latency rounds, as a share of the bare side's saturated rate")
    args = parser.parse_args()

    redis_modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.redis]
    for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
        if database == "mysql":
            url = args.database_url
        elif database == "postgresql":
            url = args.postgresql_url
        elif database == "sqlite":
            url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='ouipost-bench-api-')}/bench.db"
        else:
            parser.error(f"--databases: unknown {database!r}")
        try:
            for with_redis in redis_modes:
                label = f"{database}, {'Redis' if with_redis else 'process-local'} rate limits, " \
                        f"{args.connections} connections, {args.rounds} x {args.seconds:g} s per side"
                await measure(url, args.redis_url if with_redis else None, args, label)
        finally:
            await drop_database(url)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-bare":
        serve_bare(int(sys.argv[2]), sys.argv[sys.argv.index("--database-url") + 1])
    else:
        asyncio.run(main())
