"""post approval: when a post was submitted, and why it was last rejected

Revision ID: 0016_post_approval
Revises: 0015_instance_apps
Create Date: 2026-12-03

A workspace may require approval before its posts are scheduled or published
(ouipost/posts/approval.py). A post waiting for it has the status `pending_approval` (the status
column is a plain string: no schema change for that) and `submitted_at`; the time it asks for stays
in `scheduled_at`/`scheduled_timezone`. A rejected post is a draft again, with `rejection_reason`.

API keys gain the permission `posts.approve`. A key that held every permission before this release
was made with "all permissions" (or given them all): it keeps holding all of them. Keys given a
chosen subset keep exactly that subset.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from ouipost.db.types import UTCDateTime

revision = "0016_post_approval"
down_revision = "0015_instance_apps"
branch_labels = None
depends_on = None

PERMISSIONS_BEFORE = {
    "workspaces.read", "workspaces.manage", "posts.read", "posts.write", "accounts.read", "accounts.manage",
    "schedules.read", "schedules.write", "analytics.read",
}
APPROVE = "posts.approve"


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("submitted_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("rejection_reason", sa.Text, nullable=True))
    _each_key(lambda held: [*held, APPROVE] if set(held) >= PERMISSIONS_BEFORE and APPROVE not in held else None)


def downgrade() -> None:
    _each_key(lambda held: [p for p in held if p != APPROVE] if APPROVE in held else None)
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("rejection_reason")
        batch.drop_column("submitted_at")


def _each_key(change: Callable[[list[str]], list[str] | None]) -> None:
    """Rewrite the permissions of every key for which `change(held)` gives a new list."""
    bind = op.get_bind()
    keys = sa.table("api_keys", sa.column("id", sa.String), sa.column("permissions", sa.JSON))
    for key_id, held in bind.execute(sa.select(keys.c.id, keys.c.permissions)).all():
        new = change(list(held or []))
        if new is not None:
            bind.execute(keys.update().where(keys.c.id == key_id).values(permissions=new))
