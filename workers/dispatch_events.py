"""`dispatch_events`: turn outbox events into webhook deliveries, each sent by its own job.

The rules (which events go to which webhooks, the live keys, why runs never overlap) are in
ouipost/webhooks/dispatch.py; this is the job that runs them: one batch of events per run, and the
periodic safety run (key `periodic:dispatch_events`) that also re-enqueues due deliveries without
a job.
"""

from __future__ import annotations

import logging

from ouipost.jobs import queue
from ouipost.webhooks import dispatch as webhook_dispatch
from workers import periodic
from workers.worker import JobContext

KIND = webhook_dispatch.DISPATCH_KIND
SWEEP_KEY = periodic.periodic_key(KIND)
log = logging.getLogger(__name__)


async def handle(context: JobContext) -> None:
    """One batch of outbox events, in one transaction (see ouipost/webhooks/dispatch.py); the periodic
    run also re-enqueues due deliveries that have no job.

    Nothing happens when the job is no longer ours (its lease expired and another worker took it).
    Database errors propagate: the transaction is rolled back and the queue retries the job.
    """
    now = context.clock.now()
    sweep = context.job.unique_key == SWEEP_KEY
    if sweep:
        async with context.engine.connect() as conn:
            needed = await webhook_dispatch.sweep_needed(conn)
        if needed:
            await periodic.schedule_next_run(context.engine, context.job, now)
    async with context.engine.begin() as conn:
        # First statement: give up the own live key (ouipost/webhooks/dispatch.py, step 3). A periodic
        # run's key was handed over already; the statement still matches its row (and still writes).
        if not await queue.release_unique_key(conn, context.job):
            log.info("dispatch job %s is no longer ours; its new owner dispatches", context.id)
            return
        dispatched, full = await webhook_dispatch.dispatch_batch(conn, now=now, limit=webhook_dispatch.BATCH_SIZE)
        if full:
            await webhook_dispatch.enqueue_dispatch_run(conn, now=now)
        if sweep:
            await webhook_dispatch.requeue_due_deliveries(conn, now=now)
    if dispatched:
        log.debug("dispatched %d event(s)%s", dispatched, " (more pending)" if full else "")
