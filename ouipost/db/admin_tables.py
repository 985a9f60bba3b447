"""Tables of the admin domain (users' sessions, audit, webhooks, usage). Shares `metadata`."""

from __future__ import annotations
