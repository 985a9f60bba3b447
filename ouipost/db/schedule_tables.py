"""Recurring schedules: weekly slots and the queue of posts that fills them.

Shares `metadata` (ouipost/db/metadata.py) with ouipost.db.tables, which imports this module at its end; migration
sql/versions/0005_schedules.py builds exactly these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from ouipost.db.metadata import metadata
from ouipost.db.types import JSON, Id, UTCDateTime

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("workspace_id", Id(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "workspace_id", "id"),
)

# Weekly slots: `day` monday..sunday, `time` HH:MM local to the schedule's zone, `platforms` network
# names and/or account ids of the workspace. Replacing a schedule's slots gives them new ids.
schedule_slots = sa.Table(
    "schedule_slots",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("schedule_id", Id(), sa.ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False),
    sa.Column("day", sa.String(9), nullable=False),
    sa.Column("time", sa.String(5), nullable=False),
    sa.Column("platforms", JSON, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.UniqueConstraint("schedule_id", "day", "time"),
)

# A post queued in a schedule: the slot occurrence it takes (slot_id + slot_time, UTC), its order of
# arrival (position), and whether it is held because the schedule is paused. The unique index makes
# "one post per slot occurrence" a database fact, not only a check. Entries stay after publishing
# (they feed the schedule's stats); a post is "queued" while its entry exists and it is `scheduled`.
schedule_entries = sa.Table(
    "schedule_entries",
    metadata,
    sa.Column("post_id", Id(), sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("schedule_id", Id(), sa.ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False),
    sa.Column("slot_id", Id(), sa.ForeignKey("schedule_slots.id", ondelete="SET NULL"), nullable=True),
    sa.Column("slot_time", UTCDateTime, nullable=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("slot_id", "slot_time"),
    sa.Index(None, "schedule_id", "slot_time"),
)
