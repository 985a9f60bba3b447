"""Per-key rate limits on /api: fixed one-minute windows, counted in Redis or in the process.

Windows are aligned on the epoch minute: a key's window is `[start, start + 60)` with `start` the
request's epoch second rounded down to a multiple of 60, and its count starts afresh with the next
window. Two counters keep them, chosen by OUIPOST_REDIS_URL:

- `RedisLimiter` (OUIPOST_REDIS_URL set): one Lua script per request, INCR of the key's window
  counter plus its EXPIRE on the first hit, atomic on the Redis server and one round trip. Every
  process on every host shares the count. When Redis does not answer (refused, reset, or no answer
  within REDIS_TIMEOUT_SECONDS) the request is answered without enforcement ("fail open"): a warning
  is logged at most once a minute, the `rate_limits` component of /admin/health says so, and the
  next request after RETRY_SECONDS (one at a time) tries Redis again; enforcement resumes as soon as
  it answers. No Redis failure becomes an error answer.
- `LocalLimiter` (no Redis): a dict in the process, exact for the one-process default. With several
  API processes and no Redis each enforces the limit on its own (a key gets up to N times its
  limit); /admin/health and the README say so.

Every answer to a request with a valid key carries X-RateLimit-Limit, -Remaining and -Reset (the
epoch second the window ends), error answers included: the middleware leaves the numbers on the
request and an `on_response_prepare` hook writes them on whatever response goes out. Past the limit:
429 RATE_LIMITED with Retry-After (whole seconds until the window ends). While Redis is down nothing
is counted, so Remaining shows the whole limit. A request within the limit (or not checked) is counted
in the key's usage (ouipost/http/usage.py), which also records when the key was last used.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ouipost.core import errors
from ouipost.core.metrics import process_metrics
from ouipost.http import usage
from ouipost.http.context import API_KEY, CLOCK, SETTINGS
from ouipost.http.web import Handler

log = logging.getLogger("ouipost.http.rate_limits")

WINDOW_SECONDS = 60
REDIS_TIMEOUT_SECONDS = 0.25  # connect and answer; a dead or stalled Redis must not stall requests
RETRY_SECONDS = 1.0  # while Redis is down, how often one request tries it again
WARNING_INTERVAL_SECONDS = 60.0  # "Redis is down" is logged at most this often

# KEYS[1]: the key's window counter; ARGV[1]: its time to live in seconds. Returns the count, this
# request included. The expiry outlives the window so that hosts with slightly different clocks
# still share it; the window's start is in the counter's name, so a late expiry changes no count.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
_COUNTER_TTL = 2 * WINDOW_SECONDS


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset: int  # epoch second at which the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


RATE_LIMIT = web.RequestKey("rate_limit", RateLimitState)


def window_start(now: datetime) -> int:
    return int(now.timestamp()) // WINDOW_SECONDS * WINDOW_SECONDS


def limit_for(tier: str, limits: dict[str, int] | Any) -> int:
    """The tier's per-minute limit; a tier no longer configured gets the smallest configured limit."""
    if tier in limits:
        return int(limits[tier])
    return min(int(v) for v in limits.values())


class Limiter(Protocol):
    async def hit(self, key_id: str, window: int) -> int | None:
        """Count one request of `key_id` in the window starting at epoch second `window`; the
        window's count, this request included, or None when nothing could be counted (not enforced)."""
        ...

    async def health(self) -> dict[str, Any]:
        """The `rate_limits` component of /admin/health."""
        ...

    async def close(self) -> None: ...


