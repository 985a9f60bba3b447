"""`deliver_webhook`: make one attempt of one webhook delivery, then queue the next attempt if any.

Payload: {"delivery_id": "dlv_...", "attempt": n} where n counts from 1. One job per attempt, each
enqueued with `run_at` = the delivery's `next_attempt_at` and the unique key
`deliver_webhook:<delivery>:<n>` (ouipost/webhooks/dispatch.py::enqueue_attempt). Chosen over one
job retried with RetryJob because a job's attempts also count what is not a delivery attempt (a
database error, a lease lost when a worker died, a run before the delivery was due): tying the two
counters together would let a job run out of tries while the delivery still has attempts left, or
the other way round. Here the delivery row alone counts attempts (ouipost.webhooks.service, fenced on the
count) and the job's own retries (max DELIVER_MAX_ATTEMPTS, with backoff) only cover trouble
running the job. A job whose attempt was already made (its own retry after the attempt was
recorded, or a second job for the same attempt from the sweep) sends nothing and only makes sure
the next attempt is queued.

No attempt is made once the endpoint is disabled (the delivery is failed without sending, see
`deliver_due_attempt`) or deleted (its deliveries are deleted with it, the job finds nothing).
Every attempt goes through the SSRF-guarded session of `ouipost.webhooks.service.client_session` (one per
worker process: `context.resources.webhook_http`), never the worker's general HTTP session, so
OUIPOST_WEBHOOK_ALLOW_PRIVATE is honoured at connection time.

Sending is at least once: a worker stopped during an attempt (after the grace period) hands the job
back and the attempt is made again with the same `webhook-id`, which receivers use to deduplicate.
"""

from __future__ import annotations

import logging

from ouipost.db.rows import DeliveryRow
from ouipost.jobs.queue import JobFailed, RetryJob
from ouipost.webhooks import dispatch as webhook_dispatch
from ouipost.webhooks import service as webhooks
from workers.worker import JobContext

KIND = webhook_dispatch.DELIVER_KIND
log = logging.getLogger(__name__)


async def handle(context: JobContext) -> None:
    """Make the attempt named in the payload if it is still to be made and due.

    Raises JobFailed when the payload is malformed (retrying cannot help; a due pending delivery is
    picked up again by the dispatch safety run), RetryJob when the
    delivery is not due yet (a worker whose clock is behind the one that scheduled it). Database
    errors propagate and the queue retries the job; network errors are attempts, recorded by
    ouipost.webhooks.service, never raised.
    """
    try:
        delivery_id = str(context.payload["delivery_id"])
        attempt = int(context.payload["attempt"])
    except (KeyError, TypeError, ValueError) as exc:
        raise JobFailed(f"malformed deliver_webhook payload: {context.payload!r}") from exc
    settings, session = context.resources.settings, context.resources.webhook_http
    engine, clock = context.engine, context.clock

    async with engine.connect() as conn:
        delivery = await webhooks.get_delivery(conn, delivery_id)
    if delivery is None or delivery["status"] != "pending":
        return  # delivered, failed for good, or gone with its endpoint
    if delivery["attempts"] >= attempt:
        await _queue_next(context, delivery)  # this attempt was made; a crash may have lost the next job
        return
    if delivery["attempts"] + 1 < attempt:
        log.warning("deliver_webhook job %s for attempt %d of %s, which has made %d: ignored",
                    context.id, attempt, delivery_id, delivery["attempts"])
        return
    result = await webhooks.deliver_due_attempt(
        engine, delivery_id, secret_key=settings.secret_key, allow_private=settings.webhook_allow_private,
        clock=clock, session=session,
    )
    if result is None or result["status"] != "pending":
        return
    if result["attempts"] >= attempt:
        await _queue_next(context, result)
        return
    # Pending and not attempted: not due yet by this worker's clock.
    due = result["next_attempt_at"]
    wait = max(0.0, (due - clock.now()).total_seconds()) if due is not None else 0.0
    raise RetryJob(f"delivery {delivery_id} is not due yet", retry_after=wait)


async def _queue_next(context: JobContext, delivery: DeliveryRow) -> None:
    """Enqueue the job of the delivery's next attempt at its `next_attempt_at` (deduplicated)."""
    run_at = delivery["next_attempt_at"]
    if run_at is None:
        return
    now = context.clock.now()
    async with context.engine.begin() as conn:
        await webhook_dispatch.enqueue_attempt(
            conn, delivery["id"], attempt=int(delivery["attempts"]) + 1, run_at=run_at, now=now
        )
