#!/usr/bin/env python3
"""Publishing under load: a burst of posts due in the same second, and a steady rate, through real
`run.py worker` processes and a sandbox process answering every call in ~50 ms.

    .venv/bin/python bench/publish_burst.py [--database-url mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_publish]
        (or --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/ouipost_bench_publish)
        [--posts 10000] [--workspaces 1000] [--processes 2] [--concurrency 48] [--delay 0.05]
        [--steady-rate 100] [--steady-seconds 30] [--skip-burst] [--skip-steady]

No-op queue throughput (1, 2, 4 processes) is bench/queue_throughput.py.

Set-up: the database is dropped and re-created (point it at a scratch database), migrated, and
filled through the domain functions: `--workspaces` workspaces, each with one X, one Bluesky and
one LinkedIn account (`ouipost.accounts.service.upsert_identity`, with tokens minted by the sandbox process
for a distinct identity each, so no two accounts share a network-side rate limit). Every post
targets its workspace's three accounts. A sandbox process (this script with --serve-sandbox) runs
with a "slow" fault of `--delay` seconds on every request.

(b) Burst: `--posts` posts scheduled for the same second T (their publish jobs enqueued); the
worker processes start before T. Printed: the time from T until every post is final, publish
lateness (target published_at - scheduled_at) p50/p99/max, duplicates (sandbox publications per
target beyond 1) and lost targets (not published, or without their publication).
(c) Steady: `--steady-rate` posts per second due over `--steady-seconds`; lateness p50/p99/max.
Each phase also prints the CPU seconds the workers, the sandbox and mariadbd or postgres spent (per target):
they share the machine's cores, so a run is CPU-bound long before the network is the limit.

Defaults: 2 worker processes x 48 posts in flight, one process per core of the 2-core machine this
is measured on. More processes than cores only split the group commits (ouipost/db/batch.py) into
smaller batches for the same CPU; many more posts in flight than the networks' in-flight caps
(64 each) only make runs ask pacing again for busy slots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import create_database  # noqa: E402
from ouipost.accounts import service as accounts  # noqa: E402
from ouipost.core.clock import Clock  # noqa: E402
from ouipost.core.crypto import Cipher  # noqa: E402
from ouipost.core.ids import new_id  # noqa: E402
from ouipost.db.engine import create_engine  # noqa: E402
from ouipost.db.migrations import upgrade  # noqa: E402
from ouipost.db.queue_tables import jobs  # noqa: E402
from ouipost.db.tables import post_targets, posts  # noqa: E402
from ouipost.identity import workspaces  # noqa: E402
from ouipost.platforms.base import ConnectedIdentity, TokenSet  # noqa: E402
from ouipost.publishing.service import PUBLISH_KIND, PUBLISH_MAX_ATTEMPTS, PUBLISH_QUEUE, publish_job_key  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdefghij"
NETWORKS = ("twitter", "bluesky", "linkedin")
FINAL = ("published", "partially_published", "failed")


# --- the sandbox process ------------------------------------------------------------------------


def serve_sandbox(port: int) -> None:
    """The sandbox, plus POST /_bench/identities {"count": n}: n identities per network whose tokens
    this sandbox accepts (a Bluesky account each, an X user each, a LinkedIn member each)."""
    from aiohttp import web

    from ouipost.sandbox import Sandbox, create_sandbox_app
    from ouipost.sandbox import bluesky as bluesky_sandbox

    sandbox = Sandbox()
    app = create_sandbox_app(sandbox)
    sandbox.network_state("linkedin")["reject_duplicates"] = False  # texts are unique anyway; skip the O(n) scan

    async def identities(request: web.Request) -> web.Response:
        body = await request.json()
        first, count = int(body.get("start", 0)), int(body["count"])
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in NETWORKS}
        for i in range(first, first + count):
            subject = f"bench{i:06d}"
            scopes = ["tweet.read", "tweet.write", "users.read", "offline.access"]
            out["twitter"].append({
                "subject": subject, "scopes": scopes,
                "access": sandbox.new_token("twitter", subject, scopes, 7200, family=subject,
                                            client_id="sandbox-client"),
                "refresh": sandbox.new_token("twitter", subject, scopes, None, kind="refresh", family=subject,
                                             client_id="sandbox-client"),
            })
            did = f"did:plc:bench{i:019d}"
            handle = f"{subject}.bsky.social"
            bluesky_sandbox.ACCOUNTS[did] = {"handle": handle, "password": "bench-pass-word-0000",
                                             "email": f"{subject}@example.com", "displayName": subject}
            access, refresh = f"bench-access-{did}", f"bench-refresh-{did}"
            now = sandbox.now()
            sandbox.tokens[access] = bluesky_sandbox.TokenInfo("bluesky", did, ["com.atproto.appPass"], now + 7200)
            sandbox.tokens[refresh] = bluesky_sandbox.TokenInfo("bluesky", did, ["com.atproto.refresh"],
                                                                now + 90 * 86400, kind="refresh")
            out["bluesky"].append({"subject": did, "handle": handle, "access": access, "refresh": refresh})
            li_scopes = ["openid", "profile", "email", "w_member_social"]
            out["linkedin"].append({
                "subject": subject, "scopes": li_scopes,
                "access": sandbox.new_token("linkedin", subject, li_scopes, 5184000, client_id="sandbox-client"),
            })
        return web.json_response(out)

    app.router.add_post("/_bench/identities", identities)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(name: str) -> list[int]:
    """The pids of the processes named `name` (mariadbd: one; postgres: its postmaster and one backend
    per connection)."""
    try:
        out = subprocess.run(["pidof", name], capture_output=True, text=True, check=False).stdout.split()
    except OSError:
        return []
    return [int(pid) for pid in out]


def mariadb_pid() -> int | None:
    """The MariaDB server's pid (the drills meter it too)."""
    pids = server_pids("mariadbd")
    return pids[0] if pids else None


