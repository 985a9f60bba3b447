"""Webhooks: endpoints, signed deliveries (Standard Webhooks), retries and disabling, SSRF guard.

- Signing: `webhook-id` (the delivery id, stable across retries), `webhook-timestamp` (epoch
  seconds), `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the endpoint's
  `whsec_<base64>` secret, made by the `standardwebhooks` package so receivers can verify with it.
- Secrets are stored encrypted (ouipost.core.crypto, bound to the webhook id) and shown once.
- Targets: https only (http too when OUIPOST_WEBHOOK_ALLOW_PRIVATE is on). Unless that setting is
  on, private, loopback, link-local, reserved, multicast and other non-global addresses are refused
  twice: when the URL is saved (its host is resolved) and when a delivery connects (the connector's
  resolution is filtered, IP literals included), so DNS rebinding cannot slip through. Redirects are
  not followed: a 3xx answer is a failure.
- Attempts: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (`next_attempt_at`). A 2xx
  answer succeeds; anything else, a timeout (15 s) or a connection error fails. 410 Gone disables
  the endpoint at once; an endpoint failing every attempt for 5 days is disabled too. A disabled
  endpoint shows `is_active: false` with `disabled_reason`.

Boundary with the jobs queue: `create_delivery` records a message for an event,
`deliver` sends one attempt now, and `deliver_due_attempt(engine, delivery_id, ...)` is what a
`deliver_webhook` job calls when `next_attempt_at` comes; `due_delivery_ids` lists the ones due.
Outbox events become deliveries in ouipost/webhooks/dispatch.py, attempts are made by
workers/deliver_webhook.py; the test ping (`POST /admin/webhooks/{id}/test`) sends at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import ipaddress
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import sqlalchemy as sa
from aiohttp.abc import ResolveResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from standardwebhooks import Webhook

from ouipost import __version__
from ouipost.core import errors
from ouipost.core.clock import Clock, isoformat
from ouipost.core.crypto import Cipher, DecryptionError
from ouipost.core.ids import new_id
from ouipost.core.metrics import process_metrics
from ouipost.db.admin_tables import webhook_deliveries, webhooks
from ouipost.db.pages import fetch_page
from ouipost.db.rows import DeliveryRow, WebhookRow, record, records
from ouipost.identity.audit import Actor, record_audit
from ouipost.webhooks.event_types import TYPES as EVENT_TYPES

#: What a webhook may subscribe to: every domain event, and the test ping of POST /admin/webhooks/{id}/test.
EVENTS: tuple[str, ...] = (*EVENT_TYPES, "webhook.test")
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = 1 + len(RETRY_SCHEDULE)
DISABLE_AFTER = timedelta(days=5)
TIMEOUT_SECONDS = 15
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
MAX_URL_LENGTH = 2048
STATUSES = ("pending", "succeeded", "failed")


class UnsafeTargetError(OSError):
    """The target resolves to an address deliveries may not reach (private, loopback, ...)."""


class InvalidWebhook(ValueError):
    """A URL or secret a webhook cannot have; the message says why (shown to the client)."""


# ------------------------------------------------------------------------------------------------
# Secrets and signatures


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def check_secret(secret: str) -> None:
    """Raise InvalidWebhook unless `secret` is `whsec_` + base64 of 24 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidWebhook("The secret must look like whsec_<base64>")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidWebhook("The secret must look like whsec_<base64>: the part after whsec_ is not base64") from exc
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise InvalidWebhook(f"The secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes of key material")


def sign_headers(secret: str, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
    }


@functools.lru_cache(maxsize=4)
def _cipher(secret_key: str) -> Cipher:
    """The cipher of the webhook secrets, built once per secret key (deriving its key is not free,
    and every delivery decrypts a secret)."""
    return Cipher(secret_key)


# ------------------------------------------------------------------------------------------------
# Target safety


def is_allowed_address(address: str) -> bool:
    """True for globally routable unicast addresses; False for private, loopback, link-local,
    reserved, shared (CGNAT), multicast, unspecified and IPv4-mapped/embedded forms of those."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_USE_NAT64:  # an operator's own translator, IPv4 placed as they chose: never public
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None) or _translated_ipv4(ip)
        if embedded is not None:
            return is_allowed_address(str(embedded))
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified


# IPv6 prefixes whose last 32 bits are an IPv4 address a translator or the stack connects to: the
# NAT64 well-known prefix (RFC 6052), IPv4-translated addresses (RFC 2765) and the deprecated
# IPv4-compatible form (::a.b.c.d). Python calls them global; they reach whatever IPv4 host they embed.
_IPV4_TRANSLATING = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
_LOCAL_USE_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215


def _translated_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if not any(ip in network for network in _IPV4_TRANSLATING):
        return None
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects only to allowed addresses (every resolved address is checked,
    and IP literals too): the check applies to what is actually connected to."""

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._allow_private = allow_private

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        if self._allow_private:
            return results
        allowed = [r for r in results if is_allowed_address(r["host"])]
        if not allowed:
            raise UnsafeTargetError(f"{host} resolves only to private or reserved addresses")
        return allowed


