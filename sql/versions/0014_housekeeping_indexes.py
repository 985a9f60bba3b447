"""indexes for housekeeping: platform calls and webhook deliveries by age

Revision ID: 0014_housekeeping_indexes
Revises: 0013_binary_collation
Create Date: 2026-12-03

The housekeeping job (ouipost/housekeeping/service.py) deletes platform_calls by `at` and finished
webhook_deliveries by `created_at`, a thousand oldest rows at a time. Without these indexes each
batch would read the table from its first row, and a run with nothing to delete would read all of it.
On a large table the index is built online by MariaDB (ALGORITHM=INPLACE, no lock on writes).
"""

from __future__ import annotations

from alembic import op

revision = "0014_housekeeping_indexes"
down_revision = "0013_binary_collation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_platform_calls_at"), "platform_calls", ["at"])
    op.create_index(op.f("ix_webhook_deliveries_created_at"), "webhook_deliveries", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_deliveries_created_at"), table_name="webhook_deliveries")
    op.drop_index(op.f("ix_platform_calls_at"), table_name="platform_calls")
