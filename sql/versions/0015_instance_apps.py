"""instance apps: the OAuth app registered on each Mastodon server, per redirect URI

Revision ID: 0015_instance_apps
Revises: 0014_housekeeping_indexes
Create Date: 2026-12-03

Mastodon has no app to configure once per network: Oui Post registers one on each server the first
time an account of that server connects (POST /api/v1/apps) and keeps it here, its secret encrypted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ouipost.db.types import UTCDateTime

revision = "0015_instance_apps"
down_revision = "0014_housekeeping_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_apps",
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("instance", sa.String(length=253), nullable=False),
        sa.Column("redirect_hash", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        sa.Column("pkce", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "instance", "redirect_hash", name=op.f("pk_instance_apps")),
    )


def downgrade() -> None:
    op.drop_table("instance_apps")
