"""claim index per queue: a worker serving one queue no longer steps over other queues' future jobs

Revision ID: 0010_jobs_queue_claim_index
Revises: 0009_account_expiry_index
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0010_jobs_queue_claim_index"
down_revision = "0009_account_expiry_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_jobs_queue_status_priority_run_at_id"), "jobs",
                    ["queue", "status", "priority", "run_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_queue_status_priority_run_at_id"), table_name="jobs")
