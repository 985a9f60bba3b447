"""Prometheus metrics: what every process counts, and `GET /metrics`, which shows them.

Every `serve` and `worker` process of one host writes its counters to files in one directory
(prometheus-client's multiprocess mode; OUIPOST_METRICS_DIR, default `<data dir>/metrics`), and one
scrape of any API process of that host answers the sum over all of them, workers included.
`setup_multiprocess` prepares that directory when a process starts: the live gauges of processes
that are gone are deleted (prometheus_client.multiprocess.mark_process_dead), and their counters
and histograms are folded into one archive file per type, so totals never go back when a process
exits and the directory does not grow with restarts. Without it (tests, an app built by hand) the
counters are the process's own.
`GET /metrics` and the middleware that counts HTTP requests are ouipost/http/metrics.py.

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

import contextlib
import fcntl
import functools
import glob
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("ouipost.core.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# HTTP handlers: 2.5 ms to 10 s; jobs and platform calls are slower, up to a minute.
HTTP_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# The design's target is within 1 s of the scheduled time (p99); retries and pacing make it minutes.
LATENESS_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
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
        self.followup_outcomes = Counter("ouipost_followup_outcomes", "Follow-ups (thread replies and first "
                                         "comments) per network by kind (reply, comment) and outcome (published, "
                                         "failed, pending = retried later)", ("network", "kind", "status"),
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

    def observe_followups(self, network: str, kinds: Iterable[str], status: str) -> None:
        """The outcome of follow-up parts of these kinds (one entry per part) on `network`."""
        for kind in kinds:
            self.followup_outcomes.labels(network, kind, status).inc()

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