def client_session(*, allow_private: bool) -> aiohttp.ClientSession:
    """A session for deliveries: guarded connector, 15 s total timeout, no cookies, no proxies."""
    return aiohttp.ClientSession(
        connector=GuardedConnector(allow_private=allow_private, limit=100),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": f"OuiPost-Webhooks/{__version__}"},
        trust_env=False,
    )


def network_session(*, guarded: bool, allow_private: bool) -> aiohttp.ClientSession:
    """The session for the networks' APIs. `guarded` (calls go to the real networks, not to a sandbox
    or an OUIPOST_PLATFORM_BASE_URL): it connects only where deliveries may, as resolved at
    connection time. The nine big networks are public anyway; a Mastodon server is a host a user
    names, checked when the account connects, and its name could later resolve to this machine or
    its network (DNS rebinding): the guard keeps every later call off private addresses too."""
    connector = GuardedConnector(allow_private=allow_private) if guarded else None
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": f"OuiPost/{__version__}"})


async def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, checked for saving. Raises InvalidWebhook when the scheme is not allowed, it carries
    credentials, has no host, or (unless allow_private) its host is or resolves to a non-public
    address or does not resolve at all."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook(f"The URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhook(f"Not a valid URL: {exc}") from exc
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise InvalidWebhook("The URL must use https" + (" or http" if allow_private else ""))
    if not parts.hostname:
        raise InvalidWebhook("The URL has no host")
    if parts.username or parts.password:
        raise InvalidWebhook("The URL must not carry credentials; authenticate with the signature instead")
    if allow_private:
        return url
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise InvalidWebhook(f"The host {host} does not resolve") from exc
        addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(is_allowed_address(a) for a in addresses):
        raise InvalidWebhook(f"The host {host} is (or resolves to) a private, loopback or reserved address")
    return url


async def checked_url(url: str, *, allow_private: bool) -> str:
    """`check_url` for a form or a body: 422 VALIDATION_ERROR on the `url` field when refused."""
    try:
        return await check_url(url, allow_private=allow_private)
    except InvalidWebhook as exc:
        raise errors.ValidationError(str(exc), details={"url": [str(exc)]}) from exc


# ------------------------------------------------------------------------------------------------
# Endpoints


async def create_webhook(
    conn: AsyncConnection,
    *,
    url: str,
    events: Sequence[str],
    secret: str | None,
    description: str | None,
    created_by: str | None,
    secret_key: str,
    now: datetime,
) -> tuple[WebhookRow, str]:
    """Insert an endpoint; returns its row and its secret (generated when not given). The caller
    checked the URL (check_url) and the secret (check_secret)."""
    webhook_id = new_id("wh")
    secret = secret or generate_secret()
    row: WebhookRow = {
        "id": webhook_id,
        "url": url,
        "description": description,
        "events": list(events),
        "secret_encrypted": _cipher(secret_key).encrypt(secret, context=webhook_id),
        "is_active": True,
        "disabled_reason": None,
        "failing_since": None,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
        "last_triggered_at": None,
    }
    await conn.execute(webhooks.insert().values(**row))
    return row, secret


async def get_webhook(conn: AsyncConnection, webhook_id: str) -> WebhookRow | None:
    row = (await conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id))).mappings().first()
    return record(WebhookRow, row) if row else None


async def list_webhooks(conn: AsyncConnection, *, page: int, limit: int) -> tuple[list[WebhookRow], int]:
    rows, total = await fetch_page(conn, webhooks, order_by=[webhooks.c.id], page=page, limit=limit)
    return records(WebhookRow, rows), total


