"""analytics: insight snapshots, the latest totals per published target, account snapshots

Revision ID: 0007_analytics
Revises: 0006_events
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ouipost.db.types import UTCDateTime

revision = "0007_analytics"
down_revision = "0006_events"
branch_labels = None
depends_on = None

ID = sa.String(length=48)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "insight_snapshots",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("post_id", ID, nullable=False),
        sa.Column("target_id", ID, nullable=False),
        sa.Column("network", sa.String(length=20), nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.Column("reach", sa.BigInteger(), nullable=False),
        sa.Column("engagement", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_insight_snapshots_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_insight_snapshots_post_id_posts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_id"], ["post_targets.id"],
                                name=op.f("fk_insight_snapshots_target_id_post_targets"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_snapshots")),
    )
    op.create_index(op.f("ix_insight_snapshots_post_id_taken_at"), "insight_snapshots", ["post_id", "taken_at"])
    op.create_index(op.f("ix_insight_snapshots_target_id_taken_at"), "insight_snapshots", ["target_id", "taken_at"])
    op.create_index(op.f("ix_insight_snapshots_workspace_id_taken_at"), "insight_snapshots",
                    ["workspace_id", "taken_at"])

    op.create_table(
        "target_insights",
        sa.Column("target_id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("post_id", ID, nullable=False),
        sa.Column("network", sa.String(length=20), nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("first_of_post", sa.SmallInteger(), nullable=False),
        sa.Column("first_of_network", sa.SmallInteger(), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.Column("reach", sa.BigInteger(), nullable=False),
        sa.Column("engagement", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("snapshots", sa.Integer(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["target_id"], ["post_targets.id"],
                                name=op.f("fk_target_insights_target_id_post_targets"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_target_insights_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_target_insights_post_id_posts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("target_id", name=op.f("pk_target_insights")),
    )
    op.create_index(
        op.f("ix_target_insights_workspace_period"), "target_insights",
        ["workspace_id", "published_at", "network", "first_of_post", "first_of_network", "impressions", "reach",
         "engagement", "clicks"],
    )
    op.create_index(
        op.f("ix_target_insights_network_period"), "target_insights",
        ["workspace_id", "network", "published_at", "first_of_network", "impressions", "reach", "engagement",
         "clicks"],
    )
    op.create_index(op.f("ix_target_insights_top"), "target_insights",
                    ["workspace_id", "impressions", "engagement"])
    op.create_index(op.f("ix_target_insights_post_id"), "target_insights", ["post_id"])
    op.create_index(
        op.f("ix_target_insights_period"), "target_insights",
        ["published_at", "network", "first_of_post", "first_of_network", "impressions", "reach", "engagement",
         "clicks"],
    )

    op.create_table(
        "account_snapshots",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("network", sa.String(length=20), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("followers", sa.BigInteger(), nullable=True),
        sa.Column("following", sa.BigInteger(), nullable=True),
        sa.Column("posts_total", sa.BigInteger(), nullable=True),
        sa.Column("demographics", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_account_snapshots_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_snapshots")),
    )
    op.create_index(op.f("ix_account_snapshots_account_id_taken_at"), "account_snapshots",
                    ["account_id", "taken_at"])
    op.create_index(op.f("ix_account_snapshots_workspace_id_taken_at"), "account_snapshots",
                    ["workspace_id", "taken_at"])


def downgrade() -> None:
    op.drop_table("account_snapshots")
    op.drop_table("target_insights")
    op.drop_table("insight_snapshots")
