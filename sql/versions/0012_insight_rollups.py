"""insight rollups: target_insights added up per workspace by UTC hour, per network by UTC hour and day

Revision ID: 0012_insight_rollups
Revises: 0011_oauth_state_owner
Create Date: 2026-12-03

The rollups are filled from the existing target_insights rows in the same migration (`backfill`), so
workspace analytics read the same figures before and after it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_insight_rollups"
down_revision = "0011_oauth_state_owner"
branch_labels = None
depends_on = None

ID = sa.String(length=48)
FIGURES = ("impressions", "reach", "engagement", "clicks")


def _create(name: str, *keys: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("workspace_id", ID, nullable=False),
        *keys,
        sa.Column("targets", sa.Integer(), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        *(sa.Column(figure, sa.BigInteger(), nullable=False) for figure in FIGURES),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f(f"fk_{name}_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", *(key.name for key in keys), name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    _create("hourly_insights", sa.Column("utc_hour", sa.Integer(), autoincrement=False, nullable=False))
    _create("hourly_network_insights", sa.Column("network", sa.String(length=20), nullable=False),
            sa.Column("utc_hour", sa.Integer(), autoincrement=False, nullable=False))
    _create("daily_network_insights", sa.Column("utc_day", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("network", sa.String(length=20), nullable=False))
    backfill(op.get_bind())


def backfill(connection: sa.Connection) -> None:
    """Fill the (empty) rollups from target_insights: one INSERT ... SELECT ... GROUP BY per rollup.
    bench/analytics_latency.py calls it too, after seeding target_insights directly."""
    if connection.dialect.name == "sqlite":
        hour = "CAST(strftime('%s', published_at) AS INTEGER) / 3600"
        day = "CAST(strftime('%s', published_at) AS INTEGER) / 86400"
    elif connection.dialect.name == "postgresql":  # EXTRACT(EPOCH) of a timestamp ignores the time zone
        hour = "CAST(FLOOR(EXTRACT(EPOCH FROM published_at) / 3600) AS INTEGER)"
        day = "CAST(FLOOR(EXTRACT(EPOCH FROM published_at) / 86400) AS INTEGER)"
    else:  # TIMESTAMPDIFF on a DATETIME ignores the session time zone (UNIX_TIMESTAMP would not)
        hour = "TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', published_at)"
        day = "TIMESTAMPDIFF(DAY, '1970-01-01 00:00:00', published_at)"
    sums = ", ".join(f"SUM({figure})" for figure in FIGURES)
    columns = "targets, posts, " + ", ".join(FIGURES)
    for table, keys, expressions, posts in (
        ("hourly_insights", "workspace_id, utc_hour", f"workspace_id, {hour}", "first_of_post"),
        ("hourly_network_insights", "workspace_id, network, utc_hour", f"workspace_id, network, {hour}",
         "first_of_network"),
        ("daily_network_insights", "workspace_id, utc_day, network", f"workspace_id, {day}, network",
         "first_of_network"),
    ):
        connection.execute(sa.text(
            f"INSERT INTO {table} ({keys}, {columns}) "
            f"SELECT {expressions}, COUNT(*), SUM({posts}), {sums} FROM target_insights GROUP BY {expressions}"
        ))


def downgrade() -> None:
    op.drop_table("daily_network_insights")
    op.drop_table("hourly_network_insights")
    op.drop_table("hourly_insights")
