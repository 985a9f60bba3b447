"""Tables of analytics: what the networks answered (snapshots) and the rollup every read uses. Shares
`metadata`; every query on them is in `ouipost/analytics/service.py`.

- `insight_snapshots`: one row per insights answer of one published target (post x account), kept
  as history: the common four (impressions, reach, engagement, clicks) plus the network's own metrics
  under their own names. A post's timeline reads them.
- `target_insights`: the rollup, one row per published target, created when the target is published
  (zeros) and overwritten with each snapshot: its latest totals. Lists, post views and workspace
  analytics read this table (or its rollups below), never the snapshots.
- `hourly_insights`, `hourly_network_insights`, `daily_network_insights`: sums of `target_insights`
  by publication time (whole UTC hours or days since the epoch), per workspace, and per network for
  the latter two; kept equal to those sums in the transactions that change `target_insights`
  (publication, snapshot, post deletion; a workspace's rows cascade with it). A workspace period reads
  a few hundred of their rows instead of every target of the period: `daily_network_insights` gives
  the per-network totals, `hourly_insights` (or `hourly_network_insights` with a platform filter) the
  timeline, grouped into the zone's local days or hours (an hour that straddles two local days, in
  a zone whose offset is not whole hours, is read from `target_insights` instead).
- `account_snapshots`: one row per account per daily sync (followers, following, posts, demographics).

Snapshots keep `account_id` without a foreign key: history outlives a disconnected account.
"""

from __future__ import annotations

import sqlalchemy as sa

from ouipost.db.metadata import metadata
from ouipost.db.types import JSON, Id, UTCDateTime

# A compact integer key: a million snapshots are a lot of 48-character ids in every secondary index.
SnapshotId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