class CpuMeter:
    """CPU seconds spent by the workers, the sandbox and the database server during a phase: where a
    run's time goes on a machine whose cores they all share. PostgreSQL's backends are looked up
    again at the end (connections opened during the phase count from their start)."""

    def __init__(self, workers: list[Any], sandbox: Any, database_url: str) -> None:
        self.fixed = {"workers": [w.pid for w in workers], "sandbox": [sandbox.pid]}
        backend = make_url(database_url).get_backend_name()
        self.server = {"mysql": "mariadbd", "postgresql": "postgres"}.get(backend)
        self.start = {pid: cpu_seconds(pid) for pid in self._pids()}

    def _parts(self) -> dict[str, list[int]]:
        parts = dict(self.fixed)
        if self.server:
            parts[self.server] = server_pids(self.server)
        return parts

    def _pids(self) -> list[int]:
        return [pid for pids in self._parts().values() for pid in pids]

    def report(self, targets: int) -> str:
        used = {name: sum(max(0.0, cpu_seconds(pid) - self.start.get(pid, 0.0)) for pid in pids)
                for name, pids in self._parts().items()}
        return "CPU seconds: " + ", ".join(f"{name} {value:.1f} ({value * 1000 / max(1, targets):.2f} ms/target)"
                                           for name, value in used.items())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def start_sandbox(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-sandbox", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            http_json(url + "/_sandbox/publications?network=none")
            break
        except OSError:
            time.sleep(0.05)
    if delay > 0:  # every request answers after `delay` seconds, as a real network roughly would
        http_json(url + "/_sandbox/faults", {"network": "*", "kind": "slow", "delay": delay, "count": None})
    return process, url


# --- the database -------------------------------------------------------------------------------


async def fresh_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() in ("mysql", "postgresql"):
        await create_database(url, fresh=True)
    elif parsed.database and Path(parsed.database).exists():
        Path(parsed.database).unlink()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


async def create_accounts(url: str, sandbox_url: str, count: int, start: int) -> list[dict[str, str]]:
    """`count` workspaces, each with an X, a Bluesky and a LinkedIn account; returns their ids."""
    minted = http_json(sandbox_url + "/_bench/identities", {"count": count, "start": start})
    engine, cipher, now = create_engine(url), Cipher(SECRET), Clock().now()
    result = []
    async with engine.begin() as conn:
        for i in range(count):
            ws = await workspaces.create_workspace(conn, name=f"Bench {start + i}", description=None, settings=None,
                                                   now=now)
            ids = {"workspace": ws["id"]}
            x, bsky, li = minted["twitter"][i], minted["bluesky"][i], minted["linkedin"][i]
            identities = {
                "twitter": ConnectedIdentity(
                    remote_id=x["subject"], type="profile", name=x["subject"], username=x["subject"],
                    profile_image=None,
                    token=TokenSet(x["access"], x["refresh"], now + timedelta(hours=2), scopes=x["scopes"]),
                    metadata={"username": x["subject"]}),
                "bluesky": ConnectedIdentity(
                    remote_id=bsky["subject"], type="profile", name=bsky["handle"], username=bsky["handle"],
                    profile_image=None, token=TokenSet(bsky["access"], bsky["refresh"], now + timedelta(hours=2)),
                    metadata={"pds_url": "https://bsky.social", "handle": bsky["handle"], "did": bsky["subject"]}),
                "linkedin": ConnectedIdentity(
                    remote_id=li["subject"], type="profile", name=li["subject"], username=None, profile_image=None,
                    token=TokenSet(li["access"], None, now + timedelta(days=60), scopes=li["scopes"]),
                    metadata={"urn": f"urn:li:person:{li['subject']}"}),
            }
            for network, identity in identities.items():
                row = await accounts.upsert_identity(conn, workspace_id=ws["id"], platform=network, identity=identity,
                                                     cipher=cipher, now=now)
                ids[network] = row["id"]
            result.append(ids)
    await engine.dispose()
    return result


async def schedule_posts(url: str, owners: list[dict[str, str]], times: list[datetime], label: str) -> list[str]:
    """One post per time, round-robin over the workspaces, each to its workspace's three accounts,
    scheduled with its publish job (as `schedule_post` leaves them), in a few large transactions."""
    engine, now = create_engine(url), Clock().now()
    post_ids: list[str] = []
    for start in range(0, len(times), 2000):
        post_rows, target_rows, job_rows = [], [], []
        for n in range(start, min(start + 2000, len(times))):
            owner, at = owners[n % len(owners)], times[n]
            post_id = new_id("post")
            post_ids.append(post_id)
            post_rows.append({
                "id": post_id, "workspace_id": owner["workspace"], "status": "scheduled",
                "content": f"{label} post {n} at {at.isoformat()}", "hashtags": [], "platforms": list(NETWORKS),
                "platform_content": {}, "scheduled_at": at, "scheduled_timezone": "UTC", "created_at": now,
                "updated_at": now,
            })
            for network in NETWORKS:
                target_rows.append({
                    "id": new_id("tgt"), "post_id": post_id, "workspace_id": owner["workspace"], "network": network,
                    "requested": network, "account_id": owner[network], "status": "pending", "attempts": 0,
                    "created_at": now, "updated_at": now,
                })
            job_rows.append({
                "queue": PUBLISH_QUEUE, "kind": PUBLISH_KIND, "payload": {"post_id": post_id},
                "unique_key": publish_job_key(post_id), "live_key": publish_job_key(post_id), "status": "queued",
                "priority": 50, "run_at": at, "attempts": 0, "max_attempts": PUBLISH_MAX_ATTEMPTS, "created_at": now,
            })
        async with engine.begin() as conn:
            await conn.execute(posts.insert(), post_rows)
            await conn.execute(post_targets.insert(), target_rows)
            await conn.execute(jobs.insert(), job_rows)
    await engine.dispose()
    return post_ids


# --- the run ------------------------------------------------------------------------------------


def start_workers(url: str, sandbox_url: str, processes: int, concurrency: int, data_dir: str) -> list[Any]:
    env = {**os.environ, "OUIPOST_DATABASE_URL": url, "OUIPOST_SECRET_KEY": SECRET, "OUIPOST_DATA_DIR": data_dir,
           "OUIPOST_PLATFORM_BASE_URL": sandbox_url, "OUIPOST_LOG_LEVEL": "WARNING"}
    # BENCH_PROFILE=DIR: run each worker under cProfile, stats in DIR/worker-N.prof (written at SIGTERM).
    profile_dir = os.environ.get("BENCH_PROFILE")

    def command(n: int) -> list[str]:
        profiler = ["-m", "cProfile", "-o", str(Path(profile_dir) / f"worker-{n}.prof")] if profile_dir else []
        # Only the publish queue: jobs other features enqueue per published post (analytics sync)
        # would otherwise share the workers and the sandbox, and this measures publishing.
        return [sys.executable, *profiler, str(ROOT / "run.py"), "worker", "--concurrency", str(concurrency),
                "--poll-interval", "0.2", "--queues", PUBLISH_QUEUE]

    return [
        subprocess.Popen(command(n), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=open(Path(data_dir) / f"worker-{n}.log", "w"))
        for n in range(processes)
    ]


async def wait_final(url: str, post_ids: list[str], timeout: float) -> float:
    """Seconds until every post is final (polled every 100 ms), or raise after `timeout`."""
    engine = create_engine(url)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            async with engine.connect() as conn:
                left = await conn.scalar(sa.select(sa.func.count()).select_from(posts)
                                         .where(posts.c.status.not_in(FINAL)))
            if not left:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    raise TimeoutError(f"posts still not final after {timeout:.0f}s")


async def report(url: str, sandbox_url: str, post_ids: list[str], title: str) -> dict[str, Any]:
    engine = create_engine(url)
    chosen = set(post_ids)
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(post_targets.c.post_id, post_targets.c.network, post_targets.c.status,
                      post_targets.c.remote_id, post_targets.c.error_code, post_targets.c.published_at,
                      posts.c.scheduled_at)
            .join(posts, posts.c.id == post_targets.c.post_id)
        )).all()
    await engine.dispose()
    rows = [r for r in rows if r.post_id in chosen]
    lateness = sorted((r.published_at - r.scheduled_at).total_seconds() for r in rows if r.status == "published")
    published_remote = Counter()
    for network in NETWORKS:
        for pub in http_json(f"{sandbox_url}/_sandbox/publications?network={network}")["publications"]:
            published_remote[(network, pub["remote_id"])] += 1
    remote_of_target = {(r.network, r.remote_id) for r in rows if r.remote_id}
    duplicates = sum(n - 1 for key, n in published_remote.items() if key in remote_of_target and n > 1)
    lost = sum(1 for r in rows if r.status != "published" or (r.network, r.remote_id) not in published_remote)
    errors = Counter(r.error_code for r in rows if r.status != "published")

    def pct(p: float) -> float:
        return lateness[min(len(lateness) - 1, int(p * len(lateness)))] if lateness else float("nan")

    result = {
        "targets": len(rows), "published": len(lateness), "duplicates": duplicates, "lost": lost,
        "lateness_p50": pct(0.50), "lateness_p99": pct(0.99), "lateness_max": lateness[-1] if lateness else None,
        "lateness_mean": statistics.fmean(lateness) if lateness else None, "errors": dict(errors),
    }
    print(f"{title}: {result['published']}/{result['targets']} targets published; lateness p50 "
          f"{result['lateness_p50']:.3f}s p99 {result['lateness_p99']:.3f}s max {result['lateness_max']:.3f}s; "
          f"duplicates {duplicates}; lost {lost}" + (f"; not published: {dict(errors)}" if errors else ""))
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="mysql+aiomysql://root@127.0.0.1:3306/ouipost_bench_publish")
    parser.add_argument("--posts", type=int, default=10000)
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--delay", type=float, default=0.05, help="sandbox answer delay in seconds")
    parser.add_argument("--lead", type=float, default=8.0, help="seconds between set-up and the due time")
    parser.add_argument("--steady-rate", type=int, default=100)
    parser.add_argument("--steady-seconds", type=int, default=30)
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--skip-steady", action="store_true")
    args = parser.parse_args()

    print(f"database {make_url(args.database_url).render_as_string(hide_password=True)}; {args.processes} worker "
          f"process(es) x concurrency {args.concurrency}; sandbox delay {args.delay * 1000:.0f} ms; "
          f"{args.workspaces} workspaces x {len(NETWORKS)} accounts ({', '.join(NETWORKS)})")
    sandbox, sandbox_url = start_sandbox(args.delay)
    workers: list[Any] = []
    try:
        await fresh_database(args.database_url)
        # Two sets of accounts: the steady run must not find its accounts' pacing spent by the burst.
        owners = await create_accounts(args.database_url, sandbox_url, args.workspaces, start=0)
        steady_owners = await create_accounts(args.database_url, sandbox_url, args.workspaces,
                                              start=args.workspaces)
        with tempfile.TemporaryDirectory() as data_dir:
            if not args.skip_burst:
                due = Clock().now().replace(microsecond=0) + timedelta(seconds=args.lead)
                post_ids = await schedule_posts(args.database_url, owners, [due] * args.posts, "burst")
                workers = start_workers(args.database_url, sandbox_url, args.processes, args.concurrency, data_dir)
                wait = (due - Clock().now()).total_seconds()
                if wait < 1:
                    print(f"warning: set-up ran past the due time by {-wait:.1f}s; raise --lead")
                meter = CpuMeter(workers, sandbox, args.database_url)
                await asyncio.sleep(max(0.0, wait))
                drained = await wait_final(args.database_url, post_ids, timeout=900)
                print(meter.report(len(post_ids) * len(NETWORKS)))
                print(f"(b) burst: {args.posts} posts x {len(NETWORKS)} networks due at {due.isoformat()}: all final "
                      f"{drained:.1f}s after the due time")
                await report(args.database_url, sandbox_url, post_ids, "(b) burst")
            if not args.skip_steady:
                if not workers:
                    workers = start_workers(args.database_url, sandbox_url, args.processes, args.concurrency, data_dir)
                start = Clock().now().replace(microsecond=0) + timedelta(seconds=args.lead)
                total = args.steady_rate * args.steady_seconds
                times = [start + timedelta(seconds=n / args.steady_rate) for n in range(total)]
                post_ids = await schedule_posts(args.database_url, steady_owners, times, "steady")
                meter = CpuMeter(workers, sandbox, args.database_url)
                await asyncio.sleep(max(0.0, (times[-1] - Clock().now()).total_seconds()))
                drained = await wait_final(args.database_url, post_ids, timeout=900)
                print(meter.report(len(post_ids) * len(NETWORKS)))
                print(f"(c) steady: {args.steady_rate} posts/s x {len(NETWORKS)} networks for {args.steady_seconds}s: "
                      f"all final {drained:.1f}s after the last due time")
                await report(args.database_url, sandbox_url, post_ids, "(c) steady")
            for process in workers:
                process.send_signal(signal.SIGTERM)
            for process in workers:
                process.wait(timeout=60)
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
        sandbox.terminate()
        sandbox.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-sandbox":
        serve_sandbox(int(sys.argv[2]))
    else:
        asyncio.run(main())
