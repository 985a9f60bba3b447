"""Tables of publish pacing (see ouipost/publishing/pacing.py). Shares `metadata`.

- `pacing`: one row per paced key (an account), holding its GCRA "theoretical arrival time" in
  epoch milliseconds. An integer, not a datetime, so that the admission is one UPDATE whose
  arithmetic both databases do the same way, and whose value compares exactly.
- `pacing_slots`: per network, one row per allowed in-flight call (slot 0..cap-1). A slot is taken
  by a conditional UPDATE and carries a lease (`until`), so a worker killed mid-call frees its slot
  when the lease passes instead of leaking it for ever.
"""

from __future__ import annotations

import sqlalchemy as sa

from ouipost.db.metadata import metadata
from ouipost.db.types import UTCDateTime

pacing = sa.Table(
    "pacing",
    metadata,
    sa.Column("key", sa.String(191), primary_key=True),  # "account:<acc_id>"
    sa.Column("tat_ms", sa.BigInteger, nullable=False),  # next conforming time, epoch ms (GCRA)
)

pacing_slots = sa.Table(
    "pacing_slots",
    metadata,
    sa.Column("network", sa.String(32), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("holder", sa.String(100), nullable=True),  # who holds it (job and target), NULL when free
    sa.Column("until", UTCDateTime, nullable=True),  # the holder's lease; a slot past it is free again
)