insight_snapshots = sa.Table(
    "insight_snapshots",
    metadata,
    sa.Column("id", SnapshotId, primary_key=True, autoincrement=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("post_id", Id(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("target_id", Id(), sa.ForeignKey("post_targets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("network", sa.String(20), nullable=False),
    sa.Column("account_id", Id(), nullable=True),
    sa.Column("taken_at", UTCDateTime, nullable=False),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("reach", sa.BigInteger, nullable=False),
    sa.Column("engagement", sa.BigInteger, nullable=False),
    sa.Column("clicks", sa.BigInteger, nullable=False),
    sa.Column("metrics", JSON, nullable=False),
    # A post's timeline: WHERE post_id = ? ORDER BY taken_at (a range of the index, no filesort).
    sa.Index(None, "post_id", "taken_at"),
    # The foreign keys' own lookups (cascades) and per-target history.
    sa.Index(None, "target_id", "taken_at"),
    sa.Index(None, "workspace_id", "taken_at"),
)

target_insights = sa.Table(
    "target_insights",
    metadata,
    sa.Column("target_id", Id(), sa.ForeignKey("post_targets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("post_id", Id(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("network", sa.String(20), nullable=False),
    sa.Column("account_id", Id(), nullable=True),
    sa.Column("published_at", UTCDateTime, nullable=False),
    # 1 on the post's first published target (resp. its first on this network), else 0: periods count
    # posts with SUM() where they fall, instead of COUNT(DISTINCT post_id) over every row.
    sa.Column("first_of_post", sa.SmallInteger, nullable=False),
    sa.Column("first_of_network", sa.SmallInteger, nullable=False),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("reach", sa.BigInteger, nullable=False),
    sa.Column("engagement", sa.BigInteger, nullable=False),
    sa.Column("clicks", sa.BigInteger, nullable=False),
    sa.Column("metrics", JSON, nullable=False),
    sa.Column("snapshots", sa.Integer, nullable=False),
    sa.Column("synced_at", UTCDateTime, nullable=True),  # NULL until the first snapshot
    # Workspace analytics: WHERE workspace_id = ? AND published_at BETWEEN ? AND ? grouped by network or
    # by time bucket. The index covers every column those queries read, so a period is one range scan
    # of the index and no row lookups (MariaDB has no INCLUDE, hence the trailing key columns).
    sa.Index(
        "ix_target_insights_workspace_period", "workspace_id", "published_at", "network", "first_of_post",
        "first_of_network", "impressions", "reach", "engagement", "clicks",
    ),
    # The same with a platform filter (equality on network first, then the range).
    sa.Index(
        "ix_target_insights_network_period", "workspace_id", "network", "published_at", "first_of_network",
        "impressions", "reach", "engagement", "clicks",
    ),
    # Top posts: ORDER BY impressions DESC, engagement DESC, target_id DESC LIMIT n is this index read
    # backwards (InnoDB appends the primary key, target_id), each entry's row checked for the period:
    # the walk stops after n rows of the period instead of sorting every row of it.
    sa.Index("ix_target_insights_top", "workspace_id", "impressions", "engagement"),
    # Post lists and views: WHERE post_id IN (...).
    sa.Index(None, "post_id"),
    # The admin view across workspaces (covering, like the workspace's).
    sa.Index(
        "ix_target_insights_period", "published_at", "network", "first_of_post", "first_of_network",
        "impressions", "reach", "engagement", "clicks",
    ),
)


def _rollup_columns() -> list[sa.Column[int]]:
    """What every rollup row adds up over the targets published in its slice: how many targets, how
    many posts (`first_of_post` for the whole workspace, `first_of_network` per network) and the
    latest totals of the four common figures."""
    return [
        sa.Column("targets", sa.Integer, nullable=False),
        sa.Column("posts", sa.Integer, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in ("impressions", "reach", "engagement", "clicks")),
    ]


def _workspace_key() -> sa.Column[str]:
    return sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)


# The timeline without a platform filter: WHERE workspace_id = ? AND utc_hour >= ? AND utc_hour < ?, one
# range of the primary key (the clustered rows on InnoDB), at most 24 rows a day.
hourly_insights = sa.Table(
    "hourly_insights",
    metadata,
    _workspace_key(),
    sa.Column("utc_hour", sa.Integer, primary_key=True, autoincrement=False),  # whole hours since 1970-01-01Z
    *_rollup_columns(),
)

# The timeline of one network: WHERE workspace_id = ? AND network = ? AND utc_hour in a range.
hourly_network_insights = sa.Table(
    "hourly_network_insights",
    metadata,
    _workspace_key(),
    sa.Column("network", sa.String(20), primary_key=True),
    sa.Column("utc_hour", sa.Integer, primary_key=True, autoincrement=False),
    *_rollup_columns(),
)

# Per-network totals of a period: WHERE workspace_id = ? AND utc_day in a range GROUP BY network, at most
# one row per network a day (the network last: a platform filter only skips rows of that short range).
daily_network_insights = sa.Table(
    "daily_network_insights",
    metadata,
    _workspace_key(),
    sa.Column("utc_day", sa.Integer, primary_key=True, autoincrement=False),  # whole days since 1970-01-01Z
    sa.Column("network", sa.String(20), primary_key=True),
    *_rollup_columns(),
)

account_snapshots = sa.Table(
    "account_snapshots",
    metadata,
    sa.Column("id", SnapshotId, primary_key=True, autoincrement=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("account_id", Id(), nullable=False),
    sa.Column("network", sa.String(20), nullable=False),
    sa.Column("taken_at", UTCDateTime, nullable=False),
    sa.Column("followers", sa.BigInteger, nullable=True),
    sa.Column("following", sa.BigInteger, nullable=True),
    sa.Column("posts_total", sa.BigInteger, nullable=True),
    sa.Column("demographics", JSON, nullable=True),
    # Audience: the latest snapshot of each account at or before an instant.
    sa.Index(None, "account_id", "taken_at"),
    sa.Index(None, "workspace_id", "taken_at"),
)
