"""pacing: per-account publish pacing (GCRA) and per-network in-flight slots

Revision ID: 0008_pacing
Revises: 0007_analytics
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ouipost.db.types import UTCDateTime

revision = "0008_pacing"
down_revision = "0007_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pacing",
        sa.Column("key", sa.String(length=191), nullable=False),
        sa.Column("tat_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_pacing")),
    )
    op.create_table(
        "pacing_slots",
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("network", "slot", name=op.f("pk_pacing_slots")),
    )


def downgrade() -> None:
    op.drop_table("pacing_slots")
    op.drop_table("pacing")
