"""What every job of a worker process shares, built once per process and closed when it stops.

`worker_resources(...)` is an async context manager, as the app's cleanup_ctx entries are: enter it
before the worker runs, hand the `WorkerResources` to the `Worker`, and leave it after `run()`
returned (the worker has drained its writes by then). Handlers read `context.resources`:

- `settings`: the process's settings;
- `http`: the one client session for calls to the networks (`platform_http()` wraps it with the
  base URL the settings name, and an observer when the calls are recorded);
- `webhook_http`: the session that delivers webhooks, whose connector refuses private addresses at
  connection time unless OUIPOST_WEBHOOK_ALLOW_PRIVATE (ouipost.webhooks.service.client_session);
- `cipher`: decrypts the accounts' tokens;
- `storage`: the media storage (on S3 one aiobotocore client for every upload the networks read);
- `publisher`: the publish jobs' group commits and slot waiters (workers/publish_post.py).

In `serve` the embedded worker shares the app's HTTP session, storage and cipher (`http=`,
`storage=`, `cipher=`): given objects are used and left to their owner to close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from ouipost.config import Settings
from ouipost.core.clock import Clock
from ouipost.core.crypto import Cipher
from ouipost.platforms.http import CallObserver, PlatformHttp
from ouipost.storage import Storage, storage_from_settings
from ouipost.webhooks import service as webhooks
from workers.publish_post import Publisher


@dataclass(frozen=True)
class WorkerResources:
    """A worker process's shared objects (see the module docstring). The publisher is built from
    the others."""

    settings: Settings
    engine: AsyncEngine
    clock: Clock
    http: aiohttp.ClientSession
    webhook_http: aiohttp.ClientSession
    cipher: Cipher
    storage: Storage
    publisher: Publisher = field(init=False)

    def __post_init__(self) -> None:
        publisher = Publisher(self.engine, self.clock, self.settings, self.cipher, self.storage, self.platform_http)
        object.__setattr__(self, "publisher", publisher)

    def platform_http(self, observer: CallObserver | None = None) -> PlatformHttp:
        """The networks' session with the settings' base URL (the sandbox, when it is on); `observer`
        hears of every call (ouipost.publishing.platform_calls.PlatformCallLog.observe)."""
        return PlatformHttp(self.http, base_url=self.settings.effective_platform_base_url, observer=observer)

    async def drain(self) -> None:
        """Wait for the writes in progress (the worker calls it when it stops, before its last
        acknowledgements)."""
        await self.publisher.drain()


@asynccontextmanager
async def worker_resources(
    settings: Settings,
    engine: AsyncEngine,
    clock: Clock,
    *,
    http: aiohttp.ClientSession | None = None,
    storage: Storage | None = None,
    cipher: Cipher | None = None,
) -> AsyncIterator[WorkerResources]:
    """Build the process's resources, and close at exit what was built here (not what was given)."""
    async with AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(webhooks.network_session(
                guarded=settings.effective_platform_base_url is None, allow_private=settings.webhook_allow_private,
            ))
        webhook_http = await stack.enter_async_context(
            webhooks.client_session(allow_private=settings.webhook_allow_private)
        )
        if storage is None:
            storage = storage_from_settings(settings, clock)
            stack.push_async_callback(storage.close)
        yield WorkerResources(
            settings=settings, engine=engine, clock=clock, http=http, webhook_http=webhook_http,
            cipher=cipher or Cipher(settings.secret_key), storage=storage,
        )
