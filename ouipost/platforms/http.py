"""HTTP for adapters: one aiohttp session, host rewriting for the sandbox, transport errors mapped.

With `base_url` set (OUIPOST_PLATFORM_BASE_URL, or sandbox mode), `https://HOST/PATH?Q` becomes
`BASE/HOST/PATH?Q`, so adapters always write the network's real URLs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from ouipost.core.metrics import process_metrics
from ouipost.platforms.base import RetryableError, UnknownOutcomeError


@dataclass
class PlatformResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    def json(self) -> Any:
        """The body as JSON, or {} when it is empty or not JSON (error pages, proxies)."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# Called after every request with (network, method, url, status or None, seconds): feeds platform health.
CallObserver = Callable[[str, str, str, int | None, float], None]


class PlatformHttp:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        observer: CallObserver | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self.observer = observer

    def url(self, real_url: str) -> str:
        """Map a real network URL onto the configured base URL (identity when none is set)."""
        if not self.base_url:
            return real_url
        parts = urlsplit(real_url)
        rewritten = f"{self.base_url}/{parts.netloc}{parts.path or '/'}"
        if parts.query:
            rewritten += f"?{parts.query}"
        return rewritten

    async def request(
        self,
        method: str,
        url: str,
        *,
        network: str,
        idempotent: bool | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
        **kwargs: Any,
    ) -> PlatformResponse:
        """Send one request to `url` (a real network URL) and read the whole answer.

        Transport failures become outcomes: a refused connection (nothing was sent) is
        RetryableError; a dropped connection or timeout after sending is RetryableError for
        idempotent requests (GET, PUT, DELETE by default) and UnknownOutcomeError otherwise.
        """
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        target = self.url(url)
        started = time.monotonic()
        status: int | None = None
        try:
            async with self.session.request(
                method,
                target,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
                allow_redirects=allow_redirects,
                **kwargs,
            ) as resp:
                body = await resp.read()
                status = resp.status
                return PlatformResponse(resp.status, resp.headers, body, str(resp.url))
        except aiohttp.ClientConnectorError as exc:
            raise RetryableError(f"{network}: cannot connect ({exc.os_error})", network=network) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            if idempotent:
                raise RetryableError(f"{network}: connection lost", network=network) from exc
            raise UnknownOutcomeError(
                f"{network}: connection lost after the request was sent", network=network
            ) from exc
        except TimeoutError as exc:
            if idempotent:
                raise RetryableError(f"{network}: timed out", network=network) from exc
            raise UnknownOutcomeError(
                f"{network}: timed out after the request was sent", network=network
            ) from exc
        finally:
            seconds = time.monotonic() - started
            process_metrics().observe_platform_call(network, status, seconds)
            if self.observer is not None:
                self.observer(network, method, url, status, seconds)