async def update_webhook(
    conn: AsyncConnection, webhook: WebhookRow, changes: Mapping[str, Any], *, secret_key: str, now: datetime
) -> tuple[WebhookRow, list[str]]:
    """Apply url/events/description/secret/is_active changes (checked by the caller); returns the row
    and the changed field names. Re-activating clears disabled_reason and the failure streak."""
    values: dict[str, Any] = {}
    for field in ("url", "description"):
        if field in changes and changes[field] != webhook[field]:
            values[field] = changes[field]
    if "events" in changes and list(changes["events"]) != list(webhook["events"]):
        values["events"] = list(changes["events"])
    if changes.get("secret"):
        values["secret_encrypted"] = _cipher(secret_key).encrypt(changes["secret"], context=webhook["id"])
    if "is_active" in changes and changes["is_active"] != webhook["is_active"]:
        values["is_active"] = changes["is_active"]
        if changes["is_active"]:
            values["disabled_reason"] = None
            values["failing_since"] = None
        else:
            values["disabled_reason"] = "Disabled by an admin"
    shown = [k for k in values if k not in ("disabled_reason", "failing_since")]
    changed = ["secret" if k == "secret_encrypted" else k for k in shown]
    if values:
        values["updated_at"] = now
        await conn.execute(webhooks.update().where(webhooks.c.id == webhook["id"]).values(**values))
    return record(WebhookRow, {**webhook, **values}), changed


async def delete_webhook(conn: AsyncConnection, webhook_id: str) -> bool:
    """Delete the endpoint and (cascade) its deliveries."""
    return (await conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id))).rowcount > 0


