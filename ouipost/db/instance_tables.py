"""Tables of networks whose accounts live on a server the user names (Mastodon). Shares `metadata`.

- `instance_apps`: the OAuth app Oui Post registered on one server for one redirect URI (a Mastodon
  app is bound to its redirect URIs), so that connecting a second account of the same server reuses
  it. The client secret is encrypted at rest (ouipost/core/crypto.py), bound to the row's key.
"""

from __future__ import annotations

import sqlalchemy as sa

from ouipost.db.metadata import metadata
from ouipost.db.types import UTCDateTime

instance_apps = sa.Table(
    "instance_apps",
    metadata,
    sa.Column("platform", sa.String(20), primary_key=True),
    sa.Column("instance", sa.String(253), primary_key=True),  # host[:port], lower case
    sa.Column("redirect_hash", sa.String(64), primary_key=True),  # sha256 of redirect_uri (keys stay short)
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("client_secret", sa.Text, nullable=False),  # encrypted
    sa.Column("pkce", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
