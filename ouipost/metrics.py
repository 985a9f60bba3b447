"""Prometheus metrics: what every process counts, and `GET /metrics`, which shows them.

Every `serve` and `worker` process of one host writes its counters to files in one directory
(prometheus-client's multiprocess mode; OUIPOST_METRICS_DIR, default `<data dir>/metrics`), and one
scrape of any API process of that host answers the sum over all of them, workers included.
`setup_multiprocess` prepares that directory when a process starts: the live gauges of processes
that are gone are deleted (prometheus_client.multiprocess.mark_process_dead), and their counters
and histograms are folded into one archive file per type, so totals never go back when a process
exits and the directory does not grow with restarts. Without it (tests, an app built by hand) the
counters are the process's own.

The metric objects are created once per process (`process_metrics()`): prometheus-client keeps one
value per series and process, and in multiprocess mode two objects for one series in one process
would overwrite each other's value in the shared file. The values are the process's state, not an
app's; apps and workers reach them through `process_metrics()`.

Families (all prefixed `ouipost_`): http_requests_total and http_request_duration_seconds by route
template / method / status; jobs_claimed/succeeded/retried/failed_total and job_duration_seconds by
queue and kind; publish_outcomes_total by network and status, publish_lateness_seconds (scheduled
time to publication) by network; platform_call_duration_seconds by
network and result; webhook_deliveries_total by outcome; rate_limit_rejections_total by tier;
login_failures_total by reason. Asked of the database and Redis at scrape time (bounded by
SCRAPE_TIMEOUT_SECONDS): queue_jobs (queued due / scheduled / running), queue_oldest_due_job_age_seconds,
redis_up; scrape_errors when one of those did not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import glob
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ouipost import errors
from ouipost.web import Handler

if TYPE_CHECKING:  # ouipost.config imports the platforms, which import this module
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ouipost.clock import Clock
    from ouipost.config import Settings

log = logging.getLogger("ouipost.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_TIMEOUT_SECONDS = 1.0  # a scrape must answer even when the database or Redis does not
# HTTP handlers: 2.5 ms to 10 s; jobs and platform calls are slower, up to a minute.
HTTP_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# The design's target is within 1 s of the scheduled time (p99); retries and pacing make it minutes.
LATENESS_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
UNMATCHED_ROUTE = "unmatched"  # 404s from routing: one label value, whatever path was asked
_ARCHIVED_TYPES = ("counter", "histogram")


class Metrics:
    """The process's metric families. Children for HTTP labels are cached: `labels()` validates and
    hashes on every call, the cache makes the per-request cost one dict lookup."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        # Single-process mode reads this registry; multiprocess mode reads the files instead.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("ouipost_http_requests", "HTTP requests answered",
                                     ("route", "method", "status"), registry=r)
        self.http_duration = Histogram("ouipost_http_request_duration_seconds", "Time to answer an HTTP request",
                                       ("route", "method"), buckets=HTTP_BUCKETS, registry=r)
        self.jobs_claimed = Counter("ouipost_jobs_claimed", "Jobs claimed by workers", ("queue", "kind"), registry=r)
        self.jobs_succeeded = Counter("ouipost_jobs_succeeded", "Jobs whose handler succeeded",
                                      ("queue", "kind"), registry=r)
        self.jobs_retried = Counter("ouipost_jobs_retried", "Job attempts that failed and were queued again",
                                    ("queue", "kind"), registry=r)
        self.jobs_failed = Counter("ouipost_jobs_failed", "Jobs failed for good (no attempt left, or not retryable)",
                                   ("queue", "kind"), registry=r)
        self.job_duration = Histogram("ouipost_job_duration_seconds", "Time a job's handler ran", ("queue", "kind"),
                                      buckets=SLOW_BUCKETS, registry=r)
        self.publish_outcomes = Counter("ouipost_publish_outcomes", "Publish attempts per network by outcome "
                                        "(published, failed, pending = retried later)", ("network", "status"),
                                        registry=r)
        self.platform_calls = Histogram("ouipost_platform_call_duration_seconds", "Calls to networks' APIs by "
                                        "result (2xx, 3xx, 4xx, 429, 5xx, error = no answer)",
                                        ("network", "result"), buckets=SLOW_BUCKETS, registry=r)
        self.webhook_deliveries = Counter("ouipost_webhook_deliveries", "Webhook delivery attempts by outcome "
                                          "(succeeded, retrying, failed)", ("outcome",), registry=r)
        self.rate_limit_rejections = Counter("ouipost_rate_limit_rejections", "Requests refused with 429 by the "
                                             "per-key rate limit", ("tier",), registry=r)
        self.publish_lateness = Histogram("ouipost_publish_lateness_seconds", "From a scheduled post's time to its "
                                          "publication on a network", ("network",), buckets=LATENESS_BUCKETS,
                                          registry=r)
        self.login_failures = Counter("ouipost_login_failures", "Failed admin sign-ins by reason",
                                      ("reason",), registry=r)
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = (self.http_requests.labels(route, method, str(status)), self.http_duration.labels(route, method))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_publish(self, network: str, status: str, scheduled_at: datetime | None, now: datetime) -> None:
        """One target's outcome; a scheduled post published on time-or-late adds its lateness."""
        self.publish_outcomes.labels(network, status).inc()
        if status == "published" and scheduled_at is not None:
            self.publish_lateness.labels(network).observe(max(0.0, (now - scheduled_at).total_seconds()))

    def observe_platform_call(self, network: str, status: int | None, seconds: float) -> None:
        if status is None:
            result = "error"
        elif status == 429:
            result = "429"
        else:
            result = f"{min(max(status // 100, 1), 5)}xx"
        self.platform_calls.labels(network, result).observe(seconds)