async def stats_by_webhook(conn: AsyncConnection, webhook_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    stats = {w: {"total_deliveries": 0, "successful_deliveries": 0, "failed_deliveries": 0} for w in webhook_ids}
    if not webhook_ids:
        return stats
    rows = await conn.execute(
        sa.select(webhook_deliveries.c.webhook_id, webhook_deliveries.c.status, sa.func.count())
        .where(webhook_deliveries.c.webhook_id.in_(webhook_ids))
        .group_by(webhook_deliveries.c.webhook_id, webhook_deliveries.c.status)
    )
    for webhook_id, status, count in rows:
        entry = stats[webhook_id]
        entry["total_deliveries"] += int(count)
        if status == "succeeded":
            entry["successful_deliveries"] += int(count)
        elif status == "failed":
            entry["failed_deliveries"] += int(count)
    return stats


def webhook_view(row: WebhookRow, stats: Mapping[str, int], secret: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row["id"],
        "url": row["url"],
        "description": row["description"],
        "events": list(row["events"]),
        "is_active": bool(row["is_active"]),
        "disabled_reason": row["disabled_reason"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
        "last_triggered_at": isoformat(row["last_triggered_at"]),
        "stats": dict(stats),
    }
    if secret is not None:
        view["secret"] = secret
    return view


# ------------------------------------------------------------------------------------------------
# Deliveries


def build_payload(event: str, data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {"type": event, "timestamp": isoformat(now), "data": dict(data)}


async def create_delivery(
    conn: AsyncConnection,
    webhook_id: str,
    event: str,
    data: Mapping[str, Any],
    *,
    now: datetime,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> DeliveryRow:
    """Record a message for one endpoint, due at once. With `event_id` (the outbox event), a second
    call for the same event and endpoint raises IntegrityError instead of delivering twice.
    `occurred_at` (default `now`) is the payload's timestamp: when the event happened, which for
    outbox events dispatched by the queue is earlier than the delivery's creation."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    row: DeliveryRow = {
        "id": new_id("dlv"),
        "webhook_id": webhook_id,
        "event_id": event_id,
        "event": event,
        "payload": build_payload(event, data, occurred_at or now),
        "status": "pending",
        "attempts": 0,
        "response_status": None,
        "latency_ms": None,
        "error": None,
        "next_attempt_at": now,
        "last_attempt_at": None,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(webhook_deliveries.insert().values(**row))
    return row


async def get_delivery(conn: AsyncConnection, delivery_id: str) -> DeliveryRow | None:
    row = (
        await conn.execute(sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id))
    ).mappings().first()
    return record(DeliveryRow, row) if row else None


async def list_deliveries(
    conn: AsyncConnection, webhook_id: str, *, page: int, limit: int, status: str | None = None
) -> tuple[list[DeliveryRow], int]:
    """One page of the endpoint's deliveries, newest first."""
    conditions = [webhook_deliveries.c.webhook_id == webhook_id]
    if status:
        conditions.append(webhook_deliveries.c.status == status)
    rows, total = await fetch_page(
        conn, webhook_deliveries, where=conditions,
        order_by=[webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc()], page=page, limit=limit,
    )
    return records(DeliveryRow, rows), total


async def due_delivery_ids(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[str]:
    """Pending deliveries whose next attempt is due, oldest due first (for the queue)."""
    rows = await conn.execute(
        sa.select(webhook_deliveries.c.id)
        .where(webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now)
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    return list(rows.scalars())


def delivery_view(row: DeliveryRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "webhook_id": row["webhook_id"],
        "event": row["event"],
        "status": row["status"],
        "attempts": row["attempts"],
        "response_status": row["response_status"],
        "latency_ms": row["latency_ms"],
        "error": row["error"],
        "created_at": isoformat(row["created_at"]),
        "last_attempt_at": isoformat(row["last_attempt_at"]),
        "next_attempt_at": isoformat(row["next_attempt_at"]),
    }


def _describe(exc: BaseException) -> str:
    """A short, secret-free reason for a failed attempt."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UnsafeTargetError):
            return f"Refused: {seen}"
        seen = seen.__cause__ or getattr(seen, "os_error", None)
    if isinstance(exc, TimeoutError):
        return f"Timed out after {TIMEOUT_SECONDS} s"
    return f"{type(exc).__name__}: {exc}"[:500]


async def _send(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], body: str
) -> tuple[int | None, str | None, int]:
    """One POST; returns (status, error, latency_ms). Redirects are not followed."""
    started = time.monotonic()
    try:
        async with session.post(
            url, data=body.encode(), headers={**headers, "Content-Type": "application/json"},
            allow_redirects=False, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
        ) as resp:
            # Read (and drop) a little of the answer so the connection can be reused; never stored.
            await resp.content.read(4096)
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return None, _describe(exc), int((time.monotonic() - started) * 1000)
    latency = int((time.monotonic() - started) * 1000)
    if 200 <= status < 300:
        return status, None, latency
    if 300 <= status < 400:
        return status, f"Answered {status}; redirects are not followed", latency
    return status, f"Answered {status}", latency


async def deliver(
    engine: AsyncEngine,
    delivery_id: str,
    *,
    secret_key: str,
    allow_private: bool,
    clock: Clock,
    session: aiohttp.ClientSession | None = None,
    retry: bool = True,
) -> DeliveryRow | None:
    """Send one signed attempt of a pending delivery now and record its outcome; returns the
    delivery row (None when it does not exist).

    Nothing is sent when the delivery is no longer pending. On failure the next attempt is scheduled
    by RETRY_SCHEDULE (unless `retry` is False, as for test pings, or the attempts are used up, or
    the endpoint got disabled); a 410 disables the endpoint. Network errors are recorded, never
    raised. A secret that no longer decrypts (OUIPOST_SECRET_KEY changed) fails the delivery.
    """
    async with engine.connect() as conn:
        delivery = await get_delivery(conn, delivery_id)
        webhook = await get_webhook(conn, delivery["webhook_id"]) if delivery else None
    if delivery is None or webhook is None or delivery["status"] != "pending":
        return delivery
    body = json.dumps(delivery["payload"], ensure_ascii=False, separators=(",", ":"))
    status: int | None
    error: str | None
    try:
        secret = _cipher(secret_key).decrypt(webhook["secret_encrypted"], context=webhook["id"])
    except DecryptionError:
        status, error, latency = None, "The signing secret cannot be decrypted (was OUIPOST_SECRET_KEY changed?)", 0
        retry = False
    else:
        headers = sign_headers(secret, delivery["id"], clock.now(), body)
        own_session = session is None
        http = session or client_session(allow_private=allow_private)
        try:
            status, error, latency = await _send(http, webhook["url"], headers, body)
        finally:
            if own_session:
                await http.close()
    async with engine.begin() as conn:
        return await _record_attempt(conn, delivery, webhook, status, error, latency, clock.now(), retry=retry)


async def _record_attempt(
    conn: AsyncConnection,
    delivery: DeliveryRow,
    webhook: WebhookRow,
    status: int | None,
    error: str | None,
    latency_ms: int,
    now: datetime,
    *,
    retry: bool,
) -> DeliveryRow:
    attempts = delivery["attempts"] + 1
    succeeded = error is None
    webhook_values: dict[str, Any] = {"last_triggered_at": now}
    next_attempt_at: datetime | None = None
    if succeeded:
        outcome = "succeeded"
        webhook_values["failing_since"] = None
    else:
        failing_since = webhook["failing_since"] or now
        webhook_values["failing_since"] = failing_since
        if status == 410:
            webhook_values.update(is_active=False, disabled_reason="The endpoint answered 410 Gone")
        elif now - failing_since >= DISABLE_AFTER:
            webhook_values.update(
                is_active=False, disabled_reason="Every delivery attempt failed for 5 days"
            )
        still_active = webhook["is_active"] and webhook_values.get("is_active", True)
        if retry and still_active and attempts < MAX_ATTEMPTS:
            outcome = "pending"
            next_attempt_at = now + RETRY_SCHEDULE[attempts - 1]
        else:
            outcome = "failed"
    values: dict[str, Any] = {
        "status": outcome,
        "attempts": attempts,
        "response_status": status,
        "latency_ms": latency_ms,
        "error": error,
        "next_attempt_at": next_attempt_at,
        "last_attempt_at": now,
        "updated_at": now,
    }
    # Fenced on the attempt count, so two workers racing on one delivery record it once.
    await conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery["id"], webhook_deliveries.c.attempts == delivery["attempts"])
        .values(**values)
    )
    await conn.execute(webhooks.update().where(webhooks.c.id == webhook["id"]).values(**webhook_values))
    process_metrics().webhook_deliveries.labels("retrying" if outcome == "pending" else outcome).inc()
    return record(DeliveryRow, {**delivery, **values})


async def deliver_due_attempt(
    engine: AsyncEngine,
    delivery_id: str,
    *,
    secret_key: str,
    allow_private: bool,
    clock: Clock,
    session: aiohttp.ClientSession | None = None,
) -> DeliveryRow | None:
    """The queue's entry point (job `deliver_webhook`): send the delivery's next attempt if it is
    pending and due. A delivery whose endpoint was disabled or deleted meanwhile is failed without
    sending. Returns the delivery row (None when it is gone)."""
    now = clock.now()
    async with engine.begin() as conn:
        delivery = await get_delivery(conn, delivery_id)
        if delivery is None or delivery["status"] != "pending":
            return delivery
        if delivery["next_attempt_at"] is not None and delivery["next_attempt_at"] > now:
            return delivery
        webhook = await get_webhook(conn, delivery["webhook_id"])
        if webhook is None or not webhook["is_active"]:
            values: dict[str, Any] = {"status": "failed", "next_attempt_at": None, "updated_at": now,
                                      "error": "The endpoint is disabled"}
            await conn.execute(
                webhook_deliveries.update().where(webhook_deliveries.c.id == delivery_id).values(**values)
            )
            return record(DeliveryRow, {**delivery, **values})
    return await deliver(
        engine, delivery_id, secret_key=secret_key, allow_private=allow_private, clock=clock, session=session
    )


# ------------------------------------------------------------------------------------------------
# Test pings and the audit entries of endpoint changes (the admin API and the admin UI share them)


async def send_test_ping(
    engine: AsyncEngine, webhook_id: str, *, secret_key: str, allow_private: bool, clock: Clock,
) -> DeliveryRow | None:
    """Send a `webhook.test` event to the endpoint now (one attempt, TIMEOUT_SECONDS, no retries)
    and return the delivery with its outcome; None when the endpoint does not exist (or was
    deleted meanwhile). Network errors are recorded on the delivery, never raised."""
    async with engine.begin() as conn:
        webhook = await get_webhook(conn, webhook_id)
        if webhook is None:
            return None
        delivery = await create_delivery(
            conn, webhook["id"], "webhook.test",
            {"webhook": {"id": webhook["id"], "url": webhook["url"]}, "message": "Test event from Oui Post"},
            now=clock.now(),
        )
    return await deliver(engine, delivery["id"], secret_key=secret_key, allow_private=allow_private, clock=clock,
                         retry=False)


async def audit_webhook_created(conn: AsyncConnection, actor: Actor, row: WebhookRow, now: datetime) -> None:
    await record_audit(conn, action="webhook.created", actor=actor, now=now, resource_type="webhook",
                       resource_id=row["id"], details={"url": row["url"], "events": list(row["events"])})


async def audit_webhook_updated(
    conn: AsyncConnection, actor: Actor, row: WebhookRow, changed: Sequence[str], now: datetime,
) -> None:
    """The entry for a change (nothing is written when nothing changed; never the secret)."""
    if not changed:
        return
    details: dict[str, Any] = {"changed": list(changed)}
    for field in ("url", "events", "is_active"):
        if field in changed:
            details[field] = row[field]
    await record_audit(conn, action="webhook.updated", actor=actor, now=now, resource_type="webhook",
                       resource_id=row["id"], details=details)


async def audit_webhook_deleted(
    conn: AsyncConnection, actor: Actor, webhook: WebhookRow, now: datetime,
) -> None:
    await record_audit(conn, action="webhook.deleted", actor=actor, now=now, resource_type="webhook",
                       resource_id=webhook["id"], details={"url": webhook["url"]})
