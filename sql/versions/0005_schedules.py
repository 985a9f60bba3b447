"""schedules: weekly slots and the queue of posts that fills them

Revision ID: 0005_schedules
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ouipost.db.types import UTCDateTime

revision = "0005_schedules"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("workspace_id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_schedules_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index(op.f("ix_schedules_workspace_id_id"), "schedules", ["workspace_id", "id"], unique=False)

    op.create_table(
        "schedule_slots",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("schedule_id", sa.String(length=48), nullable=False),
        sa.Column("day", sa.String(length=9), nullable=False),
        sa.Column("time", sa.String(length=5), nullable=False),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"], name=op.f("fk_schedule_slots_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_slots")),
        sa.UniqueConstraint("schedule_id", "day", "time", name=op.f("uq_schedule_slots_schedule_id_day_time")),
    )

    op.create_table(
        "schedule_entries",
        sa.Column("post_id", sa.String(length=48), nullable=False),
        sa.Column("schedule_id", sa.String(length=48), nullable=False),
        sa.Column("slot_id", sa.String(length=48), nullable=True),
        sa.Column("slot_time", UTCDateTime(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_schedule_entries_post_id_posts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"], name=op.f("fk_schedule_entries_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["schedule_slots.id"], name=op.f("fk_schedule_entries_slot_id_schedule_slots"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_schedule_entries")),
        sa.UniqueConstraint("slot_id", "slot_time", name=op.f("uq_schedule_entries_slot_id_slot_time")),
    )
    op.create_index(
        op.f("ix_schedule_entries_schedule_id_slot_time"), "schedule_entries", ["schedule_id", "slot_time"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_schedule_entries_schedule_id_slot_time"), table_name="schedule_entries")
    op.drop_table("schedule_entries")
    op.drop_table("schedule_slots")
    op.drop_index(op.f("ix_schedules_workspace_id_id"), table_name="schedules")
    op.drop_table("schedules")
