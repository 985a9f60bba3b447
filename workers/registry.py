"""Which handler runs which job kind.

Adding a job kind: write `workers/<kind>.py` with `KIND = "<kind>"` and
`async def handle(context: JobContext) -> None` (raise `RetryJob(message, retry_after=None)` to try
again later, `JobFailed(message)` to give up; any other exception is retried with backoff), then
add the module to `MODULES` below.

OUIPOST_EXTRA_JOB_HANDLERS (comma-separated module names) adds handlers from other modules, each
defining `HANDLERS: dict[str, Handler]` or `KIND` + `handle`. It exists for tests and benchmarks
(e.g. `OUIPOST_EXTRA_JOB_HANDLERS=tests.queue.handlers`), so that they can run real worker
processes with handlers of their own; production leaves it unset.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType

from workers import (
    deliver_webhook,
    dispatch_events,
    housekeeping,
    noop,
    publish_followups,
    publish_post,
    refresh_tokens,
    sync_accounts,
    sync_analytics,
)
from workers.worker import Handler

EXTRA_HANDLERS_VARIABLE = "OUIPOST_EXTRA_JOB_HANDLERS"

MODULES: tuple[ModuleType, ...] = (
    noop,
    publish_post,
    publish_followups,
    refresh_tokens,
    dispatch_events,
    deliver_webhook,
    sync_analytics,
    sync_accounts,
    housekeeping,
)

HANDLERS: dict[str, Handler] = {module.KIND: module.handle for module in MODULES}


def load_handlers(env: Mapping[str, str] | None = None) -> dict[str, Handler]:
    """HANDLERS plus those of the modules named in OUIPOST_EXTRA_JOB_HANDLERS.

    Raises ImportError naming the module when one cannot be imported, and ValueError when it
    defines no handlers.
    """
    env = os.environ if env is None else env
    handlers = dict(HANDLERS)
    for name in filter(None, (part.strip() for part in env.get(EXTRA_HANDLERS_VARIABLE, "").split(","))):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{EXTRA_HANDLERS_VARIABLE}: cannot import {name!r} ({exc})") from exc
        if hasattr(module, "HANDLERS"):
            handlers.update(module.HANDLERS)
        elif hasattr(module, "KIND") and hasattr(module, "handle"):
            handlers[module.KIND] = module.handle
        else:
            raise ValueError(f"{EXTRA_HANDLERS_VARIABLE}: {name!r} defines neither HANDLERS nor KIND and handle")
    return handlers
