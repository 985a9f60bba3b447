"""Shared Graph API plumbing for the Meta family (Facebook Pages, Instagram, Threads).

All three speak the same dialect: the `{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}` envelope, the same code families (shared/platforms.md, "Errors" of sections 1, 2 and 8
and the consolidated retry classification), the `X-App-Usage` / `X-Business-Use-Case-Usage` rate
headers, and (Instagram, Threads) the container -> poll -> publish flow. This module turns those into
the outcomes of `ouipost.platforms.base` so each adapter only describes its own endpoints.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from ouipost.platforms.base import (
    PermanentError,
    PlatformAdapter,
    PlatformError,
    RetryableError,
    TokenExpiredError,
    UnknownOutcomeError,
)
from ouipost.platforms.http import PlatformResponse

log = logging.getLogger(__name__)

# Code families of the Graph "Handling Errors" page and the consolidated retry table.
TRANSIENT_CODES = frozenset({1, 2})
RATE_LIMIT_CODES = frozenset({4, 9, 17, 32, 341, 613, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80014})
TOKEN_CODES = frozenset({102, 190})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
# Subcodes that say "try again" although their code is a generic one (Postiz' IG/FB mapping).
TRANSIENT_SUBCODES = frozenset({1390008, 2207003, 2207032, 2207052, 2207082})
# Subcodes that mean the grant is gone or lacks a Page role: the user must reconnect.
RECONNECT_SUBCODES = frozenset({1404078})
# Daily publishing quotas (IG 2207042, Threads quota): deferred to after the rolling 24 h window.
QUOTA_SUBCODES = frozenset({2207042})
QUOTA_RETRY_AFTER = 86400.0
# Mixpost's rule for app-level throttling, which carries no regain estimate: wait an hour.
APP_LEVEL_RETRY_AFTER = 3600.0

_SUBCODE_IN_STATUS = re.compile(r"\((\d{4,})\)")


def graph_error_fields(resp: PlatformResponse) -> dict[str, Any]:
    """The `error` object of a Graph answer, or {} when the body is not a Graph envelope.

    Also reads the older Instagram envelope `{"error_type", "code", "error_message"}` that
    api.instagram.com still uses for its token endpoint.
    """
    body = resp.json()
    if not isinstance(body, dict):
        return {}
    error = body.get("error")
    if isinstance(error, dict):
        return error
    if "error_message" in body or "error_type" in body:
        return {"message": body.get("error_message", ""), "type": body.get("error_type"),
                "code": body.get("code")}
    if isinstance(error, str):  # some OAuth endpoints answer {"error": "...", "error_description": ...}
        return {"message": body.get("error_description") or error, "type": error}
    return {}


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """Seconds until the quota is back, from Meta's usage headers (None when they do not say).

    `X-Business-Use-Case-Usage` (and `X-Page-Usage` / `X-Ad-Account-Usage`) carry
    `estimated_time_to_regain_access` in minutes; the largest one wins. `X-App-Usage` has no estimate,
    so an exhausted app budget (any value >= 100 %) means one hour. A plain `Retry-After` (seconds),
    which proxies in front of Graph may add, is honoured too.
    """
    minutes: list[float] = []
    for name in ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-Ad-Account-Usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        entries: list[Any] = []
        if isinstance(data, dict) and "estimated_time_to_regain_access" in data:
            entries = [data]
        elif isinstance(data, dict):
            for value in data.values():
                entries.extend(value if isinstance(value, list) else [value])
        for entry in entries:
            if isinstance(entry, dict):
                regain = entry.get("estimated_time_to_regain_access")
                if isinstance(regain, int | float) and regain > 0:
                    minutes.append(float(regain))
    if minutes:
        return max(minutes) * 60.0
    raw_app = headers.get("X-App-Usage")
    if raw_app:
        try:
            usage = json.loads(raw_app)
        except ValueError:
            usage = {}
        if isinstance(usage, dict) and any(
            isinstance(v, int | float) and v >= 100 for v in usage.values()
        ):
            return APP_LEVEL_RETRY_AFTER
    retry = headers.get("Retry-After")
    if retry:
        try:
            return max(0.0, float(retry))
        except ValueError:
            return None
    return None


def classify_graph_error(resp: PlatformResponse, network: str, *, action: str = "") -> PlatformError:
    """Turn a failed Graph answer into the outcome the worker acts on.

    Codes 1/2 and 5xx are transient; 4/17/32/613/8000x/341 are rate limits (retry_after from the usage
    headers); 190/102 mean the token is gone; 10 and 200-299 are missing permissions (reconnect);
    everything else (100 invalid parameter, 368 policy block, 506 duplicate, media errors) is permanent.
    """
    error = graph_error_fields(resp)
    code = _as_int(error.get("code"))
    subcode = _as_int(error.get("error_subcode"))
    message = str(error.get("error_user_msg") or error.get("message") or resp.text[:300] or "no body")
    prefix = f"{network}: {action + ': ' if action else ''}"
    text = f"{prefix}{message}"
    code_str = str(code) if code is not None else None
    if subcode is not None and code is not None:
        code_str = f"{code}/{subcode}"
    kw: dict[str, Any] = {"network": network, "code": code_str, "status": resp.status}

    if subcode in QUOTA_SUBCODES:
        return RetryableError(text, retry_after=QUOTA_RETRY_AFTER, **kw)
    if code in RATE_LIMIT_CODES or resp.status == 429:
        return RetryableError(text, retry_after=retry_after_from_headers(resp.headers), **kw)
    lowered = message.lower()
    if code in TOKEN_CODES or "error validating access token" in lowered or "revoked_access_token" in lowered:
        return TokenExpiredError(text, **kw)
    if code in PERMISSION_CODES or subcode in RECONNECT_SUBCODES:
        return PermanentError(text, reconnect=True, **kw)
    if code in TRANSIENT_CODES or subcode in TRANSIENT_SUBCODES or error.get("is_transient") is True:
        return RetryableError(text, **kw)
    if resp.status >= 500:
        return RetryableError(text, **kw)
    if resp.status == 401:
        return TokenExpiredError(text, **kw)
    return PermanentError(text, **kw)


def expires_at(expires_in: Any, now: datetime) -> datetime | None:
    """An aware UTC expiry from a token answer's `expires_in` (None when absent: no expiry)."""
    seconds = _as_int(expires_in)
    if not seconds:
        return None
    return now + timedelta(seconds=seconds)


