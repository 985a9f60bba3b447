"""OAuth states started from the admin UI: owned by an admin user instead of an API key

Revision ID: 0011_oauth_state_owner
Revises: 0010_jobs_queue_claim_index
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_oauth_state_owner"
down_revision = "0010_jobs_queue_claim_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A state is bound to whoever started it: an API key (the API) or an admin user (the UI).
    with op.batch_alter_table("oauth_states") as batch:
        batch.alter_column("api_key_id", existing_type=sa.String(length=48), nullable=True)
        batch.add_column(sa.Column("user_id", sa.String(length=48), nullable=True))
        batch.create_foreign_key(
            op.f("fk_oauth_states_user_id_users"), "users", ["user_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    op.execute("DELETE FROM oauth_states WHERE api_key_id IS NULL")
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_constraint(op.f("fk_oauth_states_user_id_users"), type_="foreignkey")
        batch.drop_column("user_id")
        batch.alter_column("api_key_id", existing_type=sa.String(length=48), nullable=False)
