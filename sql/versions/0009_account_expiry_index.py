"""index for the token refresh job's scan of accounts expiring soon

Revision ID: 0009_account_expiry_index
Revises: 0008_pacing
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0009_account_expiry_index"
down_revision = "0008_pacing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_social_accounts_status_token_expires_at"), "social_accounts", ["status", "token_expires_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_social_accounts_status_token_expires_at"), table_name="social_accounts")