@functools.cache
def process_metrics() -> Metrics:
    """This process's metrics (created on first use: after `setup_multiprocess` when it runs)."""
    return Metrics()


# ------------------------------------------------------------------------------------------------
# Multiprocess mode


def setup_multiprocess(directory: Path) -> None:
    """Make this process write its metrics to files in `directory`, shared with the host's other
    Oui Post processes. Call once at start, before any metric is used. Creates the directory;
    cleans what processes that are gone left there (see the module docstring). Raises OSError when
    the directory cannot be created or written."""
    from prometheus_client import values

    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus-client picks its value class when it is first imported; it may have been imported
    # before the environment said where the files go.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()
    process_metrics.cache_clear()
    archive_dead_processes(directory)


def multiprocess_dir() -> str | None:
    """The shared directory when this process is in multiprocess mode, else None."""
    from prometheus_client import values

    return os.environ.get(MULTIPROC_ENV) if getattr(values.ValueClass, "_multiprocess", False) else None


def archive_dead_processes(directory: Path) -> None:
    """Delete the gauges of processes that no longer run and fold their counters and histograms into
    `<type>_archive.db`, under a lock so processes starting together do not fold twice."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    with _directory_lock(directory):
        by_pid: dict[int, list[str]] = {}
        for path in glob.glob(os.path.join(directory, "*.db")):
            pid = _file_pid(path)
            if pid is not None and not _pid_alive(pid):
                by_pid.setdefault(pid, []).append(path)
        if not by_pid:
            return
        for pid in by_pid:
            mark_process_dead(pid, str(directory))
        for typ in _ARCHIVED_TYPES:
            dead = [p for paths in by_pid.values() for p in paths if os.path.basename(p).startswith(typ + "_")]
            if not dead:
                continue
            archive = os.path.join(directory, f"{typ}_archive.db")
            sources = dead + ([archive] if os.path.exists(archive) else [])
            merged = MultiProcessCollector.merge(sources, accumulate=False)
            fresh = archive + ".new"
            with contextlib.suppress(FileNotFoundError):
                os.remove(fresh)
            target = MmapedDict(fresh)
            try:
                for metric in merged:
                    for sample in metric.samples:
                        key = mmap_key(metric.name, sample.name, list(sample.labels), list(sample.labels.values()),
                                       metric.documentation)
                        target.write_value(key, sample.value, 0.0)
            finally:
                target.close()
            os.replace(fresh, archive)
            for path in dead:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        # What remains of a dead process (gauges of other modes) goes too.
        for paths in by_pid.values():
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        log.info("metrics: folded the files of %d ended process(es) into the archive", len(by_pid))


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _file_pid(path: str) -> int | None:
    # counter_123.db, histogram_123.db, gauge_livesum_123.db; the archives have no pid.
    stem = os.path.basename(path)[: -len(".db")]
    last = stem.rsplit("_", 1)[-1]
    return int(last) if last.isdigit() else None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


# ------------------------------------------------------------------------------------------------
# HTTP


def route_template(request: web.Request) -> str:
    """The matched route's canonical path (`/api/posts/{id}`), never the raw path: label values stay
    as few as the routes."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every answer by route template, method and status, and times it. Outermost, so the
    time covers the other middlewares and errors are seen with the status they are answered with."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        process_metrics().observe_request(route_template(request), request.method, status,
                                          time.perf_counter() - started)


