"""SQLAlchemy Core tables: the single source of truth for the schema.

Migrations in sql/versions must produce exactly this (tests/test_migrations.py compares them).
Every table a workspace owns references it with ON DELETE CASCADE, so deleting a workspace removes
everything it owns in one statement on both databases (SQLite runs with foreign_keys=ON).
"""

from __future__ import annotations

import sqlalchemy as sa

from ouipost.db.metadata import metadata
from ouipost.db.types import JSON, Id, UTCDateTime

__all__ = ["metadata"]  # every table module shares it; most callers take it from here


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("permissions", JSON, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_login_at", UTCDateTime, nullable=True),
)

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("settings", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

workspace_members = sa.Table(
    "workspace_members",
    metadata,
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", Id(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "user_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("tier", sa.String(32), nullable=False),
    sa.Column("permissions", JSON, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_by", Id(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
)

# A key's secrets: the current one, plus rotated-out ones that stay valid until expires_at.
# Only the SHA-256 of a secret is stored; API keys carry 190 bits of entropy, so a slow hash
# would add latency to every request without adding safety.
api_key_secrets = sa.Table(
    "api_key_secrets",
    metadata,
    sa.Column("secret_hash", sa.String(64), primary_key=True),
    sa.Column("key_id", Id(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Index(None, "key_id"),
)

api_key_workspaces = sa.Table(
    "api_key_workspaces",
    metadata,
    sa.Column("key_id", Id(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    sa.Index(None, "workspace_id"),
)

social_accounts = sa.Table(
    "social_accounts",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("remote_id", sa.String(191), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("username", sa.String(200), nullable=True),
    sa.Column("profile_image", sa.Text, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
    sa.Column("settings", JSON, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("permissions", JSON, nullable=False),
    sa.Column("access_token", sa.Text, nullable=True),  # encrypted
    sa.Column("refresh_token", sa.Text, nullable=True),  # encrypted
    sa.Column("token_expires_at", UTCDateTime, nullable=True),
    sa.Column("refresh_expires_at", UTCDateTime, nullable=True),
    sa.Column("stats", JSON, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_sync_at", UTCDateTime, nullable=True),
    sa.Column("connected_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("workspace_id", "platform", "remote_id"),
    sa.Index(None, "workspace_id", "platform", "status"),
    sa.Index(None, "status", "token_expires_at"),  # the refresh job's "expiring soon" scan
)

posts = sa.Table(
    "posts",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("title", sa.String(300), nullable=True),
    sa.Column("link", sa.Text, nullable=True),
    sa.Column("hashtags", JSON, nullable=False),
    sa.Column("platforms", JSON, nullable=False),
    sa.Column("platform_content", JSON, nullable=False),
    sa.Column("scheduled_at", UTCDateTime, nullable=True),
    sa.Column("scheduled_timezone", sa.String(64), nullable=True),
    sa.Column("published_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Approval (ouipost/posts/approval.py): when the post was submitted, while it waits; why it was
    # last rejected, while it is a draft again.
    sa.Column("submitted_at", UTCDateTime, nullable=True),
    sa.Column("rejection_reason", sa.Text, nullable=True),
    # Follow-ups (ouipost/publishing/followups.py): `thread`, the parts after the post
    # ([{content, media_ids}], NULL for none); `thread_mode` (thread | first_comment) for networks
    # without reply chains; `first_comment`, a comment left right after the post.
    sa.Column("thread", JSON(none_as_null=True), nullable=True),  # None is SQL NULL, not JSON null
    sa.Column("thread_mode", sa.String(16), nullable=True),
    sa.Column("first_comment", sa.Text, nullable=True),
    sa.Index(None, "workspace_id", "status"),
    sa.Index(None, "workspace_id", "created_at"),
)


# One row per (post, requested target). A draft may name a network with no account yet
# (account_id NULL); scheduling resolves every target to an account. The publish state machine
# (pending -> publishing -> published | failed | cancelled) lives on these rows.
post_targets = sa.Table(
    "post_targets",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("post_id", Id(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("network", sa.String(20), nullable=False),
    sa.Column("requested", sa.String(64), nullable=False),  # the network name or account id as given
    sa.Column("account_id", Id(), sa.ForeignKey("social_accounts.id", ondelete="SET NULL"), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("remote_id", sa.String(255), nullable=True),
    sa.Column("remote_url", sa.Text, nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("published_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("post_id", "requested"),
    sa.Index(None, "workspace_id", "network"),
    sa.Index(None, "account_id", "status"),
)

# A target's follow-ups, each its own step with its own exactly-once guarantee: written (from the
# post's thread and first_comment) when the follow-ups job first runs for a published target, in
# the order they are sent (`seq`). `kind` is reply (the next part of a reply chain) or comment.
post_target_parts = sa.Table(
    "post_target_parts",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("target_id", Id(), sa.ForeignKey("post_targets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("post_id", Id(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # thread | first_comment
    sa.Column("source_index", sa.Integer, nullable=True),  # the thread part's index
    sa.Column("kind", sa.String(16), nullable=False),  # reply | comment
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("remote_id", sa.String(255), nullable=True),
    sa.Column("remote_url", sa.Text, nullable=True),
    sa.Column("remote_extra", JSON, nullable=True),  # what a reply to it must cite (Bluesky's cid)
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("published_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("target_id", "seq"),
    sa.Index(None, "post_id"),
)
media = sa.Table(
    "media",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("post_id", Id(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mime_type", sa.String(100), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("duration", sa.Float, nullable=True),
    sa.Column("alt_text", sa.Text, nullable=True),
    sa.Column("storage_key", sa.String(255), nullable=False),
    sa.Column("thumbnail_key", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "post_id"),
    sa.Index(None, "workspace_id"),
)

# Idempotency-Key: the first answer to (api key, idempotency key), replayed for 24 h.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("api_key_id", Id(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=True),  # NULL while the first request is in flight
    sa.Column("response", JSON, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "created_at"),
)


# OAuth `state` of a pending account connection: single use, bound to workspace and API key,
# expires. Only the state's SHA-256 is kept; the PKCE verifier is encrypted.
oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    # Who started the flow and alone may finish it: an API key (the API) or an admin user (the UI).
    sa.Column("api_key_id", Id(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("scopes", JSON, nullable=False),
    sa.Column("code_verifier", sa.Text, nullable=True),  # encrypted
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=True),
    sa.Column("user_id", Id(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sa.Index(None, "expires_at"),
)


# The outbox: domain events written in the same transaction as the change that caused them, so an
# event exists if and only if its change committed. Webhook delivery reads from here.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("workspace_id", Id(), nullable=True),  # kept after the workspace is gone: events are history
    sa.Column("payload", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("dispatched_at", UTCDateTime, nullable=True),
    sa.Index(None, "dispatched_at", "created_at"),
)


# Tables of other domains share `metadata`; importing them here makes this module the complete schema.
from ouipost.db import (  # noqa: E402, F401
    admin_tables,
    analytics_tables,
    instance_tables,
    pacing_tables,
    queue_tables,
    schedule_tables,
)
