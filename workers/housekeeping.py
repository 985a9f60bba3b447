"""`housekeeping`: a periodic job that deletes rows past their retention (ouipost/housekeeping/service.py).

Every 10 minutes (workers/periodic.py, key `periodic:housekeeping`: one live job across every
process). The chain starts once some row is an hour past its reference time, and then keeps going.
Each run first hands its key to the next run, then prunes every table in small batches, bounded per
run; a table with more to delete than one run allows is finished by the following runs.
"""

from __future__ import annotations

import logging

from ouipost.housekeeping import service as housekeeping
from workers.periodic import HOUSEKEEPING_KIND, schedule_next_run
from workers.worker import JobContext

KIND = HOUSEKEEPING_KIND
log = logging.getLogger(__name__)


async def handle(context: JobContext) -> None:
    """Prune every table by the settings' retention (OUIPOST_RETENTION). Database errors propagate
    and the job is retried, its successor already scheduled."""
    engine, clock = context.engine, context.clock
    retention = context.resources.settings.retention
    await schedule_next_run(engine, context.job, clock.now())
    reports = await housekeeping.run_housekeeping(engine, clock.now(), retention)
    longest = max((r.longest_transaction_seconds for r in reports), default=0.0)
    log.debug("housekeeping: %d row(s) in %d batch(es), longest transaction %.3fs",
              sum(r.deleted for r in reports), sum(r.batches for r in reports), longest)
