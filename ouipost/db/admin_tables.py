"""Tables of the admin domain (users' sessions, audit, webhooks, usage). Shares `metadata`.

Everything here must hold across processes, so nothing of it lives in memory: admin sessions (JWT
revocation), failed logins (lockout), rate-limit windows, usage counters, webhook deliveries and the
outcomes of platform calls.
"""

from __future__ import annotations

import sqlalchemy as sa

from ouipost.db.metadata import metadata
from ouipost.db.types import JSON, Id, UTCDateTime

# One row per issued admin JWT (its jti). Logout and deactivation set revoked_at; a token whose row
# is missing, revoked or expired is refused by every process. Rows are pruned after they expire.
admin_sessions = sa.Table(
    "admin_sessions",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("user_id", Id(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Index(None, "user_id"),
    sa.Index(None, "expires_at"),
)

# Failed logins per e-mail (known or not, so a lock reveals nothing). The failure that reaches the
# threshold carries locked_until; a success deletes the e-mail's rows.
login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("ip_address", sa.String(45), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("locked_until", UTCDateTime, nullable=True),
    sa.Index(None, "email", "at"),
)

# No foreign key to users: the log outlives the users it names (user_email keeps who it was).
audit_logs = sa.Table(
    "audit_logs",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("user_id", Id(), nullable=True),
    sa.Column("user_email", sa.String(254), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource_type", sa.String(32), nullable=True),
    sa.Column("resource_id", sa.String(64), nullable=True),
    sa.Column("details", JSON, nullable=False),
    sa.Column("ip_address", sa.String(45), nullable=True),
    sa.Column("user_agent", sa.String(500), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "created_at"),
    sa.Index(None, "user_id", "created_at"),
    sa.Index(None, "action", "created_at"),
)

# Fixed one-minute windows per key: window_start is the epoch second the window begins.
rate_limit_counters = sa.Table(
    "rate_limit_counters",
    metadata,
    sa.Column("key_id", Id(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
)

# Requests served per key per UTC day; the month is the sum of its days.
api_key_usage = sa.Table(
    "api_key_usage",
    metadata,
    sa.Column("key_id", Id(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("requests", sa.Integer, nullable=False),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("description", sa.String(500), nullable=True),
    sa.Column("events", JSON, nullable=False),
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled_reason", sa.String(255), nullable=True),
    # Set by the first failure after a success; an endpoint failing for 5 days in a row is disabled.
    sa.Column("failing_since", UTCDateTime, nullable=True),
    sa.Column("created_by", Id(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_triggered_at", UTCDateTime, nullable=True),
)

# One row per (event, endpoint): the message whose attempts are counted. event_id is the outbox
# event (NULL for test pings); the unique constraint stops a second delivery of the same event.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("webhook_id", Id(), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_id", Id(), nullable=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("webhook_id", "event_id"),
    sa.Index(None, "webhook_id", "created_at"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "created_at"),  # housekeeping: finished deliveries by age
)

# Outcomes of publish calls to the networks, written by the worker; /admin/platform-health reads them.
platform_calls = sa.Table(
    "platform_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("network", sa.String(20), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index(None, "network", "at"),
    sa.Index(None, "at"),  # housekeeping: calls by age, whatever their network
)
