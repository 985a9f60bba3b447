"""`GET /metrics` (the Prometheus text of every process of this host, see ouipost/core/metrics.py), the
middleware that counts and times every HTTP answer, and a worker's own /metrics listener.

What a scrape asks the database and Redis (queue depths, redis_up) is bounded by
SCRAPE_TIMEOUT_SECONDS, so /metrics answers even when they do not.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.config import Settings
from ouipost.core import errors
from ouipost.core.clock import Clock
from ouipost.core.forwarded import ip_address_of, is_forwarded
from ouipost.core.metrics import multiprocess_dir, process_metrics
from ouipost.http.context import CLOCK, DB, SETTINGS
from ouipost.http.rate_limits import LIMITER, RedisLimiter
from ouipost.http.web import Handler, error_middleware
from ouipost.jobs import queue

log = logging.getLogger("ouipost.core.metrics")

SCRAPE_TIMEOUT_SECONDS = 1.0  # a scrape must answer even when the database or Redis does not
UNMATCHED_ROUTE = "unmatched"  # 404s from routing: one label value, whatever path was asked


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
    if not _is_loopback(request.remote) or is_forwarded(request.headers):
        # A reverse proxy on this host is a loopback peer too: what it passes on came from elsewhere.
        raise errors.Forbidden("The metrics are served to loopback clients only (not through a proxy); set "
                               "OUIPOST_METRICS_TOKEN to scrape them from elsewhere")


def _is_loopback(remote: str | None) -> bool:
    # A unix socket peer or a name is not an address we can vouch for.
    address = ip_address_of(remote or "")
    return address is not None and address.is_loopback


class _FixedCollector:
    """Families computed before the scrape (asking the database is async; collectors are not)."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families


async def _scrape_time_families(app: web.Application) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

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
