"""post follow-ups: a thread after the post and a first comment, each part a step of its own

Revision ID: 0017_post_followups
Revises: 0016_post_approval
Create Date: 2026-12-04

A post may carry `thread` (the parts published after it as a reply chain, or with
`thread_mode` first_comment its first part as a comment where the network has no chains) and
`first_comment`. Each published target's follow-ups are rows of `post_target_parts`, sent in `seq`
order by the `publish_followups` job, each with its own status and outcome
(ouipost/publishing/followups.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ouipost.db.types import JSON, Id, UTCDateTime

revision = "0017_post_followups"
down_revision = "0016_post_approval"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("thread", JSON, nullable=True))
        batch.add_column(sa.Column("thread_mode", sa.String(16), nullable=True))
        batch.add_column(sa.Column("first_comment", sa.Text, nullable=True))
    op.create_table(
        "post_target_parts",
        sa.Column("id", Id(), nullable=False),
        sa.Column("target_id", Id(), nullable=False),
        sa.Column("post_id", Id(), nullable=False),
        sa.Column("workspace_id", Id(), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_index", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("remote_id", sa.String(255), nullable=True),
        sa.Column("remote_url", sa.Text, nullable=True),
        sa.Column("remote_extra", JSON, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("published_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["post_targets.id"],
                                name=op.f("fk_post_target_parts_target_id_post_targets"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"],
                                name=op.f("fk_post_target_parts_post_id_posts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_post_target_parts_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_target_parts")),
        sa.UniqueConstraint("target_id", "seq", name=op.f("uq_post_target_parts_target_id_seq")),
    )
    op.create_index(op.f("ix_post_target_parts_post_id"), "post_target_parts", ["post_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_post_target_parts_post_id"), table_name="post_target_parts")
    op.drop_table("post_target_parts")
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("first_comment")
        batch.drop_column("thread_mode")
        batch.drop_column("thread")