def split_scopes(value: Any) -> list[str]:
    """Scopes given as a comma/space separated string or as a list."""
    if isinstance(value, list):
        return [str(v) for v in value if v]
    if isinstance(value, str):
        return [s for s in re.split(r"[,\s]+", value) if s]
    return []


class GraphAdapter(PlatformAdapter):
    """Base of the three Meta adapters: Graph calls with error mapping and container polling."""

    #: Seconds between container status reads, and how long to wait before giving up (class attributes
    #: so tests can shrink them). Postiz polls IG every 30 s for 8 min and Threads every 2.2 s.
    container_poll_interval: ClassVar[float] = 5.0
    container_poll_timeout: ClassVar[float] = 480.0
    media_poll_attributes: ClassVar[tuple[str, ...]] = ("container_poll_interval",)
    #: Container status field and the fields asked for when polling.
    container_status_field: ClassVar[str] = "status_code"
    container_fields: ClassVar[str] = "status_code,status"
    graph_base: ClassVar[str] = ""
    #: The edge containers are created on (`/{user}/media` for Instagram, `/{user}/threads` for Threads).
    container_edge: ClassVar[str] = ""

    async def _call(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        action: str = "",
    ) -> dict[str, Any]:
        """One Graph request; the parsed JSON on success, else the mapped PlatformError is raised.

        The token travels in the Authorization header so it never lands in logged URLs.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else None
        clean_params = {k: _form_value(v) for k, v in (params or {}).items() if v is not None}
        clean_data = {k: _form_value(v) for k, v in (data or {}).items() if v is not None}
        resp = await self.http.request(
            method, url, network=self.network, idempotent=idempotent, headers=headers,
            params=clean_params or None, data=clean_data if data is not None else None,
        )
        body = resp.json()
        if not resp.ok or (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            raise classify_graph_error(resp, self.network, action=action)
        if not isinstance(body, dict):
            raise PermanentError(
                f"{self.network}: {action}: unexpected answer {resp.text[:200]!r}",
                network=self.network, status=resp.status,
            )
        return body

    # Containers (Instagram, Threads) -------------------------------------------------------------

    async def _container(self, token: str, owner: str, params: dict[str, Any], what: str) -> str:
        """Create one container on `owner` and wait until it is FINISHED. Creation is treated as
        idempotent: a container stays invisible until published, so a duplicate is harmless."""
        body = await self._call("POST", f"{self.graph_base}/{owner}/{self.container_edge}", token=token, data=params,
                                idempotent=True, action=f"create {what}")
        container_id = str(body["id"])
        await self._wait_for_container(token, container_id, what=what)
        return container_id

    async def _wait_for_container(self, token: str, container_id: str, *, what: str) -> str:
        """Poll a container until it is FINISHED (returns the final status).

        ERROR -> PermanentError (the media was refused; retrying the same media fails the same way).
        EXPIRED or still IN_PROGRESS after `container_poll_timeout` -> RetryableError: nothing was
        published, so the whole flow can safely start over. PUBLISHED is returned as is.
        """
        deadline = self.clock.monotonic() + self.container_poll_timeout
        while True:
            body = await self._call(
                "GET", f"{self.graph_base}/{container_id}", token=token,
                params={"fields": self.container_fields}, action=f"status of {what}",
            )
            status = str(body.get(self.container_status_field) or "").upper()
            if status in ("FINISHED", "PUBLISHED"):
                return status
            if status == "ERROR":
                detail = body.get("error_message") or body.get("status") or "processing failed"
                match = _SUBCODE_IN_STATUS.search(str(detail))
                raise PermanentError(
                    f"{self.network}: {what} was refused: {detail}", network=self.network,
                    code=match.group(1) if match else str(detail),
                )
            if status == "EXPIRED":
                raise RetryableError(f"{self.network}: {what} expired before publishing", network=self.network)
            if self.clock.monotonic() >= deadline:
                raise RetryableError(
                    f"{self.network}: {what} was not ready after {self.container_poll_timeout:.0f} s "
                    "(nothing was published)", network=self.network,
                )
            await self.clock.sleep(self.container_poll_interval)

    async def _publish_container(
        self, token: str, publish_url: str, container_id: str, *, action: str
    ) -> str:
        """Publish a FINISHED container once; returns the new media id.

        A container publishes at most once, so when the answer is lost we look at the container:
        still FINISHED means the publish did not happen and one more attempt is safe; PUBLISHED means
        it happened and we cannot learn the id (UnknownOutcomeError). A 5xx is checked the same way,
        so a transient error is only reported as retryable when nothing was published.
        """
        try:
            body = await self._call("POST", publish_url, token=token,
                                    data={"creation_id": container_id}, action=action)
        except (UnknownOutcomeError, RetryableError) as first:
            transient = (first.status or 0) >= 500 or (first.code or "").split("/")[0] in ("1", "2")
            if isinstance(first, RetryableError) and not transient:
                raise  # rate limit or quota: the network refused before publishing
            status = await self._container_status_after_failure(token, container_id)
            if status == "PUBLISHED":
                raise UnknownOutcomeError(
                    f"{self.network}: the post was published but its id was lost ({first.message})",
                    network=self.network,
                ) from first
            if status != "FINISHED" or isinstance(first, RetryableError):
                raise
            try:
                body = await self._call("POST", publish_url, token=token,
                                        data={"creation_id": container_id}, action=action)
            except PlatformError as second:
                raise UnknownOutcomeError(
                    f"{self.network}: publish outcome unknown after a lost answer ({second.message})",
                    network=self.network,
                ) from second
        media_id = str(body.get("id") or "")
        if not media_id:
            raise UnknownOutcomeError(f"{self.network}: publish answered without an id", network=self.network)
        return media_id

    async def _container_status_after_failure(self, token: str, container_id: str) -> str | None:
        try:
            body = await self._call(
                "GET", f"{self.graph_base}/{container_id}", token=token,
                params={"fields": self.container_fields}, action="container status",
            )
        except PlatformError:
            return None
        return str(body.get(self.container_status_field) or "").upper() or None


def _form_value(value: Any) -> str:
    """Graph takes booleans as true/false and structured values as JSON strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def metric_values(body: Mapping[str, Any]) -> dict[str, Any]:
    """`{"data": [{"name", "values": [{"value"}]} | {"name", "total_value": {"value"}}]}` -> name: value."""
    out: dict[str, Any] = {}
    for item in body.get("data") or []:
        if not isinstance(item, dict) or "name" not in item:
            continue
        value: Any = None
        if isinstance(item.get("total_value"), dict):
            value = item["total_value"].get("value")
        values = item.get("values")
        if value is None and isinstance(values, list) and values:
            value = values[-1].get("value") if isinstance(values[-1], dict) else None
        if value is not None:
            out[str(item["name"])] = value
    return out


def numeric(value: Any) -> float:
    """A metric value as a number; object values (by type, paid/organic) are summed."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return sum(numeric(v) for v in value.values())
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
