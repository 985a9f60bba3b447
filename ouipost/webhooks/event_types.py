"""The event types, spelled once (their records are written by ouipost/webhooks/events.py)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every event the outbox carries; a webhook subscribes to some of them (and `webhook.test`)."""

    POST_CREATED = "post.created"
    POST_SCHEDULED = "post.scheduled"
    POST_PUBLISHED = "post.published"
    POST_PARTIAL = "post.partial"
    POST_FAILED = "post.failed"
    POST_SUBMITTED = "post.submitted"
    POST_APPROVED = "post.approved"
    POST_REJECTED = "post.rejected"
    ACCOUNT_CONNECTED = "account.connected"
    ACCOUNT_DISCONNECTED = "account.disconnected"
    ACCOUNT_EXPIRED = "account.expired"


TYPES: tuple[EventType, ...] = tuple(EventType)