class LocalLimiter:
    """Counts in this process: exact here, blind to every other process."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._latest = 0

    async def hit(self, key_id: str, window: int) -> int:
        if window > self._latest:
            # A new window began for every key (windows are aligned): older counts are of no use.
            # The previous window is kept for requests that took their time before reaching here.
            self._latest = window
            self._counts = {k: n for k, n in self._counts.items() if k[1] >= window - WINDOW_SECONDS}
        slot = (key_id, window)
        count = self._counts.get(slot, 0) + 1
        self._counts[slot] = count
        return count

    async def health(self) -> dict[str, Any]:
        return {
            "status": "healthy",
            "backend": "process",
            "shared": False,
            "detail": "OUIPOST_REDIS_URL is not set: each API process counts requests on its own, so with "
                      "N processes a key can make up to N times its limit; set OUIPOST_REDIS_URL to share "
                      "the limits",
        }

    async def close(self) -> None:
        return None


class RedisLimiter:
    """Counts in Redis, shared by every process; fails open while Redis does not answer."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),  # a failed call is reported at once; RETRY_SECONDS paces the next
        )
        self._hit_script = self._client.register_script(_HIT_SCRIPT)
        self._prefix = prefix
        self._where = redact_redis_url(url)
        self._down_since: datetime | None = None
        self._error: str | None = None
        self._retry_at = 0.0  # monotonic; while down, no call to Redis before this
        self._warned_at = -math.inf

    async def hit(self, key_id: str, window: int) -> int | None:
        if self._down_since is not None:
            if time.monotonic() < self._retry_at:
                return None
            self._retry_at = time.monotonic() + RETRY_SECONDS  # this request probes; the others pass
        try:
            count = await self._hit_script(keys=[f"{self._prefix}rl:{key_id}:{window}"], args=[_COUNTER_TTL])
        except Exception as exc:  # whatever Redis or the socket raised: serve the request unchecked
            self._mark_down(exc)
            await self._drop_connections()
            return None
        self._mark_up()
        return int(count)

    async def _drop_connections(self) -> None:
        """Close every pooled connection. Kept, each connection opened before Redis went away would
        fail once more after it is back (marking it down for RETRY_SECONDS again): under load the
        limits would come back only after about as many seconds as the pool holds connections."""
        try:
            await self._client.connection_pool.disconnect()
        except Exception as exc:  # closing dead sockets may raise; they are dropped all the same
            log.debug("closing Redis connections: %s", exc)

    async def health(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            await self._client.ping()
        except Exception as exc:  # reported, not raised: health answers whatever fails
            self._mark_down(exc)
        else:
            self._mark_up()
        component: dict[str, Any] = {"backend": "redis", "shared": True, "redis": self._where}
        if self._down_since is not None:
            return {
                "status": "degraded", **component, "redis_status": "down", "error": self._error,
                "down_since": self._down_since.isoformat().replace("+00:00", "Z"),
                "detail": "Redis does not answer: requests are served without rate limits until it does",
            }
        return {"status": "healthy", **component, "redis_status": "up",
                "latency_ms": round((time.monotonic() - started) * 1000, 1)}

    async def close(self) -> None:
        await self._client.aclose()

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = datetime.now(UTC)
        self._error = type(exc).__name__
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if time.monotonic() - self._warned_at >= WARNING_INTERVAL_SECONDS:
            self._warned_at = time.monotonic()
            log.warning("Redis at %s does not answer (%s): rate limits are not enforced until it does",
                        self._where, self._error)

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.warning("Redis at %s answers again: rate limits are enforced again", self._where)
            self._down_since = None
            self._error = None


def redact_redis_url(url: str) -> str:
    """The URL without its credentials, for logs and health."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


LIMITER = web.AppKey("rate_limiter", Limiter)


async def limiter_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the app's limiter, Redis when OUIPOST_REDIS_URL is set, else the process's own."""
    settings = app[SETTINGS]
    limiter: Limiter = (
        RedisLimiter(settings.redis_url, settings.redis_key_prefix) if settings.redis_url else LocalLimiter()
    )
    app[LIMITER] = limiter
    yield
    await limiter.close()


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Place after api_key_middleware: acts only on requests it authenticated."""
    key = request.get(API_KEY)
    if key is None:
        return await handler(request)
    app = request.app
    limit = limit_for(key.tier, app[SETTINGS].rate_limits)
    now = app[CLOCK].now()
    start = window_start(now)
    reset = start + WINDOW_SECONDS
    count = await app[LIMITER].hit(key.id, start)
    if count is None:  # not counted (Redis down): served, and the limit shown whole
        request[RATE_LIMIT] = RateLimitState(limit, limit, reset)
    else:
        request[RATE_LIMIT] = RateLimitState(limit, max(0, limit - count), reset)
        if count > limit:
            process_metrics().rate_limit_rejections.labels(key.tier).inc()
            retry_after = max(1, math.ceil(reset - now.timestamp()))
            raise errors.RateLimited(
                f"Rate limit of {limit} requests per minute exceeded for this API key",
                details={"limit": limit, "retry_after": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
    app[usage.USAGE].count_request(key, now)
    return await handler(request)


async def add_rate_limit_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """on_response_prepare hook: the numbers go on every answer, errors included."""
    state = request.get(RATE_LIMIT)
    if state is not None:
        response.headers.update(state.headers())
