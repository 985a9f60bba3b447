"""Job kinds for tests that run real worker processes, loaded there through
`OUIPOST_EXTRA_JOB_HANDLERS=tests.queue.handlers` (see workers/registry.py).

They leave a trace in files under `payload["dir"]`, one file per process (appends from one process
only, so lines never interleave), for the test to count runs across processes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from workers.worker import JobContext


def _trace(context: JobContext, event: str) -> None:
    path = Path(context.payload["dir"]) / f"{os.getpid()}.trace"
    with path.open("a") as fh:
        fh.write(f"{event} {context.id} {os.getpid()} {context.attempts}\n")
        fh.flush()


async def record(context: JobContext) -> None:
    """Record that this job ran here, after an optional short pause (to spread jobs over processes)."""
    await asyncio.sleep(float(context.payload.get("seconds", 0)))
    _trace(context, "run")


async def sleep_record(context: JobContext) -> None:
    """Record the start, sleep `seconds`, record the finish: a job that can be caught mid-run."""
    _trace(context, "start")
    await asyncio.sleep(float(context.payload["seconds"]))
    _trace(context, "finish")


HANDLERS = {"record": record, "sleep_record": sleep_record}


def read_traces(directory: Path) -> list[tuple[str, int, int, int]]:
    """Every (event, job id, pid, attempt) written under `directory`, in no particular order."""
    events = []
    for path in directory.glob("*.trace"):
        for line in path.read_text().splitlines():
            event, job_id, pid, attempt = line.split()
            events.append((event, int(job_id), int(pid), int(attempt)))
    return events