async def metrics_handler(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text. With OUIPOST_METRICS_TOKEN set, only `Authorization: Bearer
    <token>` may read it (401 without, 403 with another); unset, only loopback clients (403)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from ouipost.context import SETTINGS

    _check_access(request, request.app[SETTINGS].metrics_token)
    live = await _scrape_time_families(request.app)
    shared = multiprocess_dir()
    if shared:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)
        body = generate_latest(registry)
    else:
        body = generate_latest(process_metrics().registry)
    body += generate_latest(_FixedCollector(live))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _check_access(request: web.Request, token: str | None) -> None:
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise errors.Unauthorized("Send the metrics token as 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise errors.Forbidden("This token may not read the metrics")
        return
    if not _is_loopback(request.remote):
        raise errors.Forbidden("The metrics are served to loopback clients only; set OUIPOST_METRICS_TOKEN "
                               "to scrape them from elsewhere")


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False  # a unix socket peer or a name: not an address we can vouch for
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class _FixedCollector:
    """Families computed before the scrape (asking the database is async; collectors are not)."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families


async def _scrape_time_families(app: web.Application) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

    from ouipost import queue
    from ouipost.context import CLOCK, DB
    from ouipost.rate_limits import LIMITER, RedisLimiter

    families: list[Any] = []
    errors_family = GaugeMetricFamily("ouipost_scrape_errors", "1 when a source of this scrape did not answer "
                                      "in time", labels=["source"])
    jobs = GaugeMetricFamily("ouipost_queue_jobs", "Jobs in the queue now: due (queued, run_at passed), "
                             "scheduled (queued, later) and running", labels=["queue", "state"])
    oldest = GaugeMetricFamily("ouipost_queue_oldest_due_job_age_seconds", "How long the oldest due job has "
                               "waited (0 when none is due)", labels=["queue"])
    try:
        now: datetime = app[CLOCK].now()
        async with app[DB].connect() as conn:
            stats = await asyncio.wait_for(queue.queue_depths(conn, now), SCRAPE_TIMEOUT_SECONDS)
    except Exception as exc:  # a scrape reports the database's absence rather than failing
        log.warning("metrics: queue statistics unavailable (%s)", type(exc).__name__)
        errors_family.add_metric(["database"], 1)
    else:
        errors_family.add_metric(["database"], 0)
        for row in stats:
            jobs.add_metric([row.queue, "due"], row.due)
            jobs.add_metric([row.queue, "scheduled"], row.scheduled)
            jobs.add_metric([row.queue, "running"], row.running)
            oldest.add_metric([row.queue], row.oldest_due_age_seconds)
        families += [jobs, oldest]
    limiter = app.get(LIMITER)
    if isinstance(limiter, RedisLimiter):
        redis_up = GaugeMetricFamily("ouipost_redis_up", "1 when Redis (shared rate limits) answers")
        try:
            health = await asyncio.wait_for(limiter.health(), SCRAPE_TIMEOUT_SECONDS)
            redis_up.add_metric([], 1 if health.get("redis_status") == "up" else 0)
        except Exception:
            redis_up.add_metric([], 0)
        families.append(redis_up)
    families.append(errors_family)
    return families


# ------------------------------------------------------------------------------------------------
# A worker's own /metrics (`run.py worker --metrics-port`)


def metrics_app(settings: Settings, engine: AsyncEngine, clock: Clock) -> web.Application:
    """An app serving only `GET /metrics`, with the API's access rules and error envelope: for
    worker processes on hosts where no API process runs."""
    from ouipost.context import CLOCK, DB, SETTINGS
    from ouipost.web import error_middleware

    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[DB] = engine
    app[CLOCK] = clock
    app.router.add_get("/metrics", metrics_handler)
    return app


async def start_metrics_server(host: str, port: int, settings: Settings, engine: AsyncEngine,
                               clock: Clock) -> web.AppRunner:
    """Listen on host:port with `metrics_app`; the caller cleans the runner up. OSError when the
    port cannot be bound."""
    runner = web.AppRunner(metrics_app(settings, engine, clock), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
