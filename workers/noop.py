"""`noop`: a job that does nothing. Tests and the throughput benchmark use it to measure the queue."""

from __future__ import annotations

from workers.worker import JobContext

KIND = "noop"


async def handle(context: JobContext) -> None:
    """Succeeds at once."""
