"""The worker loop: claim due jobs in batches, run them as tasks, acknowledge them in batches.

One loop, three side tasks:
- the loop: while not stopping, claim up to the free slots (at most `batch_size`) and start each
  job as a task; then wait for any of (a wake-up, a freed slot, the next run_at / poll timeout,
  the stop event);
- acknowledger: writes the completions gathered meanwhile in one UPDATE (group commit);
- heartbeat: extends the leases of in-flight jobs, refreshes the worker's row and hands back the
  jobs of dead workers (expired leases);
- pruner: starts the periodic jobs that are missing (finished jobs are pruned by one of them,
  `housekeeping`) and deletes the rows of dead workers.

`stop()` (SIGTERM/SIGINT in `run.py worker`, app cleanup in `serve`) stops claiming, waits for
in-flight jobs up to `grace_seconds`, cancels what is left and releases those jobs to the queue
(their attempt not counted), then deletes the worker's row. Jobs are run at least once; a job is
never run by two workers at once while its worker heartbeats. Handlers that must not repeat an
external effect (publishing) keep their own state machine (see DESIGN.md "Publishing").
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.core.clock import Clock
from ouipost.core.logs import CURRENT_JOB
from ouipost.core.metrics import process_metrics
from ouipost.jobs import queue
from ouipost.jobs.queue import Job, JobFailed, RetryJob
from workers.periodic import ensure_periodic_jobs

if TYPE_CHECKING:  # resources build the publisher, whose module imports this one for JobContext
    from workers.resources import WorkerResources

log = logging.getLogger("ouipost.worker")

CLAIM_GATHER_SECONDS = 0.02  # under a backlog, how long freed slots may wait to be claimed together


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: the job, the database, the clock and the process's resources."""

    job: Job
    engine: AsyncEngine
    clock: Clock
    # None only in a worker built without resources (tests of the queue alone run handlers that need
    # none): `resources` then fails the job, so handlers never check.
    given_resources: WorkerResources | None = None
    ack: Acknowledgement = field(default_factory=lambda: Acknowledgement())

    @property
    def resources(self) -> WorkerResources:
        """The worker process's resources (settings, HTTP sessions, cipher, storage, publisher).
        Raises JobFailed in a worker started without them."""
        if self.given_resources is None:
            raise JobFailed(f"job kind {self.job.kind!r} needs the worker's resources; this worker has none")
        return self.given_resources

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def kind(self) -> str:
        return self.job.kind

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def attempts(self) -> int:
        """This attempt's number, from 1."""
        return self.job.attempts


@dataclass
class Acknowledgement:
    """Set by a handler that marked its own job done (queue.complete_jobs_in, fenced) in the
    transaction of its work: the worker then does not acknowledge it again."""

    written: bool = False


Handler = Callable[[JobContext], Awaitable[None]]


@dataclass
class WorkerCounters:
    """What this worker did since it started (tests, health, logs)."""

    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0  # outcomes refused by the fence: the lease had expired and the job moved on


