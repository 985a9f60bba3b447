"""events outbox; joins the branches of admin, posts/accounts, jobs and schedules

Revision ID: 0006_events
Revises: 0002_admin, 0003_posts_accounts, 0004_jobs, 0005_schedules
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ouipost.db.types import UTCDateTime

revision = "0006_events"
down_revision = ("0002_admin", "0003_posts_accounts", "0004_jobs", "0005_schedules")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=48), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_dispatched_at_created_at"), "events", ["dispatched_at", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_events_dispatched_at_created_at"), table_name="events")
    op.drop_table("events")