class Worker:
    def __init__(
        self,
        engine: AsyncEngine,
        handlers: Mapping[str, Handler],
        *,
        queues: Sequence[str] | None = None,
        concurrency: int = 4,
        clock: Clock | None = None,
        resources: WorkerResources | None = None,
        batch_size: int = 50,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        grace_seconds: float = 8.0,
        prune_interval: float = 600.0,
    ) -> None:
        """`queues` None takes every queue. `lease_seconds` is how long a dead worker's jobs wait
        before another worker takes them; heartbeats renew it every third of it. The default grace
        (8 s) ends before the usual 10 s after which process managers send SIGKILL. `resources`
        (workers/resources.py) are what handlers share; the caller closes them after `run()`."""
        if concurrency < 1:
            raise ValueError("concurrency must be 1 or more")
        self.engine = engine
        self.handlers = dict(handlers)
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency
        self.clock = clock or Clock()
        self.resources = resources
        self.batch_size = max(1, batch_size)
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.grace_seconds = grace_seconds
        self.prune_interval = prune_interval
        self.id = f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"
        self.counters = WorkerCounters()
        self.metrics = process_metrics()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._acks: list[int] = []
        self._released: list[int] = []
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._ack_ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._enqueues_seen = 0  # queue.enqueued_here() when the loop last claimed
        self._closing = False  # set once no job can finish any more: the acknowledger drains and ends

    # --- control ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Claim at once (a job was enqueued in this process)."""
        self._wake.set()

    def stop(self) -> None:
        """Begin a graceful shutdown; `run()` returns when it is done. Safe from a signal handler."""
        self._stop.set()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()`. Database errors are logged and retried after a poll interval, so a
        database restart pauses the worker instead of killing it."""
        if not await self._register_until_stopped():
            return
        log.info("worker %s started (concurrency %d, queues %s)", self.id, self.concurrency,
                 ",".join(self.queues) if self.queues else "all")
        side_tasks = [
            asyncio.create_task(self._acknowledger(), name="acknowledger"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._pruner(), name="pruner"),
        ]
        backlog = False  # the last claim took all it asked for: more jobs are probably due
        try:
            while not self._stop.is_set():
                self._slot_freed.clear()
                free = self.concurrency - len(self._running)
                if free == 0:
                    await self._wait_for(self._slot_freed, timeout=None)
                    continue
                if backlog and free < self._claim_low_water:
                    # Under a backlog, claim a few slots' worth at once rather than one job per
                    # freed slot (each claim is a transaction); waiting is bounded by a moment.
                    await self._gather_free_slots()
                    free = self.concurrency - len(self._running)
                wanted = min(free, self.batch_size)
                self._wake.clear()
                self._enqueues_seen = queue.enqueued_here()
                jobs = await self._claim(wanted)
                for job in jobs:
                    self._start(job)
                backlog = len(jobs) == wanted
                if backlog:
                    continue  # probably more due: claim again as soon as slots allow
                await self._wait_for(self._wake, timeout=await self._idle_seconds())
        finally:
            await self._shutdown(side_tasks)

    @property
    def _claim_low_water(self) -> int:
        return max(1, min(self.batch_size, self.concurrency // 4))

    async def _gather_free_slots(self) -> None:
        """Wait until a quarter of the slots are free, at most CLAIM_GATHER_SECONDS."""
        deadline = asyncio.get_running_loop().time() + CLAIM_GATHER_SECONDS
        while self.concurrency - len(self._running) < self._claim_low_water and not self._stop.is_set():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            self._slot_freed.clear()
            await self._wait_for(self._slot_freed, timeout=left)

    async def _claim(self, wanted: int) -> list[Job]:
        try:
            jobs = await queue.claim_due_jobs(
                self.engine, self.id, self.queues, wanted, self.lease_seconds, self.clock.now()
            )
        except Exception as exc:
            log.warning("claim failed (%s: %s); retrying after %.1fs", type(exc).__name__, exc, self.poll_interval)
            return []
        self.counters.claimed += len(jobs)
        for job in jobs:
            self.metrics.jobs_claimed.labels(job.queue, job.kind).inc()
        log.debug("poll: wanted %d, claimed %d", wanted, len(jobs))
        return jobs

    async def _idle_seconds(self) -> float:
        """Until the next queued job is due, at most one poll interval."""
        now = self.clock.now()
        try:
            upcoming = await queue.next_run_at(
                self.engine, self.queues, now, now + timedelta(seconds=self.poll_interval)
            )
        except Exception:
            return self.poll_interval
        if upcoming is None:
            return self.poll_interval
        return max(0.0, (upcoming - now).total_seconds())

    async def _wait_for(self, event: asyncio.Event, timeout: float | None) -> None:
        """Wait for `event` or the stop event, at most `timeout` seconds."""
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # --- running one job -------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        if job.id in self._running:
            # Our own lease lapsed (a stall longer than the lease) and we claimed the job again while
            # the first run goes on: let that run finish and acknowledge it, do not start a second.
            log.warning("job %s claimed again while still running here; not started twice", job.id)
            return
        self._running[job.id] = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")

    async def _run_job(self, job: Job) -> None:
        context = JobContext(job, self.engine, self.clock, self.resources)
        CURRENT_JOB.set((job.id, job.kind))  # this task's log lines name the job (JSON logs)
        started = time.perf_counter()
        try:
            handler = self.handlers.get(job.kind)
            if handler is None:
                raise JobFailed(f"no handler for job kind {job.kind!r} in this worker")
            await handler(context)
        except asyncio.CancelledError:
            self._released.append(job.id)  # shutdown after the grace period: hand it back
            raise
        except RetryJob as exc:
            await self._record_failure(job, str(exc), retry_after=exc.retry_after)
        except JobFailed as exc:
            await self._record_failure(job, str(exc), retryable=False)
        except Exception as exc:
            log.exception("job %s (%s) raised", job.id, job.kind)
            await self._record_failure(job, f"{type(exc).__name__}: {exc}")
        else:
            self.metrics.jobs_succeeded.labels(job.queue, job.kind).inc()
            if context.ack.written:
                self.counters.completed += 1
            else:
                self._acks.append(job.id)
                self._ack_ready.set()
        finally:
            self.metrics.job_duration.labels(job.queue, job.kind).observe(time.perf_counter() - started)
            self._running.pop(job.id, None)
            self._slot_freed.set()
            if queue.enqueued_here() != self._enqueues_seen:
                self._wake.set()  # the handler enqueued jobs (committed by now): claim them at once

    async def _record_failure(
        self, job: Job, error: str, *, retry_after: float | None = None, retryable: bool = True
    ) -> None:
        try:
            status = await queue.fail_or_retry(
                self.engine, job, error, self.clock.now(), retry_after=retry_after, retryable=retryable
            )
        except Exception:
            # The lease will expire and another attempt will run: at least once, never lost.
            log.exception("job %s: could not record its failure", job.id)
            return
        if status == "queued":
            self.counters.retried += 1
            self.metrics.jobs_retried.labels(job.queue, job.kind).inc()
        elif status == "failed":
            self.counters.failed += 1
            self.metrics.jobs_failed.labels(job.queue, job.kind).inc()
            log.warning("job %s (%s) failed after %d attempt(s): %s", job.id, job.kind, job.attempts, error)
        else:
            self.counters.lost += 1

    # --- side tasks ------------------------------------------------------------------------

    async def _acknowledger(self) -> None:
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            await self._flush_acks()
            if self._closing and not self._acks:
                return

    async def _flush_acks(self) -> None:
        ids, self._acks = self._acks, []
        if not ids:
            return
        try:
            done = await queue.complete_jobs(self.engine, ids, self.id, self.clock.now())
        except Exception as exc:
            log.warning("acknowledging %d job(s) failed (%s); will retry", len(ids), exc)
            self._acks[:0] = ids
            await asyncio.sleep(min(1.0, self.poll_interval))
            self._ack_ready.set()
            return
        self.counters.completed += done
        if done < len(ids):
            self.counters.lost += len(ids) - done
            log.warning("%d completion(s) refused: their lease had expired and the job moved on", len(ids) - done)

    async def _heartbeat(self) -> None:
        interval = self.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            now = self.clock.now()
            try:
                if self._running:
                    until = now + timedelta(seconds=self.lease_seconds)
                    kept = await queue.extend_leases(self.engine, list(self._running), self.id, until)
                    if kept < len(self._running):
                        log.warning("%d lease(s) lost; their outcome will be ignored", len(self._running) - kept)
                if not await queue.worker_heartbeat(self.engine, self.id, now):
                    await self._register()  # pruned as dead while we stalled: we are alive again
                await queue.recover_expired_leases(self.engine, now)
            except Exception as exc:
                log.warning("heartbeat failed (%s: %s)", type(exc).__name__, exc)

    async def _pruner(self) -> None:
        while True:
            now = self.clock.now()
            try:
                # Periodic jobs (token refresh, housekeeping): started here, at start and then every
                # prune interval, so a chain that was not needed at start (no accounts yet) begins later.
                await ensure_periodic_jobs(self.engine, self.clock, kinds=self.handlers)
                dead = await queue.prune_dead_workers(self.engine, now - timedelta(seconds=self.lease_seconds * 3))
                log.debug("prune: %d dead worker row(s)", dead)
            except Exception as exc:
                log.warning("pruning failed (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.prune_interval)

    async def _register_until_stopped(self) -> bool:
        while not self._stop.is_set():
            try:
                await self._register()
                return True
            except Exception as exc:
                log.warning("worker registration failed (%s: %s); retrying", type(exc).__name__, exc)
                await self._wait_for(self._stop, timeout=self.poll_interval)
        return False

    async def _register(self) -> None:
        await queue.register_worker(
            self.engine, self.id, hostname=socket.gethostname(), pid=os.getpid(), queues=self.queues,
            concurrency=self.concurrency, now=self.clock.now(),
        )

    # --- shutdown --------------------------------------------------------------------------

    async def _shutdown(self, side_tasks: list[asyncio.Task[None]]) -> None:
        if self._running:
            log.info("worker %s stopping: waiting up to %.0fs for %d job(s)", self.id, self.grace_seconds,
                     len(self._running))
            _, pending = await asyncio.wait(list(self._running.values()), timeout=self.grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # The resources' shared writers (group commits) finish what they were given, bounded likewise.
        if self.resources is not None:
            try:
                await asyncio.wait_for(self.resources.drain(), timeout=max(1.0, self.grace_seconds))
            except Exception as exc:
                log.warning("worker %s: shared writes not finished (%s)", self.id, exc)
        # No job can finish any more: let the acknowledger write what is left (bounded, in case
        # the database is away), then stop the other side tasks.
        acknowledger, *others = side_tasks
        self._closing = True
        self._ack_ready.set()
        try:
            await asyncio.wait_for(acknowledger, timeout=max(1.0, self.grace_seconds))
        except TimeoutError:
            log.warning("worker %s: %d completion(s) not written; their jobs will run again", self.id, len(self._acks))
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        try:
            released = await queue.release_jobs(self.engine, self._released, self.id)
            self.counters.released += released
            await queue.unregister_worker(self.engine, self.id)
        except Exception as exc:
            # Unacknowledged and unreleased jobs come back when their lease expires.
            log.warning("worker %s: shutdown bookkeeping failed (%s: %s)", self.id, type(exc).__name__, exc)
        log.info("worker %s stopped: %s", self.id, self.counters)
